"""A ResNet built from ops, for necks that run a backbone themselves (DetectoRS' Recursive
Feature Pyramid, Qiao et al. 2021, re-runs a ResNet on the image with the pyramid fed back).

* ``resnet_stem`` (apply, one input): the image through a 7x7 stride-2 conv without bias, batch
  norm, ReLU and a 3x3 stride-2 max pool (padding 3 and 1): the stem of torchvision's and
  mmdetection's ResNet (``deep_stem`` false), two levels coarser. Modules ``conv1``, ``bn1``.
* ``bottleneck_stage`` (apply, inputs ``[x]`` or ``[x, feedback]``): one ResNet stage (mmdet's
  ``ResLayer``) of ``blocks`` Bottlenecks, style pytorch (the stride on the 3x3 conv):
  ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + identity)``, the identity being
  ``downsample`` (1x1 conv with the stride, no bias, and BN) in block 0 when the shape changes.
  A second input is DetectoRS' feedback: block 0 adds ``rfp_conv`` (1x1 with bias) of it after
  the residual add and before the final ReLU (``Bottleneck.rfp_forward``); the feedback must be
  at the stage's output level and size. Modules as mmdet names them: ``<i>.conv1``, ``<i>.bn1``
  ... ``<i>.bn3``, ``0.downsample.0``/``.1``, ``0.rfp_conv``.
* ``aspp`` (post): DetectoRS' Atrous Spatial Pyramid Pooling (mmdet's ``rfp.ASPP``): one conv
  with bias and a ReLU per entry of ``dilations`` (3x3 with padding and dilation ``d`` when
  ``d > 1``, else 1x1), each to ``out`` channels (default: the width shared out); the last
  branch reads the map's global average (its dilation must be 1) and is broadcast over the
  map; the branches are concatenated in order. Modules ``0``, ``1``...

Batch norms are ``nn.BatchNorm2d`` with ``eps``/``momentum`` (PyTorch's defaults, as mmcv's
``BN``). Convolutions keep PyTorch's default init (a DetectoRS ResNet starts from pretrained
weights; mmdet's kaiming-normal fan-out init makes the maps grow block by block while the
batch norms hold their initial statistics), except ``rfp_conv``, which starts at zero with
``zeros_init`` as in mmdet (the feedback is off at the start of training).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..shape import ShapeError
from .base import APPLY, POST, ApplyOp, PostOp
from .common import build_conv, build_norm, window_out

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

__all__ = ["ResNetStem", "BottleneckStage", "ASPP"]

MAX_STAGE_BLOCKS = 64
"""Most Bottlenecks in one stage (ResNet-152's third stage has 36)."""


def _zeros(module: Any) -> None:
    """mmcv's ``constant_init(m, 0)``: weight and bias zero."""
    from torch import nn

    nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False, dilation: int = 1, zeros: bool = False):
    conv = build_conv(cin, cout, kernel, stride, padding, bias, "default", dilation=dilation)
    return replace(conv, init=_zeros) if zeros else conv


def _stride_levels(name: str, stride: int) -> int:
    step = stride.bit_length() - 1
    if 2**step != stride:
        raise ShapeError(f"{name}: stride {stride} is not a power of two")
    return step


@APPLY.register("resnet_stem")
@dataclass(frozen=True)
class ResNetStem(ApplyOp):
    """ResNet's stem (torchvision, mmdet with ``deep_stem`` false) to the node's width (or
    ``out``): a 7x7 stride-2 conv without bias (padding 3), batch norm, ReLU and a 3x3 stride-2
    max pool (padding 1); the output is two levels coarser than the input (an image at level 0 gives
    level 2, ``ceil(size / 4)``). Modules: ``conv1``, ``bn1``."""

    out: int | None = None
    eps: float = 1e-5
    momentum: float = 0.1

    min_inputs = 1
    max_inputs = 1
    has_parameters = True

    def label(self) -> str:
        return "resnet stem"

    def width(self, channels: int | None) -> int:
        width = self.out if self.out is not None else channels
        if width is None:
            raise ShapeError("resnet_stem: set the node's channels (or out) to the stem's width")
        return width

    def weight_estimate(self, shapes, out):
        return shapes[0].channels * out.channels * 49 + 4 * out.channels + 1

    def level_of(self, levels):
        return levels[0] + 2 if levels else None

    def infer(self, xs, channels):
        x = xs[0]
        size = window_out(window_out(x.size, 7, 2, 3), 3, 2, 1)
        return x.with_(channels=self.width(channels), level=x.level + 2, size=size)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        y = e.call_module("conv1", _conv(shapes[0].channels, out.channels, 7, 2, 3), args[0])
        y = e.call_module("bn1", build_norm("bn", out.channels, eps=self.eps, momentum=self.momentum), y)
        y = e.call_function(F.relu, y)
        return e.call_function(F.max_pool2d, y, 3, 2, 1)


