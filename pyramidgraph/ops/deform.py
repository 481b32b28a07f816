"""Modulated deformable convolution (DCNv2: Zhu, Hu, Lin and Dai, CVPR 2019, "Deformable ConvNets
v2: More Deformable, Better Results"), in plain PyTorch.

A ``k x k`` DCNv2 samples its input at ``p + p_k + dp_k`` for every output position ``p`` and
kernel tap ``p_k`` (``dp_k`` a learned fractional offset, bilinear sampling, zero outside the
map), scales each sample by a learned mask ``m_k`` in [0, 1] and sums with the kernel's weights:
``y(p) = sum_k w_k * m_k(p) * x(p + p_k + dp_k(p))``. mmcv's CUDA op (``ModulatedDeformConv2d``)
has no CPU kernel and torchvision is not a dependency, so :func:`modulated_deform_conv2d` does
it with ``F.grid_sample`` (every tap's samples in one call) and one matrix product, all torch
ops: it traces under ``torch.export`` (a ``torch.fx`` re-trace keeps the sampling as one call) and
runs on any device.

Layouts are mmcv's, so its checkpoints load as they are:

* ``weight`` ``(out, in / groups, k, k)``, optional ``bias`` ``(out,)``; initialised as mmcv's
  ``init_weights``: uniform in +-1/sqrt(in * k * k), bias zero.
* ``offset`` ``(B, deform_groups * 2 * k * k, H_out, W_out)``: per deformable group, per tap
  ``t = i * k + j`` (row-major), channel ``2t`` the vertical (y) and ``2t + 1`` the horizontal
  (x) offset, in pixels; ``mask`` ``(B, deform_groups * k * k, H_out, W_out)``, already
  through the sigmoid. Input channel ``c`` belongs to deformable group ``c // (in / deform_groups)``.

The op ``modulated_deform_conv`` (resample and post) is mmcv's ``ModulatedDeformConv2dPack``:
a DCNv2 that predicts its own offsets and mask from its input by ``conv_offset`` (a conv of the
same kernel, stride, padding and dilation to ``deform_groups * 3 * k * k`` channels, zero
initialised, so it starts as a plain conv with mask 0.5): the first two thirds of its channels
are the offsets, the last third the mask's logits. Its weights are ``weight``, ``bias``,
``conv_offset.weight`` and ``conv_offset.bias``, as mmcv's. Blocks that compute offsets
elsewhere (DyHead reads one offset map for three convs) emit it with :func:`emit_deform_conv`
and weights declared by :func:`deform_weight` (see :mod:`.dyhead`).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from ..shape import FeatureShape, ShapeError
from ..weights import ParameterDecl, declare
from .attention import _zero_weight_and_bias
from .base import POST, RESAMPLE, Op, one_call_when_traced
from .common import resolve_padding, stride_at, width_and_step, window_out

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.fx

    from ..codegen import Emitter

__all__ = ["ModulatedDeformConv", "UniformParameterDecl", "deform_columns", "deform_weight", "emit_deform_conv", "modulated_deform_conv2d", "split_offset_mask"]


@one_call_when_traced
def deform_columns(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1, deform_groups: int = 1) -> torch.Tensor:
    """The DCNv2 im2col of ``x`` (B, C, H, W) for the ``k x k`` kernel ``weight``, in its dtype:
    ``(B, groups, C / groups * k * k, H_out * W_out)``,
    every tap's bilinear samples (zero outside the map) times its mask, channel-major then tap
    (the layout of ``weight.reshape(groups, out / groups, -1)``), for mmcv's ``offset``/``mask``
    layouts (see the module docstring); ``(H_out, W_out)`` is the offset map's size, which for
    mmcv's op is the convolution's output size. Sampling positions are computed in float32 at
    least (bfloat16 positions would be a pixel off at 256 wide), and so are the samples.

    On the meta device (``pyramidgraph info`` runs a neck there to measure it) only the shape is
    made: grid_sample's meta decomposition would take seconds per call. Kept one call when a
    neck is re-traced, since that is a decision in Python."""
    import torch
    import torch.nn.functional as F

    batch, channels, height, width = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    out_h, out_w, kernel = offset.shape[2], offset.shape[3], weight.shape[-1]
    taps = kernel * kernel
    dtype = torch.promote_types(offset.dtype, torch.float32)
    if x.device.type == "meta":
        return x.new_empty(batch, groups, (channels // groups) * taps, out_h * out_w, dtype=weight.dtype)
    rows = torch.arange(out_h, device=x.device, dtype=dtype) * stride - padding
    cols = torch.arange(out_w, device=x.device, dtype=dtype) * stride - padding
    ky = (torch.arange(kernel, device=x.device, dtype=dtype) * dilation).repeat_interleave(kernel)  # tap t = i * k + j: row i
    kx = (torch.arange(kernel, device=x.device, dtype=dtype) * dilation).repeat(kernel)  # column j
    deltas = offset.to(dtype).reshape(batch, deform_groups, taps, 2, out_h, out_w)
    y = rows.reshape(1, 1, 1, -1, 1) + ky.reshape(1, 1, -1, 1, 1) + deltas[:, :, :, 0]  # B, dg, taps, H_out, W_out
    xs = cols.reshape(1, 1, 1, 1, -1) + kx.reshape(1, 1, -1, 1, 1) + deltas[:, :, :, 1]
    # grid_sample with align_corners=False puts pixel i at (2i + 1) / size - 1; zeros outside, as mmcv's
    grid = torch.stack(((2 * xs + 1) / width - 1, (2 * y + 1) / height - 1), -1).reshape(batch * deform_groups, taps * out_h, out_w, 2)
    per_group = x.to(dtype).reshape(batch * deform_groups, channels // deform_groups, height, width)
    sampled = F.grid_sample(per_group, grid, mode="bilinear", padding_mode="zeros", align_corners=False)  # B*dg, C/dg, taps*H_out, W_out
    sampled = sampled.reshape(batch, deform_groups, channels // deform_groups, taps, out_h, out_w) * mask.to(dtype).reshape(batch, deform_groups, 1, taps, out_h, out_w)
    return sampled.reshape(batch, groups, (channels // groups) * taps, out_h * out_w).to(weight.dtype)


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
    deform_groups: int = 1,
) -> torch.Tensor:
    """DCNv2 of ``x`` with mmcv's weight, offset and mask layouts (mmcv's
    ``modulated_deform_conv2d``): :func:`deform_columns` times the weights, plus the bias. The
    ops emit the same two steps as graph calls (:func:`emit_deform_conv`), so that
    ``pyramidgraph info`` counts the product's MACs."""
    import torch

    columns = deform_columns(x, offset, mask, weight, stride, padding, dilation, groups, deform_groups)
    out = torch.matmul(weight.reshape(groups, weight.shape[0] // groups, -1), columns)  # B, groups, out/groups, H_out*W_out
    out = torch.unflatten(torch.flatten(out, 1, 2), 2, offset.shape[-2:])
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def emit_deform_conv(
    e: Emitter,
    x: torch.fx.Node,
    offset: torch.fx.Node,
    mask: torch.fx.Node,
    weight: torch.fx.Node,
    bias: torch.fx.Node | None,
    shape: tuple[int, int, int],
    stride: int,
    padding: int,
    dilation: int = 1,
    groups: int = 1,
    deform_groups: int = 1,
) -> torch.fx.Node:
    """Emit :func:`modulated_deform_conv2d` as graph calls: the columns, one ``torch.matmul`` with
    the weights (which ``info`` counts as the conv's MACs), the output's shape, the bias.
    ``shape``: ``(in_channels, out_channels, kernel)``."""
    import torch

    cin, cout, kernel = shape
    columns = e.call_function(deform_columns, x, offset, mask, weight, stride, padding, dilation, groups, deform_groups)
    kernels = e.call_function(torch.reshape, weight, (groups, cout // groups, (cin // groups) * kernel * kernel))
    out = e.call_function(torch.matmul, kernels, columns)
    out = e.call_function(torch.unflatten, e.call_function(torch.flatten, out, 1, 2), 2, e.size_of(offset))
    if bias is None:
        return out
    return e.call_function(operator.add, out, e.call_function(torch.reshape, bias, (1, cout, 1, 1)))


def split_offset_mask(e: Emitter, offset_and_mask: torch.fx.Node, offset_channels: int) -> tuple[torch.fx.Node, torch.fx.Node]:
    """mmcv's ``ModulatedDeformConv2dPack`` (and DyHead) split of an offset conv's output, as
    graph nodes of torch primitives: the first ``offset_channels`` channels are the offsets, the
    rest the mask's logits (through a sigmoid)."""
    import torch

    offsets = e.call_function(operator.getitem, offset_and_mask, (slice(None), slice(None, offset_channels)))
    logits = e.call_function(operator.getitem, offset_and_mask, (slice(None), slice(offset_channels, None)))
    return offsets, e.call_function(torch.sigmoid, logits)


@dataclass(frozen=True, eq=False)
class UniformParameterDecl(ParameterDecl):
    """A learnable tensor drawn uniformly from ``[-bound, bound]`` (``bound`` 0: zeros)."""

    bound: float = 0.0

    def build(self) -> torch.nn.Parameter:
        import torch

        tensor = torch.empty(self.shape)
        if self.bound:
            tensor.uniform_(-self.bound, self.bound)
        else:
            tensor.zero_()
        return torch.nn.Parameter(tensor)

    def describe(self) -> str:
        return f"Parameter({list(self.shape)}, uniform +-{self.bound:.4g})"


def deform_weight(cin: int, cout: int, kernel: int, groups: int = 1) -> UniformParameterDecl:
    """A DCN's ``weight`` (out, in / groups, k, k), initialised as mmcv's ``ModulatedDeformConv2d``."""
    return UniformParameterDecl((cout, cin // groups, kernel, kernel), bound=1.0 / math.sqrt(cin * kernel * kernel))


@RESAMPLE.register("modulated_deform_conv", dcn={})
@POST.register("modulated_deform_conv", dcn={})
@dataclass(frozen=True)
class ModulatedDeformConv(Op):
    """DCNv2 that owns its offset conv (mmcv's ``ModulatedDeformConv2dPack``, the conv of
    ``conv_cfg=dict(type='DCNv2')``): ``conv_offset`` (zero-initialised) predicts
    ``deform_groups * 3 * kernel**2`` channels from the input, offsets then mask logits, and the
    ``kernel x kernel`` deformable conv samples there. As ``conv``: on an edge to the target
    width with stride ``2**level difference`` unless given; after a fusion to the node's width
    (or ``out``), stride 1. ``padding`` null is ``dilation * (kernel - 1) // 2``."""

    kernel: int = 3
    stride: int | None = None
    padding: int | None = None
    dilation: int = 1
    groups: int = 1
    deform_groups: int = 1
    bias: bool = True
    out: int | None = None

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    shorthand = "kernel"
    has_parameters = True
    changes_channels = True

    def at(self, inputs, site):
        return replace(self, stride=stride_at(self.stride, inputs[0], site))

    def label(self) -> str:
        suffix = f" /{self.stride}" if self.stride and self.stride > 1 else ""
        return f"dcn{self.kernel}x{self.kernel}{suffix}"

    def shape(self, inputs, site):
        x = inputs[0]
        if self.deform_groups < 1:
            raise ShapeError(f"modulated_deform_conv: deform_groups must be at least 1, got {self.deform_groups}")
        width, step = width_and_step("modulated_deform_conv", self.stride, self.out, x, site)
        if x.channels % self.groups or width % self.groups:
            raise ShapeError(f"modulated_deform_conv with groups={self.groups} needs widths divisible by it, got {x.channels} -> {width}")
        if x.channels % self.deform_groups:
            raise ShapeError(f"modulated_deform_conv with deform_groups={self.deform_groups} needs the input's width divisible by it, got {x.channels}")
        return FeatureShape(width, x.level + step, window_out(x.size, self.kernel, self.stride, self.padding, self.dilation))

    def weight_estimate(self, shapes, out):
        cin, taps = shapes[0].channels, self.kernel * self.kernel
        return cin * out.channels * taps // self.groups + out.channels * self.bias + cin * self.deform_groups * 3 * taps * taps + self.deform_groups * 3 * taps

    def emit(self, e: Emitter, args: list[torch.fx.Node], shapes: list[FeatureShape], out: FeatureShape) -> torch.fx.Node:
        from torch import nn

        cin, taps = shapes[0].channels, self.kernel * self.kernel
        padding = resolve_padding(self.kernel, self.padding, self.dilation)
        weight = e.parameter("weight", deform_weight(cin, out.channels, self.kernel, self.groups))
        bias = e.parameter("bias", UniformParameterDecl((out.channels,))) if self.bias else None
        conv_offset = declare(nn.Conv2d, cin, self.deform_groups * 3 * taps, self.kernel, stride=self.stride, padding=padding, dilation=self.dilation, bias=True, init=_zero_weight_and_bias)
        offset, mask = split_offset_mask(e, e.call_module("conv_offset", conv_offset, args[0]), self.deform_groups * 2 * taps)
        return emit_deform_conv(e, args[0], offset, mask, weight, bias, (cin, out.channels, self.kernel), self.stride, padding, self.dilation, self.groups, self.deform_groups)
