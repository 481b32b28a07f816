"""RepVGG-style branches re-parameterise into one conv: ``conv_a(x) + conv_b(x)`` is one conv.

A RepVGG unit (ultralytics' ``RepConv``, RT-DETR's ``RepVggBlock``, YOLOv6's and v9's blocks)
trains a ``k x k`` and a 1x1 conv-BN branch on the same input and sums them; once the norms
are folded (``fold_norms`` runs first) the sum of two convs of one input with the same stride,
dilation and groups, each centred (padding ``dilation * (k - 1) / 2``), is one conv whose kernel
is the sum of the two, the smaller zero-padded to the larger's size
(:func:`~.weight_math.sum_kernels`). The trained branches stay the checkpoint's parameters.
"""

from __future__ import annotations

import operator

from . import ConvInfo, PassContext, conv_info, nodes, replace_conv, single_user, weight_pair
from .weight_math import sum_kernels


def _centred(info: ConvInfo) -> bool:
    return all(k % 2 == 1 and p == d * (k - 1) // 2 for k, p, d in zip(info.kernel, info.padding, info.dilation))


def _mergeable(a: ConvInfo | None, b: ConvInfo | None) -> bool:
    if a is None or b is None or a.node is b.node:
        return False
    same = a.x is b.x and a.stride == b.stride and a.dilation == b.dilation and a.groups == b.groups and a.out_channels == b.out_channels
    return same and _centred(a) and _centred(b) and single_user(a.node) and single_user(b.node)


def run(ctx: PassContext) -> int:
    merged = 0
    changed = True
    while changed:  # a sum of three branches merges pairwise
        changed = False
        for node in nodes(ctx, "call_function", operator.add):
            if len(node.args) != 2 or node.kwargs:
                continue
            a, b = (conv_info(arg) if hasattr(arg, "op") else None for arg in node.args)
            if not _mergeable(a, b):
                continue
            kernel = (max(a.kernel[0], b.kernel[0]), max(a.kernel[1], b.kernel[1]))
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, a.dilation))
            with ctx.graph.inserting_before(node):
                weight, bias = weight_pair(ctx, sum_kernels, a.weight, a.bias, b.weight, b.bias, name=f"{node.name}_rep", bias=a.bias is not None or b.bias is not None)
            replace_conv(ctx, a, weight=weight, bias=bias, kernel=kernel, padding=padding, anchor=node, name=f"{node.name}_rep")
            ctx.graph.erase_node(b.node)
            merged += 1
            changed = True
    return merged
