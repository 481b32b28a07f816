"""Attention from global pooling: channel gates computed from a map's average, and the Pyramid
Attention Network's two modules.

* ``se`` (post): squeeze-and-excitation (Hu, Shen and Sun, "Squeeze-and-Excitation Networks",
  CVPR 2018): ``x * gate(fc2(act(fc1(mean(x)))))``, the two 1x1 convs (with bias) through
  ``channels // reduction`` (or ``reduced``) channels. The block of SENet, M2Det's SFAM and
  timm's ``SqueezeExcite`` (the same module names, ``fc1`` and ``fc2``).
* ``gau`` (apply, inputs ``[fine, coarse]``): PAN's Global Attention Upsample.
* ``fpa`` (post): PAN's Feature Pyramid Attention.

PAN is Li, Xiong, An and Wang, "Pyramid Attention Network for Semantic Segmentation", BMVC 2018
(arXiv:1805.10180). The wiring of both modules follows segmentation-models-pytorch 0.6.0
(``segmentation_models_pytorch/decoders/pan/decoder.py``: ``GAUBlock``, ``FPABlock`` and the
``ConvBnRelu`` unit they are built of); every such unit here is a conv, a batch norm (PyTorch's
defaults, ``eps``/``momentum``) and a ReLU unless said otherwise, with modules ``<unit>.conv``
and ``<unit>.bn``. smp's convs have a bias although a BN follows (``bias: true``, the default):
in training the BN subtracts the batch mean, so that bias gets no gradient (rounding noise
only) and changes nothing; ``bias: false`` drops it. Where smp differs from the paper, the docstrings say so.
The global-pooling gate of NAS-FPN, the other pooled attention, is the fuse op ``gate``
(:mod:`.gates`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from ..shape import ShapeError
from .base import APPLY, POST, ApplyOp, PostOp
from .common import ActName, build_conv, build_norm, emit_act, emit_conv, out_width

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

    from ..codegen import Emitter

__all__ = ["SqueezeExcite", "GlobalAttentionUpsample", "FeaturePyramidAttention", "GateName"]

GateName = Literal["sigmoid", "hard_sigmoid"]
"""How a gate squashes its logits: ``sigmoid``, or ``hard_sigmoid`` (``relu6(x + 3) / 6``,
``F.hardsigmoid``: MobileNetV3's and timm's cheaper gate)."""


def _gate_function(name: str) -> Callable:
    import torch
    import torch.nn.functional as F

    return {"sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid, "relu": F.relu}[name]


def _conv_bn(e: Emitter, local: str, x: torch.fx.Node, cin: int, cout: int, kernel: int, op: GlobalAttentionUpsample | FeaturePyramidAttention, act: str | None = "relu") -> torch.fx.Node:
    """smp's ``ConvBnRelu``: a ``kernel x kernel`` conv (padding ``kernel // 2``, a bias when
    ``op.bias``), a batch norm (``op.eps``, ``op.momentum``) and, unless ``act`` is None, the
    activation; modules ``<local>.conv``, ``<local>.bn``."""
    y = emit_conv(e, f"{local}.conv", build_conv(cin, cout, kernel, 1, None, op.bias, "default"), x, None)
    y = e.call_module(f"{local}.bn", build_norm("bn", cout, eps=op.eps, momentum=op.momentum), y)
    return emit_act(e, act, y) if act else y


def _conv_bn_weights(cin: int, cout: int, kernel: int, bias: bool) -> int:
    """Parameters and buffers of one :func:`_conv_bn` unit."""
    return cin * cout * kernel**2 + (cout if bias else 0) + 4 * cout + 1


@POST.register("se", squeeze_excite={})
@dataclass(frozen=True)
class SqueezeExcite(PostOp):
    """Squeeze-and-excitation channel gate (Hu et al., CVPR 2018): ``x * gate(fc2(act(fc1(
    mean(x)))))``. The map's global average (one value per channel) goes through a 1x1 conv with
    bias to ``reduced`` channels (``fc1``; default ``channels // reduction``, the paper's ``C/r``,
    r = 16), ``act`` (ReLU in the paper), a 1x1 conv with bias back to ``channels`` (``fc2``) and
    ``gate`` (``sigmoid``, or ``hard_sigmoid``: ``relu6(x + 3) / 6``, MobileNetV3's), which scales
    each channel of ``x``. Any width; the output has the input's width and size. Modules:
    ``fc1``, ``fc2`` (timm's and M2Det's SFAM's names). ``{se: 8}`` is ``reduction: 8``."""

    reduction: int = 16
    reduced: int | None = None
    """The hidden width itself (overrides ``reduction``)."""
    act: ActName = "relu"
    gate: GateName = "sigmoid"

    shorthand = "reduction"
    has_parameters = True

    def label(self) -> str:
        return f"se /{self.reduction}" if self.reduced is None else f"se {self.reduced}"

    def hidden(self, channels: int) -> int:
        if self.reduced is not None:
            if self.reduced < 1:
                raise ShapeError(f"se: reduced must be at least 1, got {self.reduced}")
            return self.reduced
        if self.reduction < 1:
            raise ShapeError(f"se: reduction must be at least 1, got {self.reduction}")
        if channels // self.reduction < 1:
            raise ShapeError(f"se: {channels} channels // reduction {self.reduction} leaves no hidden channel; lower reduction or set reduced")
        return channels // self.reduction

    def weight_estimate(self, shapes, out):
        channels = shapes[0].channels
        hidden = self.hidden(channels)
        return 2 * channels * hidden + hidden + channels

    def infer(self, x, channels):
        self.hidden(x.channels)
        return x

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        x, channels = args[0], shapes[0].channels
        hidden = self.hidden(channels)
        squeezed = e.call_function(F.adaptive_avg_pool2d, x, 1)
        h = emit_act(e, self.act, e.call_module("fc1", build_conv(channels, hidden, 1, 1, 0, True, "default"), squeezed))
        weight = e.call_function(_gate_function(self.gate), e.call_module("fc2", build_conv(hidden, channels, 1, 1, 0, True, "default"), h))
        return e.call_function(operator.mul, x, weight)


InterpolationMode = Literal["nearest", "bilinear", "bicubic", "area", "nearest-exact"]


@APPLY.register("gau")
@dataclass(frozen=True)
class GlobalAttentionUpsample(ApplyOp):
    """PAN's Global Attention Upsample, inputs ``[fine, coarse]`` as they are (smp's
    ``GAUBlock(x=fine, y=coarse)``): ``up(coarse) + conv(fine) * gate(coarse)``, at the fine
    map's level and size. ``conv`` is a 3x3 conv-BN-ReLU unit from the fine map's width to the
    node's; the gate is the coarse map's global average through a 1x1 conv and a BN
    (``gate.conv``, ``gate.bn``) and ``gate_act``; ``bias``: the convs' bias (smp's, redundant
    before a BN: see the module docstring); ``up`` interpolates the coarse map to the fine
    map's size (``mode``; ``align_corners`` true for bilinear, as smp). The coarse map must have
    the node's width (it is added as it is). Where smp differs from the paper: the paper's text
    describes the gate as a 1x1 conv with BN and ReLU, smp's is a 1x1 conv, BN and a sigmoid
    (``gate_act: sigmoid``, the default; ``relu`` is the paper's text). An apply op, not a fusion, because the gate pools
    the coarse map at its own resolution (the mean of an upsampled map is another number)."""

    mode: InterpolationMode = "bilinear"
    gate_act: Literal["sigmoid", "hard_sigmoid", "relu"] = "sigmoid"
    bias: bool = True
    eps: float = 1e-5
    momentum: float = 0.1

    min_inputs = 2
    max_inputs = 2
    has_parameters = True

    def label(self) -> str:
        return "global attention upsample"

    def infer(self, xs, channels):
        fine, coarse = xs
        width = out_width(None, channels, coarse.channels)
        if coarse.level < fine.level:
            raise ShapeError(f"apply 'gau' reads [fine map, coarse map]; got levels {fine.level} and {coarse.level}: list the finer map first")
        if coarse.channels != width:
            raise ShapeError(f"apply 'gau': the coarse map has {coarse.channels} channels but the output {width}; the coarse map is added as it is, so give it the node's width")
        return fine.with_(channels=width)

    def weight_estimate(self, shapes, out):
        return _conv_bn_weights(shapes[0].channels, out.channels, 3, self.bias) + _conv_bn_weights(out.channels, out.channels, 1, self.bias)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        fine, coarse = args
        width = out.channels
        up = e.call_function(F.interpolate, coarse, size=e.size_of(fine), mode=self.mode, align_corners=True if self.mode == "bilinear" else None)
        low = _conv_bn(e, "conv", fine, shapes[0].channels, width, 3, self)
        pooled = e.call_function(F.adaptive_avg_pool2d, coarse, 1)
        gate = e.call_function(_gate_function(self.gate_act), _conv_bn(e, "gate", pooled, width, width, 1, self, act=None))
        return e.call_function(operator.add, up, e.call_function(operator.mul, low, gate))


@POST.register("fpa")
@dataclass(frozen=True)
class FeaturePyramidAttention(PostOp):
    """PAN's Feature Pyramid Attention (smp's ``FPABlock``) to the node's width (or ``out``):
    ``up(a) * mid(x) + pooled(mean(x))``. ``mid`` and ``pooled`` are 1x1 conv-BN-ReLU units to
    the output width (``pooled`` on the global average, broadcast over the map: exactly smp's
    interpolation of a 1x1 map); ``a`` is a one-channel U: ``x1 = down1(maxpool(x))`` (7x7 unit to
    one channel), ``x2 = down2(maxpool(x1))`` (5x5), ``x3 = down3.1(down3.0(maxpool(x2)))`` (two
    3x3), then ``a = up(up(conv2(x2) + up(x3)) + conv1(x1))`` with ``conv2`` 5x5 and ``conv1`` 7x7,
    each ``up`` interpolating (``mode``; align_corners true for bilinear, as smp) to the next
    finer map's size; every max pool is 2x2, stride 2, so each side must be at least 8. ``bias``:
    the convs' bias (smp's, redundant before a BN: see the module docstring). The
    global-pooling branch is added, as smp does (the paper only says it is combined with the
    output); the pyramid is one channel wide, as smp, an attention map broadcast over the
    ``mid`` branch's channels. smp's ``FPABlock`` fails for any mode but bilinear (it passes
    ``align_corners=False`` to nearest interpolation); here ``nearest`` works. Modules: ``pooled``, ``mid``, ``down1``, ``down2``, ``down3.0``,
    ``down3.1``, ``conv2``, ``conv1``."""

    out: int | None = None
    mode: Literal["bilinear", "nearest"] = "bilinear"
    bias: bool = True
    eps: float = 1e-5
    momentum: float = 0.1

    has_parameters = True

    def label(self) -> str:
        return "feature pyramid attention"

    def infer(self, x, channels):
        if x.size is not None and min(x.size) < 8:
            raise ShapeError(f"fpa: a {x.size[0]}x{x.size[1]} map is too small for its three 2x2 max pools; each side must be at least 8 (a larger image)")
        return x.with_(channels=out_width(self.out, channels, x.channels))

    def weight_estimate(self, shapes, out):
        cin, width = shapes[0].channels, out.channels
        return 2 * _conv_bn_weights(cin, width, 1, self.bias) + _conv_bn_weights(cin, 1, 7, self.bias) + sum(_conv_bn_weights(1, 1, k, self.bias) for k in (5, 3, 3, 5, 7))

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        x, cin, width = args[0], shapes[0].channels, out.channels

        def unit(local, value, a, b, kernel):
            return _conv_bn(e, local, value, a, b, kernel, self)

        def up(value, like):
            return e.call_function(F.interpolate, value, size=e.size_of(like), mode=self.mode, align_corners=True if self.mode == "bilinear" else None)

        def pool(value):
            return e.call_function(F.max_pool2d, value, 2, 2)

        pooled = unit("pooled", e.call_function(F.adaptive_avg_pool2d, x, 1), cin, width, 1)
        mid = unit("mid", x, cin, width, 1)
        x1 = unit("down1", pool(x), cin, 1, 7)
        x2 = unit("down2", pool(x1), 1, 1, 5)
        x3 = unit("down3.1", unit("down3.0", pool(x2), 1, 1, 3), 1, 1, 3)
        a = e.call_function(operator.add, unit("conv2", x2, 1, 1, 5), up(x3, x2))
        a = e.call_function(operator.add, up(a, x1), unit("conv1", x1, 1, 1, 7))
        a = up(a, x)
        return e.call_function(operator.add, e.call_function(operator.mul, a, mid), pooled)
