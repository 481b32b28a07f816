"""mmcv's ``ConvModule`` as an op, with its ``order``, for Feature Pyramid Grids (mmdetection's ``FPG``).

* ``conv_module`` (one op, on an edge and after a fusion): a convolution, an optional norm and
  an optional activation, run in ``order`` (any permutation of conv, norm, act: FPG's
  transitions are ``act_conv_norm``, so the activation reads the *input*). A norm placed before
  the conv normalises the input's width, as mmcv builds it. On an edge its stride is
  ``2**level difference`` unless given (FPG's ``same_up_trans``, 3x3 stride 2); put an
  ``upsample`` in front of it in a ``via`` list for FPG's ``interpolation_conv`` transitions.
  Submodules carry mmcv's names, ``conv`` and ``bn``/``gn``, so a checkpoint maps by one prefix.
  A ConvModule whose order starts with the activation is written ``[{act: relu},
  {conv_module: {act: null, ...}}]`` on an edge (``act``, :mod:`.elementwise`): the same
  computation, and since the activation has no weights, the compiler computes it once for
  every transition that reads the same map (FPG's skip transitions read pathway 0 in every
  pathway).
* ``unused_conv_module`` (post): weights only. It holds the modules of a ConvModule that a
  reference builds but never calls (mmdetection's FPG builds ``same_up`` and ``same_down``
  transitions in every pathway, whatever its direction, and uses one of them), so that its
  ``state_dict`` and parameter count are reproduced; the node's value passes through unchanged
  and no computation is added.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from ..shape import FeatureShape, ShapeError
from .base import POST, RESAMPLE, Op, PostOp
from .common import ActName, Init, Padding, build_conv, build_norm, check_norm, emit_act, emit_conv, stride_at, width_and_step, window_out

__all__ = ["ConvModule", "UnusedConvModule", "ORDERS"]

Order = Literal["conv_norm_act", "conv_act_norm", "norm_conv_act", "norm_act_conv", "act_conv_norm", "act_norm_conv"]
ORDERS = Order.__args__


@dataclass(frozen=True)
class _ConvModuleParams:
    """The fields every ConvModule form shares (stride-1 post form; the resample form adds ``stride``)."""

    kernel: int = 3
    padding: Padding = None
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    norm: Literal["bn", "gn"] | None = None
    norm_groups: int = 32
    norm_eps: float = 1e-5
    norm_momentum: float = 0.1
    act: ActName | None = "relu"
    slope: float = 0.01
    order: Order = "conv_norm_act"
    init: Init = "default"

    has_parameters = True

    def norm_width(self, cin: int, cout: int) -> int:
        """mmcv normalises the conv's output, or its input when the norm comes first."""
        steps = self.order.split("_")
        return cout if steps.index("norm") > steps.index("conv") else cin

    def check(self, cin: int, cout: int) -> None:
        if cin % self.groups or cout % self.groups:
            raise ShapeError(f"{self.name} with groups={self.groups} needs widths divisible by it, got {cin} -> {cout}")
        if self.norm:
            check_norm(self.norm, self.norm_width(cin, cout), self.norm_groups)

    def label(self) -> str:
        names = {"conv": f"conv{self.kernel}x{self.kernel}", "norm": self.norm, "act": self.act}
        return "-".join(names[s] for s in self.order.split("_") if names[s])

    def norm_decl(self, cin: int, cout: int):
        return build_norm(self.norm, self.norm_width(cin, cout), self.norm_groups, eps=self.norm_eps, momentum=self.norm_momentum)

    def emit_module(self, e, x, cin: int, cout: int, stride: int):
        conv = build_conv(cin, cout, self.kernel, stride, self.padding, self.bias, self.init, self.groups, self.dilation)
        for step in self.order.split("_"):
            if step == "conv":
                x = emit_conv(e, "conv", conv, x, self.padding)
            elif step == "norm" and self.norm:
                x = e.call_module(self.norm, self.norm_decl(cin, cout), x)
            elif step == "act" and self.act:
                x = emit_act(e, self.act, x, self.slope)
        return x


@RESAMPLE.register("conv_module")
@POST.register("conv_module")
@dataclass(frozen=True)
class ConvModule(_ConvModuleParams, Op):
    """mmcv's ``ConvModule``: a ``kernel x kernel`` conv (``padding``, ``dilation``, ``groups``,
    ``bias``), a norm (``bn`` or ``gn`` with ``norm_groups``, ``norm_eps``, ``norm_momentum``;
    null: none) and an activation (``act``, ``slope`` for leaky_relu; null: none), run in
    ``order`` (``act_conv_norm``: activation first, as FPG's transitions; a norm before the conv
    normalises the input's width, as mmcv). On an edge it maps to the target width with stride
    ``2**level difference`` unless ``stride`` is given (FPG's ``conv`` transitions; after an
    ``upsample``, its ``interpolation_conv``); after a fusion, to the node's width (or ``out``)
    at stride 1. Modules: ``conv``, ``bn``/``gn``."""

    out: int | None = None
    stride: int | None = None

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    changes_channels = True

    def at(self, inputs, site):
        return replace(self, stride=stride_at(self.stride, inputs[0], site))

    def label(self) -> str:
        text = super().label()
        return f"{text} /{self.stride}" if self.stride and self.stride > 1 else text

    def shape(self, inputs, site):
        x = inputs[0]
        width, step = width_and_step("conv_module", self.stride, self.out, x, site)
        self.check(x.channels, width)
        return FeatureShape(width, x.level + step, window_out(x.size, self.kernel, self.stride, self.padding, self.dilation))

    def emit(self, e, args, shapes, out):
        return self.emit_module(e, args[0], shapes[0].channels, out.channels, self.stride)


@POST.register("unused_conv_module")
@dataclass(frozen=True)
class UnusedConvModule(_ConvModuleParams, PostOp):
    """Weights only: the modules (``conv``, ``bn``/``gn``) of a ``conv_module`` from
    ``in_channels`` (default: the node's width) to ``out`` (default: the node's width) that a
    reference builds but never calls (mmdetection's FPG keeps a ``same_up`` and a ``same_down``
    transition in every pathway and uses one), so that its ``state_dict`` and parameter count
    are reproduced. The node's value passes through unchanged; nothing is computed."""

    in_channels: int | None = None
    out: int | None = None

    def infer(self, x, channels):
        cin = self.in_channels if self.in_channels is not None else x.channels
        cout = self.out if self.out is not None else x.channels
        self.check(cin, cout)
        return x

    def emit(self, e, args, shapes, out):
        cin = self.in_channels if self.in_channels is not None else shapes[0].channels
        cout = self.out if self.out is not None else shapes[0].channels
        e.keep("conv", build_conv(cin, cout, self.kernel, 1, self.padding, self.bias, self.init, self.groups, self.dilation))
        if self.norm:
            e.keep(self.norm, self.norm_decl(cin, cout))
        return args[0]
