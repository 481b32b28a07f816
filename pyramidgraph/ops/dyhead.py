"""The Dynamic Head block (Dai et al., CVPR 2021, "Dynamic Head: Unifying Object Detection Heads
with Attentions"), as the apply op ``dyhead_block`` over every level of a pyramid.

It follows mmdetection 3.3's ``DyHeadBlock`` (``mmdet/models/necks/dyhead.py``, with ``DyReLU``
of ``mmdet/models/layers/se_layer.py``), so that its checkpoints load: the module names under
the op are mmdet's (``spatial_conv_high.conv.weight``, ``spatial_conv_offset``,
``scale_attn_module.1``, ``task_attn_module.conv1.conv``...). For each level ``l``:

* spatial-aware attention: ``spatial_conv_offset`` (3x3, 27 channels) on ``x_l`` gives one
  offset map (channels 0-17, mmcv's (y, x) pairs per tap) and mask (18-26, sigmoid) for three
  DCNv2 3x3 convs with GroupNorm(16): ``spatial_conv_mid`` on ``x_l``, ``spatial_conv_low``
  (stride 2) on the finer ``x_{l-1}``, and ``spatial_conv_high`` on the coarser ``x_{l+1}``,
  whose output is upsampled bilinearly (align_corners=True) to ``x_l``'s size;
* scale-aware attention: each of those maps times ``hsigmoid(relu(conv1x1(mean(map))))``
  (``scale_attn_module``, one value per map), averaged over the (one to three) maps;
* task-aware attention: DyReLU, ``max(a1 x + b1, a2 x + b2)`` with the four coefficients per
  channel from ``hsigmoid(conv2(relu(conv1(mean(x))))) - 0.5`` (squeeze to width / 4),
  ``a1 = 2 a1' + 1``, ``a2 = 2 a2'``.

``hsigmoid`` is ``clamp((x + 3) / 6, 0, 1)`` (``F.hardsigmoid``), the official code's
``h_sigmoid``, as mmdet's (the paper writes ``max(0, min(1, (x + 1) / 2))``).

Where mmdet and the authors' code (microsoft/DynamicHead, ``dyhead/dyhead.py``, ``dyrelu.py``)
differ, this is mmdet:

* the coarser map's conv reads offsets and mask computed at the finer ``x_l``'s size. Both the
  authors' code and mmdet 3.3.0 pass the whole maps to their CUDA op, which reads each
  sample's offsets from its data pointer as if they had the coarser map's size: the first
  ``18 * h * w`` values of the sample's flattened offsets (a quarter of them, shifted:
  microsoft/DynamicHead#25), and likewise for the mask. That is ``coarse_offsets: flat``
  (the default), what mmdet's released checkpoints were trained with. mmdetection's main
  branch after 3.3.0 crops the top-left ``h x w`` corner instead: ``coarse_offsets: crop``.
  (Upsampling ``x_{l+1}`` before the conv, as the issue suggests, is neither.)
* scale attention: mmdet's 1x1 conv reads the output width (the official one the input width,
  which only runs when the two are equal); both follow it by ReLU and hsigmoid.
* DyReLU: mmdet's 1x1 convs where the official code has linear layers (the same weights,
  reshaped); the same constants (lambda 1, init_a (1, 0), init_b (0, 0)).
* init: every plain conv normal(0, 0.01) with zero bias, ``spatial_conv_offset`` zero when
  ``zero_init_offset`` (mmdet; the official code leaves the offset conv at PyTorch's default
  and the DyReLU at theirs); the DCN weights mmcv's uniform.

Both give the finer neighbour a stride-2 conv (``low``) and the coarser one a stride-1 conv
then upsampling (``high``). The inputs must have one width and consecutive levels, each map
``ceil(size / 2)`` of the one before (a padded stride-2 conv's output), as the stride-2 conv's
output must line up with the offsets. (A 1x1 map with one channel per GroupNorm group runs at a
batch above 1 only, as in mmdet: torch refuses to normalise one value.) With one level only the mid conv runs, but
the low and high convs are declared all the same, as mmdet builds them (its checkpoints have
their weights).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..shape import ShapeError, conv_out
from .attention import _zero_weight_and_bias
from .base import APPLY, ApplyOp, one_call_when_traced
from .common import build_conv, build_norm, check_norm, out_width
from .deform import deform_weight, emit_deform_conv, split_offset_mask

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.fx

    from ..codegen import Emitter

__all__ = ["DyHeadBlock", "crop_to", "emit_dynamic_relu", "flat_to"]

OFFSET_CHANNELS = 2 * 9
"""The offsets of a 3x3 DCN with one deformable group; the mask is the next 9 channels."""


@one_call_when_traced
def crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The top-left ``ref``-sized corner of ``x`` (mmdetection main's offsets for the coarser map)."""
    return x[:, :, : ref.shape[-2], : ref.shape[-1]]


