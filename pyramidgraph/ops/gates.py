"""Gated fusion and merge-cell resampling (NAS-FPN).

NAS-FPN (Ghiasi et al. 2019) builds its pyramid from binary *merge cells*: both inputs are
resized to the output's size, combined by a sum or by a *global-pooling gate*, and optionally
followed by a conv. The two ops here are those pieces:

* ``gate`` (fuse): ``g + sigmoid(pool(g)) * x``, where ``g`` is the *gating* input (pooled to
  one value per channel) and ``x`` the other one. Implementations differ in which input gates
  and how it is pooled: mmcv's ``GlobalPoolingCell`` gates with its second input and average
  pooling (``gate: last, pool: avg``, the defaults); the TensorFlow reference
  (``global_attention(feat0, feat1)``) with its first input and max pooling
  (``gate: first, pool: max``).
* ``merge_resize`` (resample): mmcv's ``BaseMergeCell._resize``. A map smaller than the
  target (compared as ``(height, width)`` tuples) is interpolated to the target's size; a larger
  one is zero-padded (centred, extra at the bottom/right) to a multiple of the target's size
  and max pooled with kernel = stride = the ratio, so odd sizes line up as the reference does.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..shape import ShapeError
from .base import FUSE, RESAMPLE, FuseOp, ResampleOp, one_call_when_traced

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["GlobalPoolGate", "MergeResize", "merge_resize"]


@FUSE.register("gate", gp={})
@dataclass(frozen=True)
class GlobalPoolGate(FuseOp):
    """Global-pooling gate of two inputs (NAS-FPN's GP cell): ``g + sigmoid(pool(g)) * x``.
    ``gate`` picks the gating input ``g`` (``last``: the second, as mmcv; ``first``: as the
    TensorFlow reference), ``pool`` how it is reduced to one value per channel (``avg``: mmcv,
    ``max``: TensorFlow)."""

    gate: Literal["first", "last"] = "last"
    pool: Literal["avg", "max"] = "avg"

    def label(self) -> str:
        return f"gate ({self.pool} pool of {self.gate})"

    def infer(self, xs):
        if len(xs) != 2:
            raise ShapeError(f"fuse 'gate' merges exactly two inputs, got {len(xs)}")
        if xs[0].channels != xs[1].channels:
            raise ShapeError(f"fuse 'gate' needs inputs of equal width, got {xs[0].channels} and {xs[1].channels} channels; set the node's channels so that both are projected")
        return xs[0]

    def emit(self, e, args, shapes, out):
        import torch
        import torch.nn.functional as F

        gating, other = (args[1], args[0]) if self.gate == "last" else (args[0], args[1])
        if self.pool == "avg":
            pooled = e.call_function(F.adaptive_avg_pool2d, gating, 1)
        else:
            pooled = e.call_function(torch.amax, gating, (2, 3), True)
        weight = e.call_function(torch.sigmoid, pooled)
        return e.call_function(operator.add, gating, e.call_function(operator.mul, weight, other))


@one_call_when_traced
def merge_resize(x: torch.Tensor, size: torch.Size, mode: str = "nearest") -> torch.Tensor:
    """Resize ``x`` to ``size`` as mmcv's merge cells do (see the module docstring)."""
    import torch.nn.functional as F  # here, not at the top: checking a spec must not import torch

    current = tuple(x.shape[-2:])
    target = tuple(size)
    if current == target:
        return x
    if current < target:
        return F.interpolate(x, size=target, mode=mode)
    height, width = current
    # to the next multiple of the target (0 when it is one); padding by 0 is a no-op, so there
    # is no branch on the sizes for torch.jit.trace to freeze
    pad_h, pad_w = (-height) % target[0], (-width) % target[1]
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="constant", value=0.0)
    kernel = (x.shape[-2] // target[0], x.shape[-1] // target[1])
    return F.max_pool2d(x, kernel_size=kernel, stride=kernel)


@RESAMPLE.register("merge_resize")
@dataclass(frozen=True)
class MergeResize(ResampleOp):
    """Resize to the target level's map size the way mmcv's NAS-FPN merge cells do: ``mode``
    interpolation when the map is smaller, else zero padding to a multiple of the target size
    and max pooling with kernel = stride = the size ratio. Works as ``up`` and as ``down``."""

    mode: Literal["nearest", "bilinear"] = "nearest"

    needs_size_ref = True

    def label(self) -> str:
        return "merge resize"

    def infer(self, x, target):
        return x.with_(level=target.level, size=target.size if x.size else None)

    def emit(self, e, args, shapes, out):
        return e.call_function(merge_resize, args[0], e.size_of(args[1]), self.mode)
