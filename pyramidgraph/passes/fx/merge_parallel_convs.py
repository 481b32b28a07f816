"""Convs of the same shape that read the same tensor run as one conv and a split.

CSP blocks (C3, CSPNeXt, ELAN) open with two 1x1 convs of one input, and BiFPN projects a
backbone map twice; one conv over the stacked kernels (:func:`~.weight_math.cat_kernels`)
reads the input once and makes one call instead of several. Convs merge when they read the
same node with the same kernel size, stride, padding and dilation, and no groups. The merged
kernel is computed from the original parameters in the graph, so training is unchanged
(gradients reach each conv's own kernel) and the checkpoint keeps its keys; in a training graph
the conv modules are lowered to ``F.conv2d`` first (``lower_convs`` does it for inference).
"""

from __future__ import annotations

import operator
from collections import defaultdict

import torch

from . import PassContext, call_conv, conv_info, hoist, lower_conv_module, nodes, weight_call
from .weight_math import cat_biases, cat_kernels


def run(ctx: PassContext) -> int:
    if ctx.level == "train":
        _lower_candidates(ctx)
    groups: dict[tuple, list] = defaultdict(list)
    for node in ctx.graph.nodes:
        info = conv_info(node)
        if info is not None and info.groups == 1:
            groups[(info.x, info.kernel, info.stride, info.padding, info.dilation)].append(info)
    merged = 0
    replaced: dict[torch.fx.Node, torch.fx.Node] = {}  # a conv merged away -> its part of the split
    for convs in groups.values():
        if len(convs) < 2:
            continue
        first = convs[0].node
        widths = tuple(c.out_channels for c in convs)
        hoist(ctx, [n for c in convs for n in (c.weight, c.bias) if n is not None], first)
        with ctx.graph.inserting_before(first):
            name = f"{first.name}_merged"
            weight = weight_call(ctx, cat_kernels, *[c.weight for c in convs], name=f"{name}_weight")
            bias = weight_call(ctx, cat_biases, widths, *[c.bias for c in convs], name=f"{name}_bias") if any(c.bias is not None for c in convs) else None
            head = convs[0]
            # the group was found before earlier merges: its input may be a conv merged since (FPG's
            # stride-2 chains merge a map's conv and then the convs reading it)
            x = replaced.get(head.x, head.x)
            conv = call_conv(ctx.graph, x, weight, bias, stride=head.stride, padding=head.padding, dilation=head.dilation, groups=1, out_channels=sum(widths), kernel=head.kernel, meta=first.meta, name=name)
            parts = ctx.graph.create_node("call_function", torch.split, (conv, list(widths), 1), {}, name=f"{name}_split")
            for index, info in enumerate(convs):
                part = ctx.graph.create_node("call_function", operator.getitem, (parts, index), {}, name=f"{info.node.name}_part")
                part.meta.update(info.node.meta)
                info.node.replace_all_uses_with(part)
                replaced[info.node] = part
        for info in convs:
            ctx.graph.erase_node(info.node)
        merged += len(convs) - 1
    return merged


def _lower_candidates(ctx: PassContext) -> None:
    """Lower the conv modules of a training graph that a merge would take (two or more of
    the same configuration on one input), leaving the others module calls."""
    seen: dict[tuple, list] = defaultdict(list)
    for node in nodes(ctx, "call_module"):
        conv = ctx.module(node)
        if type(conv) is torch.nn.Conv2d and conv.groups == 1 and conv.padding_mode == "zeros" and not isinstance(conv.padding, str):
            seen[(node.args[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation)].append(node)
    for group in seen.values():
        if len(group) > 1:
            for node in group:
                lower_conv_module(ctx, node)
