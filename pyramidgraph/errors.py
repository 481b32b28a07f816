"""The one exception type of the public API, and the located issues it carries.

Every user-facing check in pyramidgraph (YAML loading, schema, graph, shapes, compile
arguments) reports :class:`Issue` records instead of raising on the first problem, so a user
sees all of a spec's mistakes at once, sorted by position. ``assert`` stays for our own
invariants; anything a user can cause becomes an ``Issue``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = ["Issue", "SpecError", "closest", "did_you_mean", "format_path"]


@dataclass(frozen=True, order=True)
class Issue:
    """One problem found in a spec: where it is and what to do about it.

    ``line`` and ``col`` are 1-based; 0 means "no position known" (a spec given as a dict).
    ``path`` is the dotted path inside the spec, e.g. ``nodes.P4_td.from[1]``.
    """

    file: str
    line: int
    col: int
    path: str
    message: str

    def format(self) -> str:
        """``file:line:col: path: message``, the form editors and compilers use."""
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path or '<spec>'}: {self.message}"

    def __str__(self) -> str:
        return self.format()


class SpecError(ValueError):
    """Raised for anything wrong with a spec or with the arguments it is compiled with.

    ``issues`` holds every problem found, sorted by file, line and column; ``str(error)``
    prints one ``file:line:col: path: message`` line per issue.
    """

    def __init__(self, issues: Iterable[Issue]):
        self.issues: list[Issue] = sorted(set(issues))
        assert self.issues, "SpecError needs at least one issue"
        super().__init__("\n".join(issue.format() for issue in self.issues))


def format_path(path: Sequence[str | int]) -> str:
    """Render a path tuple as ``nodes.P4.from[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, or None when nothing is close enough."""
    pool = [c for c in candidates if isinstance(c, str)]
    lowered = {c.lower(): c for c in pool}
    if name.lower() in lowered:
        return lowered[name.lower()]
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix, or an empty string."""
    match = closest(name, candidates)
    return f"; did you mean '{match}'?" if match else ""
