"""Batch-norm statistics away from PyTorch's 0 and 1, for tests where an eval-mode norm that is
nearly the identity would hide a wrong order or a wrong fold (the export tests)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def randomise_norms(neck: nn.Module, seed: int = 1) -> None:
    """Every batch norm's running mean, variance and affine parameters drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in neck.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                if module.affine:
                    module.weight.copy_(0.5 + torch.rand(n, generator=generator))
                    module.bias.copy_(0.1 * torch.randn(n, generator=generator))
