"""What the block recorders here share: the randomisation of every parameter and buffer.

Run with the peers environment's python (ultralytics installed), from this folder: the
recorders import this module as a sibling script.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def randomise(module: nn.Module, seed: int) -> None:
    """Non-trivial values everywhere, so that a wrong key, a missed BN or a swapped branch shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:  # conv kernels, scaled by fan-in so that activations stay O(1)
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):  # BN scale
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(7)
