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
from .base import POST, RESAMPLE, PostOp, ResampleOp, one_call_when_traced
from .common import build_conv, build_norm, check_norm

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["AdaptivePool", "NonLocal", "adaptive_max_pool", "adaptive_max_pool_symbolic"]


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
        """``max`` calls :func:`adaptive_max_pool` (``F.adaptive_max_pool2d`` in eager mode, a
        formulation ``torch.export`` keeps symbolic when compiling); ``avg`` calls
        ``F.adaptive_avg_pool2d``, whose ``output_size`` is already ``SymInt[2]``."""
        import torch.nn.functional as F

        pool = adaptive_max_pool if self.mode == "max" else F.adaptive_avg_pool2d
        return e.call_function(pool, args[0], e.size_of(args[1]))


def _adaptive_max_along(x: torch.Tensor, dim: int, out: Any) -> torch.Tensor:
    """Adaptive max pooling of ``x`` to ``out`` along ``dim`` (2 or 3), with no tensor
    dimension whose size is a window's length.

    Window ``i`` is ``[floor(i * length / out), ceil((i + 1) * length / out))``, as ATen's
    ``start_index`` and ``end_index``. A window-length dimension (a reshape, or a gather of
    ``span`` taps) would be a size torch.export must decide things about (is it 1? is the
    result contiguous?) that it cannot prove from the input dims, so every window length is
    kept in index tensors instead:

    * where ``out <= length``, an element lies in at most two windows (the first containing
      it, ``floor(r * out / length)``, and the last, ``ceil((r + 1) * out / length) - 1``): two
      ``scatter_reduce(amax)`` into ``-inf`` reach every element of every window;
    * where ``out >= length``, a window holds at most two elements: the maximum of its first
      and last element is its maximum.

    Each part gives a maximum over elements of the window, and one of them the whole window's,
    so the elementwise maximum of the two is exactly ATen's value, at every size, with no
    branch on the sizes."""
    import torch

    length = x.shape[dim]
    device = x.device
    view = [1, 1, 1, 1]
    view[dim] = -1
    r = torch.arange(length, device=device)
    first = torch.div(r * out, length, rounding_mode="floor")
    last = torch.div((r + 1) * out + length - 1, length, rounding_mode="floor") - 1
    shape = list(x.shape)
    shape[dim] = out
    pooled = x.new_full(shape, float("-inf"))
    for index in (first, last):
        pooled = pooled.scatter_reduce(dim, index.view(view).expand(x.shape), x, "amax", include_self=True)
    i = torch.arange(out, device=device)
    start = torch.div(i * length, out, rounding_mode="floor")
    stop = torch.div((i + 1) * length + out - 1, out, rounding_mode="floor") - 1
    # advanced indexing, not index_select: on CPU index_select along a non-last dim is ~20x slower
    ends = (x[:, :, start], x[:, :, stop]) if dim == 2 else (x[..., start], x[..., stop])
    return torch.maximum(pooled, torch.maximum(*ends))


def adaptive_max_pool_symbolic(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)`` of a 4-D map, written so that ``torch.export`` keeps
    every size symbolic: the same values bit for bit at every size (maxima are exact, and a
    rectangular window's maximum is the maximum over its rows of the maxima over its columns).
    Gradients differ from ATen's only where a window has tied maxima: ATen gives the gradient
    to the first, ``amax`` splits it between them."""
    return _adaptive_max_along(_adaptive_max_along(x, 2, size[0]), 3, size[1])


@one_call_when_traced
def adaptive_max_pool(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)``, in a form ``torch.export`` keeps symbolic.

    ATen's ``adaptive_max_pool2d`` takes ``output_size`` as ``int[2]`` (``adaptive_avg_pool2d``
    takes ``SymInt[2]``), so exporting with dynamic sizes specialised every size it depends on
    to the example's. Under ``torch.export`` / ``torch.compile``
    (``torch.compiler.is_compiling()``) it is :func:`adaptive_max_pool_symbolic` instead, equal
    bit for bit; eager mode (and ``torch.jit.trace``, ``torch.fx``) keeps ATen's fused kernel,
    about 5x faster on CPU (0.1 s against 0.55 s for 256x200x336 -> 50x84)."""
    import torch.nn.functional as F

    from ..contract import is_compiling  # torch.compiler.is_compiling, or torch._dynamo's before torch 2.3

    if not is_compiling():
        return F.adaptive_max_pool2d(x, size)
    return adaptive_max_pool_symbolic(x, size)


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
        check_norm(self.norm, x.channels, self.norm_groups, x.size)
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
