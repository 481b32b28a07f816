"""Weights and batch-norm statistics away from PyTorch's initial values, for tests where an eval-mode
norm that is nearly the identity (or a zero-initialised conv) would hide a wrong order or a wrong fold:
the export tests' ``randomise_norms`` and the direct-computation tests' ``randomise``."""

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


def randomise(neck: nn.Module, seed: int = 1, std: float = 0.3) -> nn.Module:
    """Every float tensor of ``neck.state_dict()`` redrawn in place, from torch's global generator seeded
    with ``seed`` (so a test's later draws follow from it too): running variances from U(0.5, 2), the
    rest from N(0, ``std``); returns the neck in eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, tensor in neck.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_(0, std)
    return neck.eval()
