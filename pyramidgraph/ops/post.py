"""Post ops: the ordered list a node applies after fusion (separable convs, norms); ``conv``,
``act`` and ``identity`` fit edges too and live in :mod:`.conv` and :mod:`.elementwise`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import POST, PostOp
from .common import Init, Padding, build_conv, build_norm, check_norm, emit_conv, out_width, window_out


@POST.register("sepconv", sepconv3x3={"kernel": 3})
@dataclass(frozen=True)
class SeparableConv(PostOp):
    """Depthwise ``kernel x kernel`` conv then pointwise 1x1 conv to the node's width (BiFPN).
    ``bias`` applies to the pointwise conv; the depthwise conv has none, as in EfficientDet."""

    kernel: int = 3
    bias: bool = True
    padding: Padding = None
    out: int | None = None
    init: Init = "default"

    shorthand = "kernel"
    has_parameters = True

    def label(self) -> str:
        return f"sepconv{self.kernel}x{self.kernel}"

    def weight_estimate(self, shapes, out):
        cin = shapes[0].channels
        return cin * self.kernel**2 + cin * out.channels + out.channels

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        return x.with_(channels=width, size=window_out(x.size, self.kernel, 1, self.padding))

    def emit(self, e, args, shapes, out):
        cin = shapes[0].channels
        depthwise = build_conv(cin, cin, self.kernel, 1, self.padding, False, self.init, groups=cin)
        pointwise = build_conv(cin, out.channels, 1, 1, 0, self.bias, self.init)
        y = emit_conv(e, "dw", depthwise, args[0], self.padding)
        return e.call_module("pw", pointwise, y)


@POST.register("bn", batchnorm={})
@dataclass(frozen=True)
class BatchNorm(PostOp):
    """Batch normalisation."""

    eps: float = 1e-5
    momentum: float = 0.1

    has_parameters = True

    def weight_estimate(self, shapes, out):
        return 4 * out.channels + 1  # weight, bias, running mean and variance, batches seen

    def emit(self, e, args, shapes, out):
        return e.call_module("", build_norm("bn", out.channels, eps=self.eps, momentum=self.momentum), args[0])


@POST.register("gn", groupnorm={})
@dataclass(frozen=True)
class GroupNorm(PostOp):
    """Group normalisation with ``groups`` groups (must divide the width)."""

    groups: int = 32
    eps: float = 1e-5

    shorthand = "groups"
    has_parameters = True

    def weight_estimate(self, shapes, out):
        return 2 * out.channels

    def infer(self, x, channels):
        check_norm("gn", x.channels, self.groups, x.size)
        return x

    def emit(self, e, args, shapes, out):
        return e.call_module("", build_norm("gn", out.channels, self.groups, eps=self.eps), args[0])


__all__ = ["SeparableConv", "BatchNorm", "GroupNorm", "Literal"]
