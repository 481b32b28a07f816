"""Resample ops: what an edge does to bring its source to the target's level and width.

The compiler picks them from the node's resample policy (``up``, ``down``, ``project``) unless
the edge lists them itself with ``via``. Scales and strides left empty are filled in from the
level difference of the edge (``bind``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from ..shape import FeatureShape, ShapeError
from .base import RESAMPLE, ResampleOp
from .common import Init, Padding, build_conv, build_norm, check_norm, factor_up, window_out


def _level_step(factor: int, what: str) -> int:
    step = int(math.log2(factor)) if factor > 0 else -1
    if factor < 1 or 2**step != factor:
        raise ShapeError(f"{what} {factor} is not a power of two")
    return step


@RESAMPLE.register("upsample", nearest={"mode": "nearest"}, bilinear={"mode": "bilinear"})
@dataclass(frozen=True)
class Upsample(ResampleOp):
    """Interpolate to a finer level.

    ``by: size`` (default) resizes to the size of the target level's feature map, so inputs
    whose sides are not divisible by the total stride still line up; ``by: scale`` multiplies
    by ``scale`` (default ``2**level difference``), as some reference implementations do.
    """

    mode: Literal["nearest", "bilinear", "bicubic"] = "nearest"
    by: Literal["size", "scale"] = "size"
    scale: int | None = None
    align_corners: bool | None = None

    @property
    def needs_size_ref(self) -> bool:
        return self.by == "size"

    @property
    def exact_ratio(self) -> bool:
        """``by: scale`` multiplies sizes by a fixed factor: its map lines up with the finer one
        only where that is exactly ``scale`` times larger (the neck's input size rule reads this)."""
        return self.by == "scale"

    def bind(self, x, target):
        return replace(self, scale=factor_up(self.scale, x, target))

    def label(self) -> str:
        return f"up x{self.scale}" if self.scale else "up"

    def infer(self, x, target):
        if self.align_corners is not None and self.mode == "nearest":
            raise ShapeError("upsample: align_corners applies to bilinear and bicubic modes only; remove it or set mode: bilinear")
        scale = self.scale or 1
        level = x.level - _level_step(scale, "upsample scale")
        if self.by == "size":
            return x.with_(level=level, size=target.size if x.size else None)
        return x.with_(level=level, size=(x.size[0] * scale, x.size[1] * scale) if x.size else None)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        kwargs = {"mode": self.mode}
        if self.align_corners is not None:
            kwargs["align_corners"] = self.align_corners
        if self.by == "size":
            return e.call_function(F.interpolate, args[0], size=e.size_of(args[1]), **kwargs)
        return e.call_function(F.interpolate, args[0], scale_factor=float(self.scale), **kwargs)


@dataclass(frozen=True)
class _Pool(ResampleOp):
    kernel: int | None = None
    stride: int | None = None
    padding: Padding = None

    def bind(self, x, target):
        stride = self.stride if self.stride is not None else 2 ** max(target.level - x.level, 0)
        kernel = self.kernel if self.kernel is not None else (stride + 1 if stride > 1 else 1)
        return replace(self, stride=stride, kernel=kernel)

    def label(self) -> str:
        return f"{self.name} /{self.stride}" if self.stride else self.name

    def infer(self, x, target):
        if self.kernel < 1 or self.stride < 1:
            raise ShapeError(f"{self.name} needs kernel and stride >= 1")
        step = _level_step(self.stride, f"{self.name} stride")
        return x.with_(level=x.level + step, size=window_out(x.size, self.kernel, self.stride, self.padding))


@RESAMPLE.register("maxpool")
@dataclass(frozen=True)
class MaxPool(_Pool):
    """Max pooling to a coarser level. Defaults: ``stride = 2**level difference``,
    ``kernel = stride + 1`` (``1`` at stride 1), ``padding = (kernel - 1) // 2``; ``padding: same``
    pads like TensorFlow (with -inf)."""

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        from ..runtime import pad_same

        x = args[0]
        if self.padding == "same":
            x = e.call_function(pad_same, x, self.kernel, self.stride, float("-inf"))
            return e.call_function(F.max_pool2d, x, self.kernel, self.stride)
        return e.call_function(F.max_pool2d, x, self.kernel, self.stride, (self.kernel - 1) // 2 if self.padding is None else self.padding)


@RESAMPLE.register("avgpool")
@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pooling to a coarser level; same defaults as ``maxpool`` (zero padding counted)."""

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        from ..runtime import pad_same

        x = args[0]
        if self.padding == "same":
            x = e.call_function(pad_same, x, self.kernel, self.stride)
            return e.call_function(F.avg_pool2d, x, self.kernel, self.stride)
        return e.call_function(F.avg_pool2d, x, self.kernel, self.stride, (self.kernel - 1) // 2 if self.padding is None else self.padding)


@RESAMPLE.register("project")
@dataclass(frozen=True)
class Project(ResampleOp):
    """A 1x1 convolution to the target width (FPN's lateral conv), optionally with a norm."""

    bias: bool = True
    norm: Literal["bn", "gn"] | None = None
    init: Init = "default"

    changes_channels = True
    has_parameters = True

    def label(self) -> str:
        return "1x1 proj"

    def infer(self, x, target):
        check_norm(self.norm, target.channels, size=x.size)
        return x.with_(channels=target.channels)

    def emit(self, e, args, shapes, out):
        conv = build_conv(shapes[0].channels, out.channels, 1, 1, 0, self.bias, self.init)
        y = e.call_module("conv", conv, args[0])
        return e.call_module(self.norm, build_norm(self.norm, out.channels), y) if self.norm else y


@RESAMPLE.register("deconv", transposed_conv={})
@dataclass(frozen=True)
class TransposedConv(ResampleOp):
    """Learned upsampling by a transposed convolution to the target width: kernel = stride =
    ``2**level difference`` unless given (each pixel becomes a ``stride x stride`` patch), as the
    FCN/SSD-style decoders and CenterNet's neck upsample. Sizes multiply by the stride, so the
    finer map must be exactly that much larger (image sides divisible accordingly). Use as ``up``."""

    kernel: int | None = None
    stride: int | None = None
    bias: bool = True

    changes_channels = True
    has_parameters = True
    exact_ratio = True

    def bind(self, x, target):
        stride = factor_up(self.stride, x, target)
        return replace(self, stride=stride, kernel=self.kernel if self.kernel is not None else stride)

    def label(self) -> str:
        return f"deconv x{self.stride}" if self.stride else "deconv"

    def weight_estimate(self, shapes, out):
        return shapes[0].channels * out.channels * (self.kernel or 1) ** 2 + out.channels

    def infer(self, x, target):
        step = _level_step(self.stride, "deconv stride")
        if self.kernel < self.stride or (self.kernel - self.stride) % 2:
            raise ShapeError(f"deconv: kernel {self.kernel} must be the stride {self.stride} or larger by an even number, so that the map grows exactly {self.stride} times")
        return FeatureShape(target.channels, x.level - step, (x.size[0] * self.stride, x.size[1] * self.stride) if x.size else None)

    def emit(self, e, args, shapes, out):
        from torch import nn

        from ..weights import declare

        padding = (self.kernel - self.stride) // 2
        deconv = declare(nn.ConvTranspose2d, shapes[0].channels, out.channels, self.kernel, stride=self.stride, padding=padding, bias=self.bias)
        return e.call_module("deconv", deconv, args[0])


@RESAMPLE.register("pixel_shuffle")
@dataclass(frozen=True)
class PixelShuffle(ResampleOp):
    """Learned upsampling by sub-pixel convolution (Shi et al. 2016): a ``kernel x kernel`` conv
    to ``width * scale**2`` channels, then ``F.pixel_shuffle`` rearranges each group of
    ``scale**2`` channels into a ``scale x scale`` patch; ``scale = 2**level difference`` unless
    given. Sizes multiply by the scale. Use as ``up``."""

    scale: int | None = None
    kernel: int = 1
    bias: bool = True

    changes_channels = True
    has_parameters = True
    exact_ratio = True

    def bind(self, x, target):
        return replace(self, scale=factor_up(self.scale, x, target))

    def label(self) -> str:
        return f"pixel shuffle x{self.scale}" if self.scale else "pixel shuffle"

    def weight_estimate(self, shapes, out):
        return shapes[0].channels * out.channels * (self.scale or 1) ** 2 * self.kernel**2 + out.channels * (self.scale or 1) ** 2

    def infer(self, x, target):
        step = _level_step(self.scale, "pixel_shuffle scale")
        size = window_out(x.size, self.kernel, 1, None)
        return FeatureShape(target.channels, x.level - step, (size[0] * self.scale, size[1] * self.scale) if size else None)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        conv = build_conv(shapes[0].channels, out.channels * self.scale**2, self.kernel, 1, None, self.bias, "default")
        y = e.call_module("conv", conv, args[0])
        return e.call_function(F.pixel_shuffle, y, self.scale)