@one_call_when_traced
def flat_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) read as a CUDA kernel reads it for an output of ``ref``'s size (h, w):
    each sample's first ``C * h * w`` values, in memory order, as (C, h, w) (the official code's
    and mmdet 3.3.0's offsets and mask for the coarser map, microsoft/DynamicHead#25)."""
    batch, channels = x.shape[0], x.shape[1]
    height, width = ref.shape[-2], ref.shape[-1]
    return x.reshape(batch, -1)[:, : channels * height * width].reshape(batch, channels, height, width)


def emit_dynamic_relu(e: Emitter, x: torch.fx.Node, coefficients: torch.fx.Node) -> torch.fx.Node:
    """DyHead's DyReLU from its hsigmoid outputs ``(B, 4C, 1, 1)``, in mmdet's order
    ``a1, b1, a2, b2``, each first less 0.5: ``max(x * (2 a1 + 1) + b1, x * 2 a2 + b2)``, as
    graph nodes of torch primitives."""
    import torch

    parts = e.call_function(torch.chunk, e.call_function(operator.sub, coefficients, 0.5), 4, 1)
    a1, b1, a2, b2 = (e.call_function(operator.getitem, parts, index) for index in range(4))
    first = e.call_function(operator.add, e.call_function(operator.mul, x, e.call_function(operator.add, e.call_function(operator.mul, a1, 2.0), 1.0)), b1)
    second = e.call_function(operator.add, e.call_function(operator.mul, x, e.call_function(operator.mul, a2, 2.0)), b2)
    return e.call_function(torch.max, first, second)


