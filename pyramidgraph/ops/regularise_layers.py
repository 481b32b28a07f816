"""The torch layers of :mod:`.regularise`'s ops, imported only when a neck is built (checking a
spec never imports torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DropBlock2d", "block_rate", "drop_blocks"]

EPS = 1e-6
"""Added to the kept fraction's denominator, as mmdetection's DropBlock."""


def block_rate(drop_prob: float, block_size: int, height: int, width: int) -> float:
    """The rate of block centres that drops about ``drop_prob`` of a ``height x width`` map."""
    return drop_prob * height * width / ((height - block_size + 1) * (width - block_size + 1)) / block_size**2


def drop_blocks(x: torch.Tensor, drop_prob: float, block_size: int, ramp: float = 1.0) -> torch.Tensor:
    """One draw of DropBlock on ``x``: centres at :func:`block_rate` times ``ramp``, grown to blocks, the kept
    values rescaled by ``numel / (1e-6 + kept)``. One call under ``torch.fx.symbolic_trace``
    (its sizes are Python numbers)."""
    n, c, height, width = x.shape
    b = block_size
    centres = torch.bernoulli(torch.full((n, c, height - b + 1, width - b + 1), block_rate(drop_prob, b, height, width) * ramp, device=x.device))
    blocks = F.max_pool2d(F.pad(centres, [b // 2] * 4, value=0), kernel_size=b, stride=1, padding=b // 2)
    keep = 1 - blocks
    return x * keep * keep.numel() / (EPS + keep.sum())


torch.fx.wrap("drop_blocks")


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al. 2018) as mmdetection's ``DropBlock``: the identity in eval mode;
    in training, block centres are drawn with ``torch.bernoulli`` at rate ``gamma`` over the
    ``(H - b + 1) x (W - b + 1)`` positions whose block fits, grown to ``b x b`` blocks by a
    stride-1 max pool, and the kept map is rescaled by ``numel / (1e-6 + kept)``.

    ``gamma = drop_prob * H * W / ((H - b + 1) * (W - b + 1) * b**2)``, times ``min(1, t /
    warmup_iters)`` where ``t`` counts the calls of one counter. mmdetection's FPN_DropBlock runs
    one module (one counter) at ``shared_by`` places per forward pass; this layer stands at place
    ``position`` of them, so its ``t`` is ``(forwards - 1) * shared_by + position + 1``, the
    value mmdetection's counter has there. The counter is a plain attribute, not in the
    ``state_dict``, as in mmdetection."""

    def __init__(self, drop_prob: float, block_size: int, warmup_iters: int = 0, shared_by: int = 1, position: int = 0):
        super().__init__()
        self.drop_prob, self.block_size, self.warmup_iters = drop_prob, block_size, warmup_iters
        self.shared_by, self.position = shared_by, position
        self.forwards = 0

    def iteration(self) -> int:
        """The shared counter's value at this place in the current forward pass."""
        return (self.forwards - 1) * self.shared_by + self.position + 1

    def ramp(self) -> float:
        """The warmup factor at this call: ``min(1, t / warmup_iters)``."""
        t = self.iteration()
        return 1.0 if t > self.warmup_iters else t / self.warmup_iters

    def gamma(self, height: int, width: int) -> float:
        return block_rate(self.drop_prob, self.block_size, height, width) * self.ramp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        self.forwards += 1
        return drop_blocks(x, self.drop_prob, self.block_size, self.ramp())

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, block_size={self.block_size}, warmup_iters={self.warmup_iters}, shared_by={self.shared_by}, position={self.position}"
