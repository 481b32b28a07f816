"""The exception types of the public API, and the located issues spec errors carry.

Every user-facing check in pyramidgraph (YAML loading, schema, graph, shapes, compile
arguments) reports :class:`Issue` records instead of raising on the first problem, so a user
sees all of a spec's mistakes at once, sorted by position. ``assert`` stays for our own
invariants; anything a user can cause becomes an ``Issue``. A compiled neck called with
inputs it cannot take raises :class:`NeckInputError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

__all__ = ["Issue", "NeckInputError", "SpecError", "closest", "did_you_mean", "format_path", "suggestion_budget", "capped", "MAX_ISSUES", "MAX_SUGGESTION_COMPARISONS"]

MAX_ISSUES = 100
"""Most problems reported for one spec. Past it a stage stops looking (a list of 10,000 wrong
items took 6 s to report, item by item) and the error says that more were left unreported."""

MAX_SUGGESTION_COMPARISONS = 20_000
"""Most candidate names compared with unknown ones for "did you mean" suggestions while one
spec is analysed (about 0.3 s of difflib). Each suggestion costs one comparison per candidate,
so without a bound a spec of 4,000 misspelt references to 4,000 nodes took over four minutes;
with it, suggestions stop once it is spent and the remaining messages are given without one."""

_comparisons_left: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("pyramidgraph_comparisons_left", default=None)


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
        self.issues: list[Issue] = merge_instances(sorted(set(issues)))
        assert self.issues, "SpecError needs at least one issue"
        super().__init__("\n".join(issue.format() for issue in self.issues))


class NeckInputError(TypeError, ValueError):
    """Raised when a compiled neck is called with inputs it cannot take: the wrong number or
    container, a tensor that is not 4-D, a wrong width, or spatial sizes that do not line up.

    The message names the neck, the input, what was expected and what came. It is a
    ``TypeError`` (what a wrong number of inputs always raised) and a ``ValueError`` (for wrong
    widths and sizes), so either ``except`` catches it.
    """


def capped(issues: list[Issue]) -> list[Issue]:
    """``issues`` when there are at most :data:`MAX_ISSUES`; else the first of them by position
    and one issue, which sorts first, saying that the rest were not reported."""
    if len(issues) <= MAX_ISSUES:
        return issues
    first = sorted(set(issues))[:MAX_ISSUES]
    note = f"more than {MAX_ISSUES} problems: the first {MAX_ISSUES} follow, and checking stopped there (pyramidgraph.errors.MAX_ISSUES)"
    return [Issue(first[0].file, 0, 0, "", note)] + first


def merge_instances(issues: list[Issue]) -> list[Issue]:
    """One issue per spot of the file: a ``foreach`` makes the same mistake once per instance,
    at the same line and column under paths that differ in the instance's name
    (``nodes.P3.from[1]``, ``nodes.P4.from[1]``). Those become the first instance's issue
    naming all of them, ``(in each of P3, P4, P5)``, or, where the messages differ
    (``got 23``, ``got 24``), ``(also in P4, P5)``. ``issues`` must be sorted."""
    groups: dict[tuple[str, int, int], list[Issue]] = {}
    for issue in issues:
        key = (issue.file, issue.line, issue.col) if issue.line else (issue.file, 0, id(issue))
        groups.setdefault(key, []).append(issue)
    merged: list[Issue] = []
    for group in groups.values():
        names = _instance_names([issue.path for issue in group])
        if len(group) == 1 or names is None:
            merged.extend(group)
            continue
        first = group[0]
        same = all(issue.message == first.message for issue in group)
        note = f" (in each of {', '.join(names)})" if same else f" (also in {', '.join(names[1:])})"
        merged.append(Issue(first.file, first.line, first.col, first.path, first.message + note))
    return merged


def _instance_names(paths: list[str]) -> list[str] | None:
    """The part that tells instances apart in paths of equal shape (``P3``, ``P4`` from
    ``nodes.P3.from[1]``, ``nodes.P4.from[1]``), or None when the paths are not instances of
    one template (different shapes, or two issues at one path)."""
    split = [path.split(".") for path in paths]
    if len({len(parts) for parts in split}) != 1 or len(set(paths)) != len(paths):
        return None
    differing = [i for i in range(len(split[0])) if len({parts[i] for parts in split}) > 1]
    return [".".join(parts[i] for i in differing) for parts in split]


def format_path(path: Sequence[str | int]) -> str:
    """Render a path tuple as ``nodes.P4.from[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@contextlib.contextmanager
def suggestion_budget(comparisons: int | None = None) -> Iterator[None]:
    """Bound the work of :func:`closest` inside the block to ``comparisons`` candidate
    comparisons in all (default :data:`MAX_SUGGESTION_COMPARISONS`, read when entered). Outside
    any such block, suggestions are not bounded."""
    token = _comparisons_left.set([MAX_SUGGESTION_COMPARISONS if comparisons is None else comparisons])
    try:
        yield
    finally:
        _comparisons_left.reset(token)


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name``, or None when nothing is close enough (or when the
    :func:`suggestion_budget` in force is spent, in which case ``candidates`` is not read)."""
    left = _comparisons_left.get()
    if left is not None and left[0] <= 0:
        return None
    pool = [c for c in candidates if isinstance(c, str)]
    lowered = {c.lower(): c for c in pool}
    if name.lower() in lowered:
        return lowered[name.lower()]
    if left is not None:
        if left[0] < len(pool):
            left[0] = 0  # spent: no later message gets one either, whatever the size of its pool
            return None
        left[0] -= len(pool)
    found = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix, or an empty string."""
    match = closest(name, candidates)
    return f"; did you mean '{match}'?" if match else ""