@APPLY.register("dyhead_block")
@dataclass(frozen=True)
class DyHeadBlock(ApplyOp):
    """One DyHead block over every level (inputs finest first, one width, consecutive levels):
    scale-, spatial- (DCNv2 with offsets from the level itself) and task-aware (DyReLU)
    attention, as mmdet's ``DyHeadBlock``; outputs one map per input, at its level and size,
    the node's width (the input's by default). ``zero_init_offset``: start the offset conv at
    zero (mmdet's default), else normal(0, 0.01); ``norm_groups``: the GroupNorm's groups (16);
    ``coarse_offsets``: how the coarser map's conv reads the finer map's offsets and mask
    (``flat``: as mmdet 3.3.0's and the official CUDA op, ``crop``: mmdetection main's corner)."""

    zero_init_offset: bool = True
    norm_groups: int = 16
    coarse_offsets: Literal["flat", "crop"] = "flat"

    has_parameters = True

    def label(self) -> str:
        return "dyhead block"

    def infer(self, xs, channels):
        first = xs[0]
        for index, x in enumerate(xs[1:], 1):
            if x.level != first.level + index:
                raise ShapeError(f"dyhead_block reads consecutive levels, finest first; got levels {', '.join(str(s.level) for s in xs)}")
            if x.channels != first.channels:
                raise ShapeError(f"dyhead_block's convs are shared by every level, so its inputs need one width, got {', '.join(str(s.channels) for s in xs)} channels")
            finer = xs[index - 1]
            if finer.size and x.size and (conv_out(finer.size[0], 3, 2, 1), conv_out(finer.size[1], 3, 2, 1)) != x.size:
                raise ShapeError(
                    f"dyhead_block: the stride-2 3x3 conv takes the level-{finer.level} map's {finer.size[0]}x{finer.size[1]} to "
                    f"{conv_out(finer.size[0], 3, 2, 1)}x{conv_out(finer.size[1], 3, 2, 1)}, not the level-{x.level} map's {x.size[0]}x{x.size[1]}; "
                    "inputs must be ceil(image / stride), as padded stride-2 convs give them"
                )
        width = out_width(None, channels, first.channels)
        if self.norm_groups < 1:
            raise ShapeError(f"dyhead_block: norm_groups must be at least 1, got {self.norm_groups}")
        for x in xs:  # the spatial convs' group norms run on every level's map
            check_norm("gn", width, self.norm_groups, x.size)  # the 1x1-map rule holds for a batch of one only: the contract checks it then
        if width < 4:
            raise ShapeError(f"dyhead_block: DyReLU squeezes the width by 4, so it must be at least 4, got {width}")
        return [x.with_(channels=width) for x in xs]

    def weight_estimate(self, shapes, out):
        cin, width = shapes[0].channels, out[0].channels if isinstance(out, (list, tuple)) else out.channels
        squeeze = width // 4
        return 3 * (9 * cin * width + 2 * width) + (9 * cin * 27 + 27) + (width + 1) + (width * squeeze + squeeze) + (squeeze * 4 * width + 4 * width)

    def emit(self, e: Emitter, args: list[torch.fx.Node], shapes, out) -> list[torch.fx.Node]:
        import torch.nn.functional as F
        from torch import nn

        from ..weights import declare

        cin, width = shapes[0].channels, out[0].channels
        offset_init = _zero_weight_and_bias if self.zero_init_offset else None
        offset_conv = declare(nn.Conv2d, cin, 27, 3, padding=1, init=offset_init) if offset_init else build_conv(cin, 27, 3, 1, 1, True, "normal")
        weights: dict[str, torch.fx.Node] = {}

        def spatial(name: str, x: torch.fx.Node, offset: torch.fx.Node, mask: torch.fx.Node, stride: int) -> torch.fx.Node:
            if name not in weights:
                weights[name] = e.parameter(f"{name}.conv.weight", deform_weight(cin, width, 3))
            y = emit_deform_conv(e, x, offset, mask, weights[name], None, (cin, width, 3), stride, 1)
            return e.call_module(f"{name}.norm", build_norm("gn", width, self.norm_groups), y)

        def scaled(y: torch.fx.Node) -> torch.fx.Node:
            attention = e.call_module("scale_attn_module.1", build_conv(width, 1, 1, 1, 0, True, "normal"), e.call_function(F.adaptive_avg_pool2d, y, 1))
            return e.call_function(operator.mul, y, e.call_function(F.hardsigmoid, e.call_function(F.relu, attention)))

        def task(y: torch.fx.Node) -> torch.fx.Node:
            squeeze = int(width / 4)
            hidden = e.call_module("task_attn_module.conv1.conv", build_conv(width, squeeze, 1, 1, 0, True, "normal"), e.call_function(F.adaptive_avg_pool2d, y, 1))
            coefficients = e.call_module("task_attn_module.conv2.conv", build_conv(squeeze, 4 * width, 1, 1, 0, True, "normal"), e.call_function(F.relu, hidden))
            return emit_dynamic_relu(e, y, e.call_function(F.hardsigmoid, coefficients))

        def offsets(offset_and_mask: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node]:
            return split_offset_mask(e, offset_and_mask, OFFSET_CHANNELS)

        outs = []
        for level, x in enumerate(args):
            offset_and_mask = e.call_module("spatial_conv_offset", offset_conv, x)
            offset, mask = offsets(offset_and_mask)
            summed = scaled(spatial("spatial_conv_mid", x, offset, mask, 1))
            if level > 0:
                summed = e.call_function(operator.add, summed, scaled(spatial("spatial_conv_low", args[level - 1], offset, mask, 2)))
            if level < len(args) - 1:
                coarse = args[level + 1]
                if self.coarse_offsets == "crop":
                    offset, mask = offsets(e.call_function(crop_to, offset_and_mask, coarse))
                else:  # each of the offsets and the mask read flat (the sigmoid is elementwise: before or after the reading is the same)
                    offset, mask = (e.call_function(flat_to, value, coarse) for value in (offset, mask))
                high = spatial("spatial_conv_high", coarse, offset, mask, 1)
                high = e.call_function(F.interpolate, high, size=e.size_of(x), mode="bilinear", align_corners=True)
                summed = e.call_function(operator.add, summed, scaled(high))
            count = 1 + (level > 0) + (level < len(args) - 1)
            if count > 1:
                summed = e.call_function(operator.truediv, summed, count)
            outs.append(task(summed))
        for name in ("spatial_conv_high", "spatial_conv_mid", "spatial_conv_low"):
            if name not in weights:  # one level: mmdet builds the low and high convs all the same, and its checkpoints hold them
                weights[name] = e.parameter(f"{name}.conv.weight", deform_weight(cin, width, 3))
                e.keep(f"{name}.norm", build_norm("gn", width, self.norm_groups))
        return outs
