"""Regularisers: ops that change a map only while training.

* ``dropblock`` (post): DropBlock (Ghiasi, Lin and Le, NeurIPS 2018) as mmdetection's
  ``DropBlock`` (``mmdet/models/layers/dropblock.py``), which its ``FPN_DropBlock`` applies to
  every top-down sum: the identity in eval mode; in training it zeroes ``block_size x
  block_size`` blocks of each channel at the rate that drops ``drop_prob`` of the map (ramped up
  linearly over ``warmup_iters`` calls) and rescales the rest. The layer itself is
  :class:`~pyramidgraph.ops.regularise_layers.DropBlock2d`, built only with the neck.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..shape import ShapeError
from ..weights import declare
from .base import POST, PostOp

__all__ = ["DropBlock"]


@POST.register("dropblock")
@dataclass(frozen=True)
class DropBlock(PostOp):
    """DropBlock: identity in eval mode; in training, drops ``block_size`` (odd) square blocks
    with rate ``gamma = drop_prob * H * W / ((H - b + 1) (W - b + 1) b^2)``, ramped up over the
    first ``warmup_iters`` calls, and rescales the kept values (mmdetection's ``DropBlock``).
    mmdetection shares one module, and so one call counter, between the ``shared_by`` places of
    an FPN; ``position`` says which of them this is, so the ramp matches (both only matter with
    ``warmup_iters``). It draws random numbers, so it is never merged with another op (it is
    counted as stateful); it has no weights."""

    drop_prob: float = 0.1
    block_size: int = 3
    warmup_iters: int = 0
    shared_by: int = 1
    position: int = 0

    shorthand = "drop_prob"
    has_parameters = True  # a module of its own (a call counter, random draws): common-subexpression elimination must not merge two of them
    stateful = True

    def label(self) -> str:
        return f"dropblock p={self.drop_prob} b={self.block_size}"

    def weight_estimate(self, shapes, out):
        return 0

    def infer(self, x, channels):
        if not 0 < self.drop_prob <= 1:
            raise ShapeError(f"dropblock: drop_prob must be in (0, 1], got {self.drop_prob}")
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ShapeError(f"dropblock: block_size must be odd and positive (blocks are centred), got {self.block_size}")
        if self.warmup_iters < 0:
            raise ShapeError(f"dropblock: warmup_iters must be >= 0, got {self.warmup_iters}")
        if not 0 <= self.position < self.shared_by:
            raise ShapeError(f"dropblock: position must be in 0 .. shared_by - 1 = {self.shared_by - 1}, got {self.position}")
        return x

    def emit(self, e, args, shapes, out):
        from .regularise_layers import DropBlock2d

        return e.call_module("", declare(DropBlock2d, self.drop_prob, self.block_size, self.warmup_iters, self.shared_by, self.position), args[0])
