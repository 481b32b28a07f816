"""A weighted sum ``a + x * w`` runs as one ``torch.addcmul(a, x, w)``.

BiFPN's fusion, ``sum_i w_i * x_i``, is a multiply and an add per input; ``addcmul`` does both
in one pass over the map, so a node of three inputs makes three calls instead of five. ``w``
must be a weight (computed from parameters alone), ``x`` and ``a`` maps; the product must have
no other reader. The result and its gradients are those of the multiply and add.
"""

from __future__ import annotations

import operator

import torch

from . import PassContext, nodes, single_user


def _scaled(ctx: PassContext, node: object) -> tuple[torch.fx.Node, torch.fx.Node] | None:
    """``(x, w)`` when ``node`` is ``x * w`` (either order) of a map and a weight, read once."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_function" or node.target is not operator.mul or node.kwargs or not single_user(node):
        return None
    a, b = node.args
    for x, w in ((a, b), (b, a)):
        if isinstance(x, torch.fx.Node) and isinstance(w, torch.fx.Node) and ctx.is_weight(w) and not ctx.is_weight(x):
            return x, w
    return None


def run(ctx: PassContext) -> int:
    fused = 0
    for node in nodes(ctx, "call_function", operator.add):
        if len(node.args) != 2 or node.kwargs:
            continue
        first, second = node.args
        for total, term in ((first, second), (second, first)):
            scaled = _scaled(ctx, term)
            if scaled is None or not isinstance(total, torch.fx.Node) or ctx.is_weight(total):
                continue
            with ctx.graph.inserting_before(node):
                fusedsum = ctx.graph.call_function(torch.addcmul, (total, *scaled))
            fusedsum.meta.update(node.meta)
            node.replace_all_uses_with(fusedsum)
            ctx.graph.erase_node(node)
            ctx.graph.erase_node(term)
            fused += 1
            break
    return fused
