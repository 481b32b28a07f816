"""Fuse ops: how a node merges its resampled inputs. A node with one input skips fusion."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Literal

from ..shape import FeatureShape, ShapeError
from .base import FUSE, FuseOp


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
    """One learned weight per input (BiFPN). ``norm: fast`` is ``relu(w) / (sum + eps)``,
    ``softmax`` is ``softmax(w)``, ``none`` uses the raw weights."""

    norm: Literal["fast", "softmax", "none"] = "fast"
    eps: float = 1e-4

    has_parameters = True

    def weight_estimate(self, shapes, out):
        return len(shapes)

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

        weight = e.parameter("weight", torch.nn.Parameter(torch.ones(len(args))))
        if self.norm == "fast":
            weight = e.call_function(F.relu, weight)
            weight = e.call_function(operator.truediv, weight, e.call_function(operator.add, e.call_function(torch.sum, weight), self.eps))
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
