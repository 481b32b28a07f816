"""Attention over a whole map, and pooling to a map's size (Balanced FPN).

* ``nonlocal`` (post): the non-local block of Wang et al. 2018 as mmcv's ``NonLocal2d``:
  1x1 convs ``g``, ``theta``, ``phi`` to ``channels // reduction``, pairwise weights between all
  positions, and ``x + conv_out(weights @ g)``. Libra R-CNN's BFP refines its balanced map
  with it (``reduction: 1, use_scale: false``).
* ``adaptive_pool`` (resample): adaptive max (or average) pooling to the size of the target
  level's map, ``F.adaptive_max_pool2d(x, output_size=size)``; BFP gathers finer levels and
  scatters to coarser ones this way. Unlike ``maxpool`` (a fixed window and stride) the
  windows follow the two sizes, so it lines up with any input size.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..shape import ShapeError
from ..weights import ModuleDecl
from .base import POST, RESAMPLE, PostOp, ResampleOp
from .common import build_conv, build_norm, check_norm

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["AdaptivePool", "NonLocal"]


@RESAMPLE.register("adaptive_pool", adaptive_maxpool={"mode": "max"}, adaptive_avgpool={"mode": "avg"})
@dataclass(frozen=True)
class AdaptivePool(ResampleOp):
    """Adaptive ``max`` (or ``avg``) pooling to the size of the target level's map
    (``F.adaptive_max_pool2d(x, output_size=size)``, Balanced FPN). Use as ``down``."""

    mode: Literal["max", "avg"] = "max"

    needs_size_ref = True

    def label(self) -> str:
        return f"adaptive {self.mode} pool"

    def infer(self, x, target):
        if target.level < x.level:
            raise ShapeError(f"adaptive_pool makes maps coarser; it cannot bring level {x.level} to level {target.level} (use it as down, not up)")
        return x.with_(level=target.level, size=target.size if x.size else None)

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        pool = F.adaptive_max_pool2d if self.mode == "max" else F.adaptive_avg_pool2d
        return e.call_function(pool, args[0], e.size_of(args[1]))


def _zero_weight_and_bias(module: Any) -> None:
    """mmcv's ``zeros_init`` of the non-local block's last conv (or its norm)."""
    from torch import nn

    nn.init.zeros_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _then(first: Callable[[Any], Any] | None, second: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One init that runs ``first`` (when there is one), then ``second``."""
    if first is None:
        return second
    return lambda module: (first(module), second(module))


def _divide_by_positions(weights: torch.Tensor) -> torch.Tensor:
    """``dot_product`` pairwise weights: divide by the number of positions."""
    return weights / weights.shape[-1]


@POST.register("nonlocal", non_local={})
@dataclass(frozen=True)
class NonLocal(PostOp):
    """Non-local block (mmcv ``NonLocal2d``): ``x + conv_out(softmax(theta(x)^T phi(x)) g(x))``
    with 1x1 convs to ``channels // reduction``. ``mode``: ``embedded_gaussian`` (softmax of
    ``theta^T phi``, divided by ``sqrt(inner width)`` first when ``use_scale``), ``dot_product``
    (divided by the number of positions, no softmax) or ``gaussian`` (softmax of ``x^T x``, no
    theta/phi). ``norm`` (``norm_groups``, ``norm_eps``) follows ``conv_out`` (its conv then has no bias). Init as mmcv:
    ``g``/``theta``/``phi`` normal(std 0.01); ``zeros_init`` zeroes ``conv_out`` (or its norm), so
    the block starts as the identity."""

    reduction: int = 2
    use_scale: bool = True
    mode: Literal["embedded_gaussian", "dot_product", "gaussian"] = "embedded_gaussian"
    norm: Literal["bn", "gn"] | None = None
    norm_groups: int = 32
    norm_eps: float = 1e-5
    zeros_init: bool = True

    has_parameters = True

    def label(self) -> str:
        return "non-local"

    def inner(self, channels: int) -> int:
        return max(channels // self.reduction, 1)

    def weight_estimate(self, shapes, out):
        channels, inner = shapes[0].channels, self.inner(shapes[0].channels)
        projections = 1 if self.mode == "gaussian" else 3  # g, and theta and phi unless gaussian
        norm = {"bn": 4 * channels + 1, "gn": 2 * channels, None: channels}[self.norm]  # conv_out's norm, or its bias
        return projections * (channels * inner + inner) + inner * channels + norm

    def infer(self, x, channels):
        if self.reduction < 1:
            raise ShapeError(f"nonlocal: reduction must be at least 1, got {self.reduction}")
        check_norm(self.norm, x.channels, self.norm_groups)
        return x

    def emit(self, e, args, shapes, out):
        import torch

        x = args[0]
        channels = shapes[0].channels
        inner = self.inner(channels)

        def conv1x1(cin: int, cout: int, bias: bool = True, init: Callable[[Any], Any] | None = None) -> ModuleDecl:
            conv = build_conv(cin, cout, 1, 1, 0, bias, "normal")
            return conv if init is None else replace(conv, init=_then(conv.init, init))

        g = e.call_module("g", conv1x1(channels, inner), x)
        if self.mode == "gaussian":
            theta, phi = x, x
        else:
            theta = e.call_module("theta", conv1x1(channels, inner), x)
            phi = e.call_module("phi", conv1x1(channels, inner), x)
        g_x = e.call_function(torch.transpose, e.call_function(torch.flatten, g, 2), 1, 2)
        theta_x = e.call_function(torch.transpose, e.call_function(torch.flatten, theta, 2), 1, 2)
        phi_x = e.call_function(torch.flatten, phi, 2)
        weights = e.call_function(torch.matmul, theta_x, phi_x)
        if self.mode == "dot_product":
            weights = e.call_function(_divide_by_positions, weights)
        else:
            if self.mode == "embedded_gaussian" and self.use_scale:
                weights = e.call_function(operator.truediv, weights, inner**0.5)
            weights = e.call_function(torch.softmax, weights, -1)
        y = e.call_function(torch.transpose, e.call_function(torch.matmul, weights, g_x), 1, 2)
        y = e.call_function(torch.reshape, y, e.call_function(getattr, g, "shape"))
        zeros = _zero_weight_and_bias if self.zeros_init else None  # the block starts as the identity
        y = e.call_module("conv_out", conv1x1(inner, channels, bias=self.norm is None, init=zeros if self.norm is None else None), y)
        if self.norm:
            y = e.call_module("norm", build_norm(self.norm, channels, self.norm_groups, eps=self.norm_eps, init=zeros), y)
        return e.call_function(operator.add, x, y)
