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

from .ops.base import one_call_when_traced

__all__ = ["pad_same", "init_conv", "INIT_SCHEMES"]


@one_call_when_traced
def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow "same" padding: pad so that the output is ``ceil(size / stride)``, extra on the bottom/right."""
    height, width = x.shape[-2:]
    pad_h = max((math.ceil(height / stride) - 1) * stride + kernel - height, 0)
    pad_w = max((math.ceil(width / stride) - 1) * stride + kernel - width, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=value)


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
