"""An activation overwrites its input where nothing else reads it.

``silu(conv(x))`` allocates a second map the size of the first and lets the first go; in
place it reuses it (less memory traffic, fewer allocations). The input must be a fresh map
(the result of a conv, norm, sum, product, resample or concatenation: never a view, a graph
input or a map something else reads). With autograd (a ``train`` graph) only the activations
whose backward reads their output (relu, relu6, hardtanh, leaky relu with a positive slope)
may overwrite their input, and only after ops that do not keep their output for backward
(all the fresh producers above); in the inference program every activation may.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import nn

from . import PassContext, nodes, single_user

AUTOGRAD_SAFE = {F.relu, F.relu6, F.hardtanh, F.leaky_relu}
"""Activations whose in-place form autograd supports: their gradient needs only the output."""
WITH_INPLACE_FLAG = AUTOGRAD_SAFE | {F.silu, F.hardswish, F.mish, F.elu, F.selu, F.celu, F.hardsigmoid}
"""Functions that take ``inplace=True``."""
INPLACE_TWIN = {torch.sigmoid: torch.sigmoid_, torch.tanh: torch.tanh_}
"""Functions whose in-place form is another function."""
FRESH_FUNCTIONS = {F.conv2d, F.conv_transpose2d, operator.add, operator.mul, torch.add, torch.mul, torch.addcmul, torch.cat, F.interpolate, F.max_pool2d, F.avg_pool2d, F.batch_norm, F.group_norm}
FRESH_MODULES = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.GroupNorm, nn.SyncBatchNorm)


def _fresh(ctx: PassContext, node: object) -> bool:
    """Whether ``node`` is a newly allocated map that its one reader may overwrite."""
    if not isinstance(node, torch.fx.Node) or not single_user(node) or ctx.is_weight(node):
        return False
    if node.op == "call_function":
        return node.target in FRESH_FUNCTIONS
    return node.op == "call_module" and isinstance(ctx.module(node), FRESH_MODULES)


def _allowed(ctx: PassContext, node: torch.fx.Node) -> bool:
    if ctx.level != "train":
        return True
    if node.target is F.leaky_relu:
        slope = node.args[1] if len(node.args) > 1 else node.kwargs.get("negative_slope", 0.01)
        return slope > 0
    return node.target in AUTOGRAD_SAFE


def run(ctx: PassContext) -> int:
    changed = 0
    for node in nodes(ctx, "call_function"):
        if not node.args or not _fresh(ctx, node.args[0]) or not _allowed(ctx, node):
            continue
        if node.target in WITH_INPLACE_FLAG and not node.kwargs.get("inplace", False):
            node.kwargs = {**node.kwargs, "inplace": True}
            changed += 1
        elif node.target in INPLACE_TWIN and ctx.level == "inference":
            node.target = INPLACE_TWIN[node.target]
            changed += 1
    return changed
