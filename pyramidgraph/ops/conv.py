"""``conv``: the convolution, one op on an edge and after a fusion.

On an edge it maps the source to the target width with stride ``2**level difference`` unless
``stride`` is given (PAFPN's bottom-up path, FPN's extra levels), modules ``conv`` and the
norm's (``bn``/``gn``); after a fusion it maps to the node's width (or ``out``) at stride 1,
its weights directly at the op's path (``P4.post0.weight``), or under ``conv`` and the norm's
name when it has a norm. Either way it may add a norm and an activation after the conv.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from ..shape import FeatureShape, ShapeError
from .base import POST, RESAMPLE, Op, internal
from .common import ActName, Init, Padding, build_conv, build_norm, check_norm, emit_act, emit_conv, stride_at, width_and_step, window_out

__all__ = ["Conv"]


@RESAMPLE.register("conv")
@POST.register("conv", conv1x1={"kernel": 1}, conv3x3={"kernel": 3})
@dataclass(frozen=True)
class Conv(Op):
    """A ``kernel x kernel`` convolution (``groups``, ``dilation``, ``padding``: null for
    ``dilation * (kernel - 1) // 2``, ``same`` for TensorFlow's), optionally followed by a norm
    and an activation. On an edge: to the target width, stride ``2**level difference`` unless
    given. After a fusion: to the node's width (or ``out``), stride 1."""

    kernel: int = 3
    stride: int | None = None
    bias: bool = True
    groups: int = 1
    dilation: int = 1
    padding: Padding = None
    out: int | None = None
    norm: Literal["bn", "gn"] | None = None
    act: ActName | None = None
    init: Init = "default"
    placed: str | None = internal()
    """Where :meth:`at` put it (``edge`` or ``post``): that decides its module names."""

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    shorthand = "kernel"
    has_parameters = True
    changes_channels = True

    def at(self, inputs, site):
        return replace(self, stride=stride_at(self.stride, inputs[0], site), placed=site.role)

    def label(self) -> str:
        return f"conv{self.kernel}x{self.kernel} /{self.stride}" if self.stride and self.stride > 1 else f"conv{self.kernel}x{self.kernel}"

    def shape(self, inputs, site):
        x = inputs[0]
        width, step = width_and_step("conv", self.stride, self.out, x, site)
        if x.channels % self.groups or width % self.groups:
            raise ShapeError(f"conv with groups={self.groups} needs widths divisible by it, got {x.channels} -> {width}")
        size = window_out(x.size, self.kernel, self.stride, self.padding, self.dilation)
        check_norm(self.norm, width, size=size)
        return FeatureShape(width, x.level + step, size)

    def emit(self, e, args, shapes, out):
        conv = build_conv(shapes[0].channels, out.channels, self.kernel, self.stride, self.padding, self.bias, self.init, self.groups, self.dilation)
        alone = self.placed == "post" and not self.norm  # after a fusion, a plain conv's weights sit at the op's own path
        y = emit_conv(e, "" if alone else "conv", conv, args[0], self.padding)
        if self.norm:
            y = e.call_module(self.norm, build_norm(self.norm, out.channels), y)
        return emit_act(e, self.act, y) if self.act else y
