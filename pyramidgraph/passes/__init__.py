"""Optimisation passes over the IR, and the manager that runs them.

A pass is one function ``IRGraph -> PassResult``: the new graph and whether it changed. It
must keep the outputs' values and shapes, and running it twice must change nothing the
second time (tests assert both for every pass). ``DEFAULT_PASSES`` is the pipeline
``compile()`` runs; adding a pass is one module here plus one entry in that list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..ir import IRGraph

__all__ = ["PassResult", "Pass", "run_passes", "DEFAULT_PASSES", "PASSES"]


@dataclass
class PassResult:
    graph: IRGraph
    changed: bool


Pass = Callable[[IRGraph], PassResult]


class PassError(RuntimeError):
    """A pass broke an IR invariant; names the passes that ran before it."""


def run_passes(graph: IRGraph, passes: Sequence[Pass], check: bool = True) -> IRGraph:
    """Run ``passes`` in order; with ``check``, verify the IR after each one."""
    done: list[str] = []
    for p in passes:
        graph = p(graph).graph
        if check:
            try:
                graph.check()
            except AssertionError as exc:
                raise PassError(f"IR invalid after pass {p.__name__} (ran before it: {', '.join(done) or 'none'}): {exc}") from None
        done.append(p.__name__)
    return graph


from .cse import eliminate_common_subexpressions  # noqa: E402
from .dce import eliminate_dead_ops  # noqa: E402

PASSES: dict[str, Pass] = {
    "cse": eliminate_common_subexpressions,
    "dce": eliminate_dead_ops,
}
"""Every pass by name (``compile(..., passes=[...])`` takes names)."""

DEFAULT_PASSES: tuple[str, ...] = ("cse", "dce")
