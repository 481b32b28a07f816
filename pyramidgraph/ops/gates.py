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
def merge_resize(x: torch.Tensor, size: torch.Size, mode: str = "nearest", direction: str | None = None) -> torch.Tensor:
    """Resize ``x`` to ``size`` as mmcv's merge cells do (see the module docstring).

    In eager mode (and under ``torch.jit.trace`` and ``torch.fx``) the sizes decide, as mmcv's
    ``BaseMergeCell._resize``: ``(height, width)`` tuples compared, so even maps whose sizes
    do not follow their levels (a finer map narrower than a coarser one) resize as mmcv's do.

    Under ``torch.export`` / ``torch.compile`` (``torch.compiler.is_compiling()``) those
    comparisons would be guards on the sizes exported at: with floor chains (nasfpn's P6, P7
    come from stride-2 max pools) torch cannot prove ``s // 2 != 2 * s`` for all ``s``. There
    ``direction`` decides (``"up"``: interpolate, ``"down"``: pad and max pool), which the op's
    emit passes from the levels of the source and target maps, decided when the neck was
    compiled. It agrees with mmcv's comparison wherever a finer map is at least as large as a
    coarser one on both sides (every pyramid of ceil or floor chains); where the two sizes
    are equal (tiny maps) both directions give ``x``'s values exactly (interpolation to the
    same size, pooling with kernel 1). Without ``direction`` (a call by hand, or two maps at
    one level) the sizes decide there too."""
    import torch.nn.functional as F  # here, not at the top: checking a spec must not import torch

    from ..contract import is_compiling  # torch.compiler.is_compiling, or torch._dynamo's before torch 2.3

    if direction is None or not is_compiling():
        current = tuple(x.shape[-2:])
        target = tuple(size)
        if current == target:
            return x
        direction = "up" if current < target else "down"
    if direction == "up":
        return F.interpolate(x, size=size, mode=mode)
    return _pad_and_max_pool(x, size)


def _pad_and_max_pool(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Zero padding (centred, extra at the bottom/right) to the next multiple of ``size``, then
    max pooling with kernel = stride = the ratio; padding by 0 is a no-op, so nothing branches
    on the sizes for ``torch.jit.trace`` to freeze.

    ``F.max_pool2d`` takes its kernel as ``int[2]``, and the kernel here is a ratio of sizes
    (``ceil(side / target side)``, not always ``2**level difference``: 22 -> 5 is 5), so under
    ``torch.export`` / ``torch.compile`` (``torch.compiler.is_compiling()``) it would be
    specialised to the size exported at; a reshape into ``kernel``-sized windows would make
    export guard on the kernel (is it 1?), which it cannot prove from the input dims. There,
    the padded map (exactly ``kernel * size``) is pooled adaptively to ``size`` instead
    (:func:`~pyramidgraph.ops.attention.adaptive_max_pool_symbolic`): on an exact multiple its
    windows are max_pool2d's, so the values are equal bit for bit. Eager mode keeps
    ``F.max_pool2d``."""
    import torch.nn.functional as F

    from ..contract import is_compiling  # torch.compiler.is_compiling, or torch._dynamo's before torch 2.3
    from .attention import adaptive_max_pool_symbolic

    height, width = x.shape[-2:]
    target_h, target_w = size[0], size[1]
    kernel_h, kernel_w = -(-height // target_h), -(-width // target_w)
    pad_h, pad_w = kernel_h * target_h - height, kernel_w * target_w - width  # (-side) % target, written so that the padded side is kernel * target
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="constant", value=0.0)
    if is_compiling():
        return adaptive_max_pool_symbolic(x, size)
    return F.max_pool2d(x, kernel_size=(kernel_h, kernel_w), stride=(kernel_h, kernel_w))


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
        """The direction for ``torch.export`` is decided here, from the levels (finer source:
        pool down; coarser: interpolate up), so that the exported program has no branch on
        sizes to guard on (see :func:`merge_resize`; eager mode compares sizes as mmcv); at
        one level (sizes may still differ) the sizes decide, as mmcv."""
        source, target = shapes[0].level, out.level
        direction = "down" if source < target else "up" if source > target else None
        return e.call_function(merge_resize, args[0], e.size_of(args[1]), self.mode, direction)
