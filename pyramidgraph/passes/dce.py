"""Dead-op elimination: drop ops whose value no output needs.

The validator already rejects spec nodes that reach no output, so on a fresh lowering this
finds nothing; it cleans up after passes (CSE leaves the duplicates it replaced unused).
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import IRGraph
from . import PassResult


def eliminate_dead_ops(graph: IRGraph) -> PassResult:
    live = {value for _, value in graph.outputs}
    kept = []
    for op in reversed(graph.ops):
        if op.name in live:
            kept.append(op)
            live.update(op.args)
    kept.reverse()
    changed = len(kept) != len(graph.ops)
    return PassResult(replace(graph, ops=kept) if changed else graph, changed)
