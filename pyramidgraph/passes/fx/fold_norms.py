"""Eval-mode batch norm after a conv folds into the conv's kernel and bias.

``bn(conv(x)) = conv'(x)`` with ``w' = w * gamma / sqrt(var + eps)`` and the bias moved
through the same affine map (:func:`~.weight_math.fold_batch_norm`). Only a norm with running
statistics, directly after a conv that nothing else reads, folds; the conv's and norm's
parameters stay the neck's (the checkpoint loads by their spec names) and the folded ones
are derived from them.
"""

from __future__ import annotations

from torch import nn

from . import PassContext, conv_info, nodes, replace_conv, single_user, weight_pair
from .weight_math import fold_batch_norm


def run(ctx: PassContext) -> int:
    folded = 0
    for node in nodes(ctx, "call_module"):
        norm = ctx.module(node)
        if type(norm) is not nn.BatchNorm2d or not norm.track_running_stats or norm.running_mean is None:
            continue
        info = conv_info(node.args[0]) if node.args and hasattr(node.args[0], "op") else None
        if info is None or not single_user(info.node):
            continue
        target = node.target
        with ctx.graph.inserting_before(node):
            gamma = ctx.get_attr(f"{target}.weight") if norm.affine else None
            beta = ctx.get_attr(f"{target}.bias") if norm.affine else None
            weight, bias = weight_pair(ctx, fold_batch_norm, info.weight, info.bias, gamma, beta, ctx.get_attr(f"{target}.running_mean"), ctx.get_attr(f"{target}.running_var"), norm.eps, name=f"{node.name}_folded")
        replace_conv(ctx, info, weight=weight, bias=bias, anchor=node, name=f"{node.name}_folded")
        folded += 1
    return folded
