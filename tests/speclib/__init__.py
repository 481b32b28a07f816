"""What every bundled spec of the library must show, one :class:`LibraryCase` per spec.

Each module in this folder holds the cases of one family (``CASES = {spec name: LibraryCase}``),
so adding a spec adds one entry in one place; ``tests/test_library.py`` runs the same checks on
every entry: it compiles for each input count the architecture allows (and refuses the others
with a SpecError), runs forward at two image sizes with the shapes written out in the case,
gives every parameter a gradient, trains (a few SGD steps lower a toy loss) and has the paper's
parameter count at the paper's configuration.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int, int, int]  # (channels, height, width) of one output


@dataclass(frozen=True)
class LibraryCase:
    """How one bundled spec is exercised, small enough to run in seconds.

    ``in_channels`` maps a number of inputs to the widths compiled with it; the numbers 3, 4
    and 5 missing from it are refused, and ``fixed_levels`` says why the architecture cannot
    take them. ``outputs`` gives, for each image size in ``images`` (the first one must not be
    a multiple of 128, unless ``why_images`` says why the spec cannot run there), the expected
    ``(channels, height, width)`` of every output, for the input count ``shape_levels``.
    ``paper`` is ``(compile arguments, parameter count, where the count comes from)``.
    """

    in_channels: dict[int, list[int]]
    images: tuple[tuple[int, int], tuple[int, int]]
    outputs: tuple[list[Shape], list[Shape]]
    shape_levels: int
    paper: tuple[dict[str, Any], int, str]
    params: dict[str, Any] = field(default_factory=dict)
    fixed_levels: str = ""
    why_images: str = ""
    squares: tuple[int, int] = (128, 160)
    """The two square image sides the generic tests of every bundled spec (export, re-tracing,
    the example run) use: larger where the architecture or its numerics need it."""


@functools.cache
def all_cases() -> dict[str, LibraryCase]:
    cases: dict[str, LibraryCase] = {}
    for module in pkgutil.iter_modules(__path__):
        found = importlib.import_module(f"{__name__}.{module.name}").CASES
        assert not set(found) & set(cases), f"{module.name}: a spec listed twice"
        cases.update(found)
    return cases


def small_args(name: str) -> dict[str, Any]:
    """Compile arguments of ``name``'s library case (narrow widths, for time), for the generic
    tests that run every bundled spec (export, re-tracing); {} for a spec with no case."""
    case = all_cases().get(name)
    if case is None:
        return {}
    return {"in_channels": case.in_channels[case.shape_levels], **case.params}


def squares(name: str) -> tuple[int, int]:
    """:attr:`LibraryCase.squares` of ``name``'s case; 128 and 160 for a spec with no case."""
    case = all_cases().get(name)
    return case.squares if case is not None else (128, 160)