@APPLY.register("bottleneck_stage")
@dataclass(frozen=True)
class BottleneckStage(ApplyOp):
    """One ResNet stage of ``blocks`` Bottlenecks (mmdet's ``ResLayer``, style pytorch): block
    ``i`` is ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + identity)`` with 1x1
    ``conv1`` to ``planes``, 3x3 ``conv2`` (the ``stride`` in block 0) and 1x1 ``conv3`` to
    ``planes * expansion``, none with bias; block 0's identity is ``downsample`` (1x1 conv with
    the stride and BN) when the stride or the width changes. A second input is fed back
    (DetectoRS' ``rfp_forward``): block 0 adds ``rfp_conv`` (1x1 with bias) of it after the
    residual add, before the final ReLU; it must be at the stage's output level and size
    (``zeros_init``: ``rfp_conv`` starts at zero, as mmdet). The output is ``log2(stride)``
    levels coarser than the input. Modules: ``<i>.conv1``, ``<i>.bn1`` ... ``<i>.bn3``,
    ``0.downsample.0``/``.1``, ``0.rfp_conv``."""

    blocks: int = 1
    planes: int = 64
    stride: int = 1
    expansion: int = 4
    eps: float = 1e-5
    momentum: float = 0.1
    zeros_init: bool = True

    shorthand = "blocks"
    min_inputs = 1
    max_inputs = 2
    has_parameters = True

    def label(self) -> str:
        return f"bottleneck x{self.blocks} /{self.stride}"

    def check(self) -> None:
        if not 1 <= self.blocks <= MAX_STAGE_BLOCKS:
            raise ShapeError(f"bottleneck_stage: blocks must be between 1 and {MAX_STAGE_BLOCKS}, got {self.blocks}")
        if not 1 <= self.planes <= 65536 or not 1 <= self.expansion <= 64 or self.planes * self.expansion > 65536:
            raise ShapeError(f"bottleneck_stage: planes ({self.planes}) and expansion ({self.expansion}) must be positive, with planes * expansion at most 65536")

    def level_of(self, levels):
        step = self.stride.bit_length() - 1
        return levels[0] + step if levels and 2**step == self.stride else None

    def needs_downsample(self, cin: int) -> bool:
        return self.stride != 1 or cin != self.planes * self.expansion

    def weight_estimate(self, shapes, out):
        cin, planes, width = shapes[0].channels, self.planes, self.planes * self.expansion
        total = 0
        for b in range(self.blocks):
            c = cin if b == 0 else width
            total += c * planes + 9 * planes * planes + planes * width + 4 * (2 * planes + width) + 3
        if self.needs_downsample(cin):
            total += cin * width + 4 * width + 1
        if len(shapes) > 1:
            total += shapes[1].channels * width + width
        return total

    def infer(self, xs, channels):
        self.check()
        x = xs[0]
        step = _stride_levels("bottleneck_stage", self.stride)
        width = self.planes * self.expansion
        if channels is not None and channels != width:
            raise ShapeError(f"bottleneck_stage: the stage gives planes * expansion = {width} channels, but the node declares {channels}")
        out = x.with_(channels=width, level=x.level + step, size=window_out(x.size, 3, self.stride, 1))
        if len(xs) > 1:
            feedback = xs[1]
            if feedback.level != out.level:
                raise ShapeError(f"bottleneck_stage: the feedback is at level {feedback.level}, but the stage's output is at level {out.level}; feed back a map of the output's level")
            if feedback.size is not None and out.size is not None and feedback.size != out.size:
                raise ShapeError(f"bottleneck_stage: the feedback ({feedback.size[0]}x{feedback.size[1]}) is added to the stage's output ({out.size[0]}x{out.size[1]}), so their sizes must be equal")
        return out

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        planes, width = self.planes, self.planes * self.expansion
        x, cin = args[0], shapes[0].channels

        def bn(local: str, channels: int, value: torch.fx.Node) -> torch.fx.Node:
            return e.call_module(local, build_norm("bn", channels, eps=self.eps, momentum=self.momentum), value)

        for b in range(self.blocks):
            stride = self.stride if b == 0 else 1
            y = e.call_function(F.relu, bn(f"{b}.bn1", planes, e.call_module(f"{b}.conv1", _conv(cin, planes, 1), x)))
            y = e.call_function(F.relu, bn(f"{b}.bn2", planes, e.call_module(f"{b}.conv2", _conv(planes, planes, 3, stride, 1), y)))
            y = bn(f"{b}.bn3", width, e.call_module(f"{b}.conv3", _conv(planes, width, 1), y))
            identity = x
            if b == 0 and self.needs_downsample(cin):
                identity = bn("0.downsample.1", width, e.call_module("0.downsample.0", _conv(cin, width, 1, stride), x))
            y = e.call_function(operator.add, y, identity)
            if b == 0 and len(args) > 1:
                feedback = e.call_module("0.rfp_conv", _conv(shapes[1].channels, width, 1, bias=True, zeros=self.zeros_init), args[1])
                y = e.call_function(operator.add, y, feedback)
            x = e.call_function(F.relu, y)
            cin = width
        return x


