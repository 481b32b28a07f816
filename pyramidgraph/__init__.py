"""pyramidgraph: detector necks as YAML graphs, validated and compiled to ``torch.fx``.

>>> import pyramidgraph
>>> neck = pyramidgraph.compile("bifpn")              # the spec's example backbone
>>> outs = neck(neck.example_inputs(batch=2))
>>> neck.output_names, neck.out_channels

Everything a user can get wrong in a spec raises :class:`SpecError`, whose ``issues`` list
every problem with its file, line, column and spec path; a neck called with inputs it cannot
take raises :class:`NeckInputError`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from .errors import Issue, NeckInputError, SpecError

if TYPE_CHECKING:  # pragma: no cover
    from .compiler import Analysis, analyze, compile, load, validate
    from .info import NeckCost, neck_info
    from .library import bundled_specs
    from .module import PyramidNeck, ShapeSpec
    from .optimization import optimize
    from .schema import spec_schema

# The other public names are imported on first use (PEP 562), so that ``import pyramidgraph``
# and the ``pyramidgraph`` command start without torch (about 2 s), networkx and jsonschema:
# only compiling needs torch, and ``pyramidgraph --help`` needs none of them.
_LAZY = {
    "Analysis": ".compiler",
    "analyze": ".compiler",
    "compile": ".compiler",
    "load": ".compiler",
    "validate": ".compiler",
    "NeckCost": ".info",
    "neck_info": ".info",
    "bundled_specs": ".library",
    "optimize": ".optimization",
    "PyramidNeck": ".module",
    "ShapeSpec": ".module",
    "spec_schema": ".schema",
}


def _installed_version() -> str:
    """The installed distribution's version, which is pyproject.toml's (the one place it is
    written); ``0+unknown`` when the package runs from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyramidgraph")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")  # ``pyramidgraph.info.neck_info`` worked when the package imported its modules eagerly
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups find it without coming back here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Analysis",
    "Issue",
    "NeckCost",
    "NeckInputError",
    "PyramidNeck",
    "ShapeSpec",
    "SpecError",
    "analyze",
    "neck_info",
    "bundled_specs",
    "compile",
    "load",
    "spec_schema",
    "validate",
    "__version__",
    "optimize",
]
