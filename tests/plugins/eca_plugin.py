"""A plugin as a user writes one: an efficient-channel-attention post op (Wang et al. 2020,
ECA-Net) registered from outside the package."""

from __future__ import annotations

import operator
from dataclasses import dataclass

from pyramidgraph.plugins import PostOp, register_op
from pyramidgraph.weights import declare


@register_op("post", "eca")
@dataclass(frozen=True)
class ECA(PostOp):
    """Efficient channel attention: the map's channels, average-pooled, go through a 1-D conv of
    ``kernel`` taps and a sigmoid, and gate the map channel by channel."""

    kernel: int = 3

    has_parameters = True
    shorthand = "kernel"

    def weight_estimate(self, shapes, out):
        return self.kernel

    def emit(self, e, args, shapes, out):
        import torch
        from torch import nn

        x = args[0]
        pooled = e.call_function(torch.mean, x, (2, 3))  # (N, C)
        pooled = e.call_function(torch.unsqueeze, pooled, 1)  # (N, 1, C)
        weights = e.call_module("conv", declare(nn.Conv1d, 1, 1, self.kernel, padding=(self.kernel - 1) // 2, bias=False), pooled)
        gate = e.call_function(torch.sigmoid, e.call_function(torch.reshape, weights, (-1, out.channels, 1, 1)))
        return e.call_function(operator.mul, x, gate)