@POST.register("aspp")
@dataclass(frozen=True)
class ASPP(PostOp):
    """Atrous Spatial Pyramid Pooling as DetectoRS feeds its pyramid back (mmdet's ``rfp.ASPP``):
    one conv with bias and a ReLU per entry of ``dilations``, each to ``out`` channels (default:
    the node's width, else the input's, shared out between the branches; 3x3 with padding and
    dilation ``d`` when ``d > 1``, else 1x1); the last branch reads the map's global average (so
    its dilation must be 1) and is broadcast over the map; the branches are concatenated in order
    (``len(dilations) * out`` channels). Modules: ``0``, ``1``..."""

    dilations: tuple[int, ...] = (1, 3, 6, 1)
    out: int | None = None

    has_parameters = True

    def label(self) -> str:
        return f"aspp {'/'.join(map(str, self.dilations))}"

    def check(self) -> None:
        if len(self.dilations) < 2:
            raise ShapeError(f"aspp: at least two dilations are needed (the last is the pooled branch), got {list(self.dilations)}")
        if any(not 1 <= d <= 64 for d in self.dilations):
            raise ShapeError(f"aspp: dilations must be between 1 and 64, got {list(self.dilations)}")
        if self.dilations[-1] != 1:
            raise ShapeError(f"aspp: the last branch reads the global average, so its dilation must be 1, got {list(self.dilations)}")

    def branch(self, width: int) -> int:
        """Each branch's width: ``out``, else the width (the node's, or the input's) shared out."""
        if self.out is not None:
            return self.out
        if width % len(self.dilations):
            raise ShapeError(f"aspp: {width} channels do not divide into {len(self.dilations)} branches; set out, the width of each")
        return width // len(self.dilations)

    def weight_estimate(self, shapes, out):
        cin, branch = shapes[0].channels, out.channels // len(self.dilations)
        return sum(cin * branch * (9 if d > 1 else 1) + branch for d in self.dilations)

    def infer(self, x, channels):
        self.check()
        width = len(self.dilations) * self.branch(channels if channels is not None else x.channels)
        if channels is not None and channels != width:
            raise ShapeError(f"aspp: {len(self.dilations)} branches of {width // len(self.dilations)} channels give {width}, but the node declares {channels}")
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        import torch
        import torch.nn.functional as F

        x, cin, branch = args[0], shapes[0].channels, out.channels // len(self.dilations)
        pooled = e.call_function(F.adaptive_avg_pool2d, x, 1)
        branches = []
        for k, d in enumerate(self.dilations):
            last = k == len(self.dilations) - 1
            conv = _conv(cin, branch, 3 if d > 1 else 1, 1, d if d > 1 else 0, bias=True, dilation=d)
            branches.append(e.call_function(F.relu, e.call_module(str(k), conv, pooled if last else x)))
        branches[-1] = e.call_function(torch.broadcast_to, branches[-1], e.call_function(getattr, branches[-2], "shape"))  # mmdet's expand_as
        return e.call_function(torch.cat, branches, 1)
