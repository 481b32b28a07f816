"""Small functions and layers that generated code calls.

Everything here is what a compiled neck needs at run time beyond ``torch`` itself. Functions
are plain (no data-dependent Python control flow on tensor values), so ``torch.compile`` and
``torch.export`` see straight-line code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pad_same", "WeightedSum", "init_conv", "INIT_SCHEMES"]


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow "same" padding: pad so that the output is ``ceil(size / stride)``, extra on the bottom/right."""
    height, width = x.shape[-2:]
    pad_h = max((math.ceil(height / stride) - 1) * stride + kernel - height, 0)
    pad_w = max((math.ceil(width / stride) - 1) * stride + kernel - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=value)


class WeightedSum(nn.Module):
    """Learned scalar weight per input (EfficientDet's fusion).

    ``norm='fast'``: ``relu(w) / (sum(relu(w)) + eps)``; ``'softmax'``: ``softmax(w)``;
    ``'none'``: raw weights. Weights start at 1, as in EfficientDet. With ``fast`` and every
    weight at or below zero the output is zeros and the weights' gradients are zero (relu's),
    never NaN: ``eps`` (> 0, checked by the op) keeps the division finite.
    """

    def __init__(self, num_inputs: int, norm: str = "fast", eps: float = 1e-4):
        super().__init__()
        self.norm = norm
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_inputs))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if self.norm == "fast":
            weight = F.relu(weight)
            weight = weight / (weight.sum() + self.eps)
        elif self.norm == "softmax":
            weight = torch.softmax(weight, dim=0)
        out = xs[0] * weight[0]
        for i in range(1, len(xs)):
            out = out + xs[i] * weight[i]
        return out

    def extra_repr(self) -> str:
        return f"num_inputs={self.weight.numel()}, norm={self.norm!r}, eps={self.eps}"


INIT_SCHEMES = ("default", "xavier_uniform", "kaiming_uniform", "normal")


def init_conv(conv: nn.Conv2d, scheme: str) -> nn.Conv2d:
    """Initialise a convolution the way the reference implementation of a neck does.

    ``default`` keeps PyTorch's kaiming-uniform; ``xavier_uniform`` is mmdetection's FPN;
    ``kaiming_uniform`` (a=1) is torchvision's FPN; ``normal`` is std 0.01. Biases
    start at zero for every scheme but ``default``.
    """
    if scheme == "default":
        return conv
    if scheme == "xavier_uniform":
        nn.init.xavier_uniform_(conv.weight)
    elif scheme == "kaiming_uniform":
        nn.init.kaiming_uniform_(conv.weight, a=1)
    elif scheme == "normal":
        nn.init.normal_(conv.weight, std=0.01)
    else:  # pragma: no cover - guarded by the op schema
        raise ValueError(scheme)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv
