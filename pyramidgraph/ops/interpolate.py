"""Downsampling by interpolation (EfficientDet's ``downsample_type: bilinear``).

* ``downsample`` (resample): ``F.interpolate`` to a coarser level, in ``mode`` (nearest,
  bilinear, bicubic, area). Each side becomes ``ceil(side / 2**level difference)`` (``by:
  ceil``, the default): the size a TensorFlow-"same" stride-2 conv or pool gives, and the size
  efficientdet-pytorch's ``get_feat_sizes`` assigns every level, so it needs no map at the
  target level (EfficientDet's extra levels P6, P7 have none when they are made). ``by: size``
  resizes to the target level's map instead, as ``upsample`` does by default.

Pooling (``maxpool``, ``avgpool``) keeps a fixed window; interpolation weighs every source
pixel by its distance, which is what the reference implementations that choose it compute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from ..shape import ShapeError, same_out
from .base import RESAMPLE, ResampleOp

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Downsample", "ceil_size"]


def ceil_size(size: torch.Size, stride: int) -> list[int]:
    """``[ceil(height / stride), ceil(width / stride)]`` of a map's ``shape[-2:]``."""
    return [-(-size[0] // stride), -(-size[1] // stride)]


@RESAMPLE.register("downsample")
@dataclass(frozen=True)
class Downsample(ResampleOp):
    """Interpolate to a coarser level (``mode``: nearest, bilinear, bicubic or area;
    ``align_corners`` for bilinear/bicubic, null: PyTorch's default). ``by: ceil`` (default)
    gives each side ``ceil(side / stride)``, ``stride = 2**level difference`` unless given (the
    size efficientdet-pytorch assigns every level); ``by: size`` takes the size of the target
    level's map. Use as ``down``."""

    mode: Literal["nearest", "bilinear", "bicubic", "area"] = "bilinear"
    by: Literal["ceil", "size"] = "ceil"
    stride: int | None = None
    align_corners: bool | None = None

    @property
    def needs_size_ref(self) -> bool:
        return self.by == "size"

    def bind(self, x, target):
        return self if self.stride is not None else replace(self, stride=2 ** max(target.level - x.level, 0))

    def label(self) -> str:
        return f"{self.mode} /{self.stride}" if self.stride else self.mode

    def infer(self, x, target):
        if self.align_corners is not None and self.mode not in ("bilinear", "bicubic"):
            raise ShapeError(f"downsample: align_corners applies to bilinear and bicubic modes only, not {self.mode}; remove it")
        step = self.stride.bit_length() - 1
        if self.stride < 1 or 2**step != self.stride:
            raise ShapeError(f"downsample stride {self.stride} is not a power of two")
        if target.level < x.level:
            raise ShapeError(f"downsample makes maps coarser; it cannot bring level {x.level} to level {target.level} (use it as down, not up)")
        if self.by == "size":
            return x.with_(level=x.level + step, size=target.size if x.size else None)
        return x.with_(level=x.level + step, size=(same_out(x.size[0], self.stride), same_out(x.size[1], self.stride)) if x.size else None)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        kwargs = {"mode": self.mode}
        if self.align_corners is not None:
            kwargs["align_corners"] = self.align_corners
        if self.by == "size":
            size = e.size_of(args[1])
        else:  # named after the source, so that the op's own name stays with the resized map
            size = e.graph.create_node("call_function", ceil_size, (e.size_of(args[0]), self.stride), {}, name=f"{args[0].name}_size_by{self.stride}")
        return e.call_function(F.interpolate, args[0], size=size, **kwargs)
