"""Post ops: the ordered list a node applies after fusion (convs, norms, activations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..shape import ShapeError
from .base import POST, PostOp
from .common import ActName, Init, Padding, build_conv, build_norm, check_norm, emit_act, emit_conv, out_width, window_out


@POST.register("conv", conv1x1={"kernel": 1}, conv3x3={"kernel": 3})
@dataclass(frozen=True)
class Conv(PostOp):
    """A ``kernel x kernel`` convolution to the node's width (or ``out``), stride 1."""

    kernel: int = 3
    bias: bool = True
    groups: int = 1
    dilation: int = 1
    padding: Padding = None
    out: int | None = None
    init: Init = "default"

    shorthand = "kernel"
    has_parameters = True

    def label(self) -> str:
        return f"conv{self.kernel}x{self.kernel}"

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        if x.channels % self.groups or width % self.groups:
            raise ShapeError(f"conv with groups={self.groups} needs widths divisible by it, got {x.channels} -> {width}")
        return x.with_(channels=width, size=window_out(x.size, self.kernel, 1, self.padding, self.dilation))

    def emit(self, e, args, shapes, out):
        conv = build_conv(shapes[0].channels, out.channels, self.kernel, 1, self.padding, self.bias, self.init, self.groups, self.dilation)
        return emit_conv(e, "", conv, args[0], self.padding)


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
        check_norm("gn", x.channels, self.groups)
        return x

    def emit(self, e, args, shapes, out):
        return e.call_module("", build_norm("gn", out.channels, self.groups, eps=self.eps), args[0])


_ACT_ALIASES = {name: {"fn": name} for name in ActName.__args__}


@POST.register("act", **_ACT_ALIASES)
@dataclass(frozen=True)
class Activation(PostOp):
    """An element-wise activation: ``{act: silu}``, or by name (``relu``, ``silu``...)."""

    fn: ActName = "relu"
    slope: float = 0.01

    shorthand = "fn"

    def label(self) -> str:
        return self.fn

    def emit(self, e, args, shapes, out):
        return emit_act(e, self.fn, args[0], self.slope)


@POST.register("identity")
@dataclass(frozen=True)
class PostIdentity(PostOp):
    """Does nothing; useful as a placeholder chosen by a parameter."""

    def emit(self, e, args, shapes, out):
        return args[0]


__all__ = ["Conv", "SeparableConv", "BatchNorm", "GroupNorm", "Activation", "PostIdentity", "Literal"]
