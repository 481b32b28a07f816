"""Fuse ops: how a node merges its resampled inputs. A node with one input skips fusion."""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import Literal

from ..shape import FeatureShape, ShapeError
from ..weights import ParameterDecl
from .base import FUSE, FuseOp
from .common import ActName


def _same_channels(op: str, xs: list[FeatureShape]) -> FeatureShape:
    widths = sorted({x.channels for x in xs})
    if len(widths) > 1:
        raise ShapeError(f"fuse '{op}' needs inputs of equal width, got {', '.join(map(str, widths))} channels; set the node's channels so that every input is projected")
    return xs[0]


@FUSE.register("sum", add={})
@dataclass(frozen=True)
class Sum(FuseOp):
    """Element-wise sum (FPN, PAFPN)."""

    def infer(self, xs):
        return _same_channels(self.name, xs)

    def emit(self, e, args, shapes, out):
        total = args[0]
        for arg in args[1:]:
            total = e.call_function(operator.add, total, arg)
        return total


@FUSE.register("mean")
@dataclass(frozen=True)
class Mean(FuseOp):
    """Element-wise mean (Balanced FPN's gather)."""

    def infer(self, xs):
        return _same_channels(self.name, xs)

    def emit(self, e, args, shapes, out):
        total = Sum().emit(e, args, shapes, out)
        return e.call_function(operator.truediv, total, float(len(args)))


@FUSE.register("weighted", fast={"norm": "fast"}, softmax={"norm": "softmax"})
@dataclass(frozen=True)
class Weighted(FuseOp):
    """One learned weight per input (BiFPN), or per input and channel (``per: channel``).
    ``norm: fast`` is ``relu(w) / (sum + eps)``, ``softmax`` is ``softmax(w)`` (both over the
    inputs), ``none`` uses the raw weights."""

    norm: Literal["fast", "softmax", "none"] = "fast"
    eps: float = 1e-4
    per: Literal["input", "channel"] = "input"
    """``input``: one weight per input (BiFPN); ``channel``: one per input and channel, normalised
    over the inputs channel by channel."""

    has_parameters = True

    def weight_estimate(self, shapes, out):
        return len(shapes) * (out.channels if self.per == "channel" else 1)

    def label(self) -> str:
        return f"weighted ({self.norm})"

    def infer(self, xs):
        return _same_channels(self.name, xs)

    def emit(self, e, args, shapes, out):
        """Graph ops on the parameter ``weight`` (one per input, starting at 1 as in
        EfficientDet). With ``fast`` and every weight at or below zero the output is zeros and
        the weights' gradients are zero (relu's), never NaN: ``eps`` (> 0, checked by the op)
        keeps the division finite."""
        import torch
        import torch.nn.functional as F

        per_channel = self.per == "channel"
        weight = e.parameter("weight", ParameterDecl((len(args), out.channels, 1, 1) if per_channel else (len(args),), fill=1.0))
        if self.norm == "fast":
            weight = e.call_function(F.relu, weight)
            total = e.call_function(torch.sum, weight, 0, True) if per_channel else e.call_function(torch.sum, weight)
            weight = e.call_function(operator.truediv, weight, e.call_function(operator.add, total, self.eps))
        elif self.norm == "softmax":
            weight = e.call_function(torch.softmax, weight, 0)
        out = e.call_function(operator.mul, args[0], e.call_function(operator.getitem, weight, 0))
        for index, x in enumerate(args[1:], start=1):
            out = e.call_function(operator.add, out, e.call_function(operator.mul, x, e.call_function(operator.getitem, weight, index)))
        return out


@FUSE.register("concat", cat={})
@dataclass(frozen=True)
class Concat(FuseOp):
    """Concatenate along channels (YOLO's PAN); inputs keep their own widths, post ops reduce."""

    projects_inputs = False

    def infer(self, xs):
        return xs[0].with_(channels=sum(x.channels for x in xs))

    def emit(self, e, args, shapes, out):
        import torch

        return e.call_function(torch.cat, list(args), 1)


