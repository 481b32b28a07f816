"""Calls whose result nothing reads are removed (dead-node and dead-parameter elimination).

Rewrites leave such calls behind (the unused half of a fold, a kernel read by nothing once
its conv is merged), and the inference program also drops the reads of the modules a spec
keeps only for its checkpoint (``Emitter.keep``): its forward never touches a parameter it
does not compute with. A training graph keeps every ``get_attr`` of a module and every module
call, so that copying the neck keeps each module (``torch.fx`` copies only what a graph
names) and a norm still updates its statistics.
"""

from __future__ import annotations

import torch

from . import PassContext

SIDE_EFFECTS = {torch.Tensor.copy_, torch.Tensor.add_}


def _removable(ctx: PassContext, node: torch.fx.Node) -> bool:
    if node.users or node.op in ("placeholder", "output"):
        return False
    if node.op == "call_function":
        return node.target not in SIDE_EFFECTS
    if node.op == "call_method":
        return not str(node.target).endswith("_")
    if ctx.level == "train":
        return False  # module calls and module reads stay in a training graph
    if node.op == "get_attr":
        return True
    return False


def run(ctx: PassContext) -> int:
    removed = 0
    for node in reversed(list(ctx.graph.nodes)):
        if _removable(ctx, node):
            ctx.graph.erase_node(node)
            removed += 1
    return removed
