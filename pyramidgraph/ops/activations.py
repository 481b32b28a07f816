"""Activations that are not one torch function, for :func:`pyramidgraph.ops.common.activation`.

Module-level functions (not lambdas or partials), so the generated code names them and a neck
pickles, re-traces and exports like one calling ``F.relu``. Imported only when a neck is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gelu_tanh", "quick_gelu", "hard_mish"]


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU by its tanh approximation (timm's ``gelu_tanh``, ``nn.GELU(approximate="tanh")``)."""
    return F.gelu(x, approximate="tanh")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(1.702 x)``: CLIP's GELU approximation (timm's ``quick_gelu``)."""
    return x * torch.sigmoid(1.702 * x)


def hard_mish(x: torch.Tensor) -> torch.Tensor:
    """``x / 2 * clamp(x + 2, 0, 2)``: the piecewise Mish of timm's ``hard_mish``."""
    return 0.5 * x * (x + 2.0).clamp(min=0.0, max=2.0)
