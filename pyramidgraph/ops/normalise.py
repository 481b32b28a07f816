"""Normalisations with a learned scale that are not a framework's norm layer.

* ``l2norm`` (post): SSD's L2 normalisation (Liu et al., ECCV 2016, after ParseNet): every
  position's channel vector is divided by its L2 norm and multiplied by a learned per-channel
  weight, initialised to ``scale`` (20 in SSD), so a shallow map with large activations (VGG's
  conv4_3) lines up with the deeper ones. mmdetection's ``SSDNeck`` runs it on its first input
  (``mmdet/models/necks/ssd_neck.py``, ``L2Norm``); the parameter is ``weight``.
* ``input_weight`` (post): the learned weight of a one-input node of a weighted fusion
  (efficientdet-pytorch's ``FpnCombine`` keeps ``edge_weights`` for a single input, as its
  ``pan_*`` layouts have). A node with one input skips its fuse op, so this scales the input
  by what a weighted fusion of one input gives: ``relu(w) / (relu(w) + eps)`` (``fast``),
  ``softmax`` of one weight (1, with the parameter kept for the checkpoint) or ``w`` (``none``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..shape import ShapeError
from ..weights import ParameterDecl
from .base import POST, PostOp, one_call_when_traced

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["L2Norm", "l2_normalise", "InputWeight"]


@one_call_when_traced
def l2_normalise(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight[c] * x / (||x||_2 over channels + eps)``, computed in float32 and returned in
    ``x``'s dtype, as mmdetection's ``L2Norm``."""
    x32 = x.float()
    norm = x32.pow(2).sum(1, keepdim=True).sqrt() + eps
    return (weight.float().view(1, -1, 1, 1).expand_as(x32) * x32 / norm).type_as(x)


@POST.register("l2norm")
@dataclass(frozen=True)
class L2Norm(PostOp):
    """SSD's L2 normalisation over channels with a learned per-channel ``weight`` (one value per
    channel, starting at ``scale``): ``weight * x / (sqrt(sum_c x^2) + eps)``. Keeps the width."""

    scale: float = 20.0
    eps: float = 1e-10

    shorthand = "scale"
    has_parameters = True

    def weight_estimate(self, shapes, out):
        return out.channels

    def infer(self, x, channels):
        if not self.eps > 0:
            raise ShapeError(f"l2norm: eps must be > 0 (it keeps an all-zero position finite), got {self.eps}")
        return x

    def emit(self, e, args, shapes, out):
        weight = e.parameter("weight", ParameterDecl((out.channels,), fill=self.scale))
        return e.call_function(l2_normalise, args[0], weight, self.eps)


@POST.register("input_weight")
@dataclass(frozen=True)
class InputWeight(PostOp):
    """The learned ``weight`` (one value, starting at 1) of a node that fuses one input with
    weights, as EfficientDet's fusion of one input: ``x * relu(w) / (relu(w) + eps)`` for
    ``fast``, ``x * softmax(w)`` (that is, ``x``) for ``softmax``, ``x * w`` for ``none``. Keeps
    the width. (The spec's fuse ops are skipped for a node with one input.)"""

    norm: Literal["fast", "softmax", "none"] = "fast"
    eps: float = 1e-4

    shorthand = "norm"
    has_parameters = True

    def weight_estimate(self, shapes, out):
        return 1

    def infer(self, x, channels):
        if self.norm == "fast" and not self.eps > 0:
            raise ShapeError(f"input_weight: eps must be > 0 with norm fast (it keeps relu(w) / (relu(w) + eps) finite), got {self.eps}")
        return x

    def emit(self, e, args, shapes, out):
        import operator

        import torch
        import torch.nn.functional as F

        weight = e.parameter("weight", ParameterDecl((1,), fill=1.0))
        if self.norm == "fast":
            weight = e.call_function(F.relu, weight)
            weight = e.call_function(operator.truediv, weight, e.call_function(operator.add, weight, self.eps))
        elif self.norm == "softmax":
            weight = e.call_function(torch.softmax, weight, 0)
        return e.call_function(operator.mul, args[0], e.call_function(operator.getitem, weight, 0))
