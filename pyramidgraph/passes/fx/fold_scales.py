"""A learned scale applied to a conv's output folds into the conv.

BiFPN weighs each input of a node by a learned scalar (``w_i * x_i``); where ``x_i`` is a
conv's output that nothing else reads (the 1x1 projections of the backbone's maps), ``conv(x)
* w`` is ``conv'(x)`` with the kernel and bias scaled (:func:`~.weight_math.scale_conv`). The
scale must be a weight (computed from parameters alone: the fusion weights, normalised) of
one value or one per output channel.
"""

from __future__ import annotations

import operator

import torch

from . import PassContext, conv_info, nodes, replace_conv, single_user, weight_pair
from .weight_math import scale_conv


def _per_channel(value: object, channels: int) -> bool:
    if not isinstance(value, torch.Tensor):
        return False
    if value.numel() == 1:
        return value.dim() <= 4
    shape = tuple(value.shape)
    return shape in ((channels, 1, 1), (1, channels, 1, 1))


def run(ctx: PassContext) -> int:
    folded = 0
    for node in nodes(ctx, "call_function", operator.mul):
        if len(node.args) != 2 or node.kwargs:
            continue
        for x, s in (node.args, node.args[::-1]):
            info = conv_info(x) if isinstance(x, torch.fx.Node) else None
            if info is None or not single_user(info.node) or not isinstance(s, torch.fx.Node) or not ctx.is_weight(s):
                continue
            if not _per_channel(ctx.weight_value(s), info.out_channels):
                continue
            with ctx.graph.inserting_before(node):
                weight, bias = weight_pair(ctx, scale_conv, info.weight, info.bias, s, name=f"{info.node.name}_scaled", bias=info.bias is not None)
            replace_conv(ctx, info, weight=weight, bias=bias, anchor=node, name=f"{info.node.name}_scaled")
            folded += 1
            break
    return folded