@FUSE.register("product", mul={})
@dataclass(frozen=True)
class Product(FuseOp):
    """Element-wise product of the inputs (gates, attention maps applied to features). An input
    of width 1 broadcasts over the others' channels (a spatial gate); otherwise widths agree."""

    def infer(self, xs):
        widths = sorted({x.channels for x in xs} - {1})
        if len(widths) > 1:
            raise ShapeError(f"fuse 'product' needs inputs of equal width (or width 1, broadcast), got {', '.join(str(x.channels) for x in xs)} channels")
        return xs[0].with_(channels=widths[0] if widths else 1)

    projects_inputs = False

    def emit(self, e, args, shapes, out):
        total = args[0]
        for arg in args[1:]:
            total = e.call_function(operator.mul, total, arg)
        return total


@FUSE.register("pixel_weights", asff={})
@dataclass(frozen=True)
class PixelWeights(FuseOp):
    """A weight per input *and pixel*, computed from the inputs (ASFF, Liu et al. 2019): each
    input goes through its own 1x1 conv-BN-activation to ``compress`` channels
    (``weight_level_<i>``), the results are concatenated and a 1x1 conv with bias
    (``weight_levels``) gives one logit per input at every pixel; the softmax over the inputs
    weighs their sum, ``sum_i x_i * w_i``. BN ``eps``/``momentum``, ``act`` and its ``slope``
    describe the weight branches (ASFF: PyTorch's BN defaults, leaky_relu 0.1)."""

    compress: int = 16
    eps: float = 1e-5
    momentum: float = 0.1
    act: ActName = "leaky_relu"
    slope: float = 0.1

    has_parameters = True

    def label(self) -> str:
        return "pixel weights"

    def weight_estimate(self, shapes, out):
        n = len(shapes)
        return sum(s.channels * self.compress + 4 * self.compress + 1 for s in shapes) + n * self.compress * n + n

    def infer(self, xs):
        return _same_channels(self.name, xs)

    def emit(self, e, args, shapes, out):
        import torch

        from .common import build_conv
        from .csp import emit_conv_bn_act

        branches = [
            emit_conv_bn_act(e, f"weight_level_{i}", x, shape.channels, self.compress, eps=self.eps, momentum=self.momentum, act=self.act, slope=self.slope)
            for i, (x, shape) in enumerate(zip(args, shapes))
        ]
        logits = e.call_module("weight_levels", build_conv(self.compress * len(args), len(args), 1, 1, 0, True, "default"), e.call_function(torch.cat, branches, 1))
        weights = e.call_function(torch.softmax, logits, 1)
        total = None
        for i, x in enumerate(args):
            weight = e.call_function(operator.getitem, weights, (slice(None), slice(i, i + 1)))
            term = e.call_function(operator.mul, x, weight)
            total = term if total is None else e.call_function(operator.add, total, term)
        return total


def _zero_conv(module) -> None:
    """mmcv's ``constant_init(m, 0)``: weight and bias zero."""
    from torch import nn

    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)


@FUSE.register("gated_blend")
@dataclass(frozen=True)
class GatedBlend(FuseOp):
    """A per-pixel blend of two maps, gated by the first (DetectoRS' recursive feature pyramid
    mixing its new pyramid into the old one): ``w * a + (1 - w) * b`` with
    ``w = sigmoid(conv1x1(a))``, one channel broadcast over the others. The 1x1 conv (with bias)
    is the op's module; ``zeros_init`` starts it at zero, so ``w = 0.5`` (mmdet's ``rfp_weight``)."""

    zeros_init: bool = True

    has_parameters = True

    def label(self) -> str:
        return "gated blend"

    def weight_estimate(self, shapes, out):
        return out.channels + 1

    def infer(self, xs):
        if len(xs) != 2:
            raise ShapeError(f"fuse 'gated_blend' blends exactly two inputs (the gating one first), got {len(xs)}")
        return _same_channels(self.name, xs)

    def emit(self, e, args, shapes, out):
        import torch

        from .common import build_conv

        conv = build_conv(out.channels, 1, 1, 1, 0, True, "default")
        if self.zeros_init:
            conv = replace(conv, init=_zero_conv)
        weight = e.call_function(torch.sigmoid, e.call_module("", conv, args[0]))
        kept = e.call_function(operator.mul, weight, args[0])
        rest = e.call_function(operator.mul, e.call_function(operator.sub, 1, weight), args[1])
        return e.call_function(operator.add, kept, rest)
