"""Where the recorded reference cases live, and how a test reads one.

Two sets: ``tests/interop/fixtures`` (recorded for this repository, always here) and
``../shared/fixtures`` (the project's shared recordings, kept beside the checkout: CI has them,
a fresh clone does not). A test that needs a shared recording that is not there is skipped with
:data:`SHARED_MISSING` as its reason, never failed; the repository's own recordings cover every
reference source either way (``tests/interop/test_fixtures.py`` checks that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
LOCAL = Path(__file__).resolve().parent / "interop" / "fixtures"
SHARED_MISSING = f"{SHARED} is not there: the shared reference recordings sit beside the checkout in CI, not in a fresh clone (tests/interop/fixtures covers the same sources)"


def have_shared() -> bool:
    return (SHARED / "index.json").is_file()


def shared_index() -> dict[str, dict]:
    """The shared cases' ``index.json`` by id (parameter counts, shapes), or {} without them."""
    if not have_shared():
        return {}
    return {case["id"]: case for case in json.loads((SHARED / "index.json").read_text())}


def shared_cases(names: list[str] | None = None) -> list:
    """Parameters for the shared cases ``names`` (all of them when None): skipped, with the
    reason, where ``../shared`` is missing, so the test ids stay the same with and without it."""
    if names is None:
        if not have_shared():
            return [pytest.param(SHARED, id="shared", marks=pytest.mark.skip(reason=SHARED_MISSING))]
        names = sorted(p.stem for p in SHARED.glob("*.pt"))
    return [pytest.param(SHARED / f"{name}.pt", id=name) for name in names]


NECKS = SHARED / "necks"


def neck_cases_index() -> dict[str, dict]:
    """The ``necks/`` cases' ``index.json`` by id (source, config, parameter count), or {} without them."""
    if not (NECKS / "index.json").is_file():
        return {}
    return {case["id"]: case for case in json.loads((NECKS / "index.json").read_text())}


def load_case(path: Path) -> dict:
    """A recorded case; a missing shared one skips the test with :data:`SHARED_MISSING`."""
    if not path.is_file() and path.is_relative_to(SHARED):
        pytest.skip(SHARED_MISSING)
    return torch.load(path, weights_only=False)
