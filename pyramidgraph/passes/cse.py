"""Common-subexpression elimination for parameter-free ops.

Two ops that apply the same parameter-free op (an upsample, a max-pool, a sum) to the same
values compute the same tensor: BiFPN upsamples a level once for its top-down node and a
hand-written neck does it once too, but a spec that reads ``P5`` from two nodes at level 4
gets two upsamples. Later uses are pointed at the first; DCE then removes the copies.
Ops with parameters are never merged: equal configuration does not mean equal weights.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import IRGraph
from . import PassResult


def eliminate_common_subexpressions(graph: IRGraph) -> PassResult:
    seen: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    ops = []
    for op in graph.ops:
        args = [rename.get(a, a) for a in op.args]
        if args != op.args:
            op = replace(op, args=args)
        if not op.op.has_parameters:
            key = (op.op, tuple(args))
            if key in seen:
                rename[op.name] = seen[key]
                continue
            seen[key] = op.name
        ops.append(op)
    if not rename:
        return PassResult(graph, False)
    outputs = [(name, rename.get(value, value)) for name, value in graph.outputs]
    node_values = {k: rename.get(v, v) for k, v in graph.node_values.items()}
    return PassResult(replace(graph, ops=ops, outputs=outputs, node_values=node_values), True)
