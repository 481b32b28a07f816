"""Content-aware upsampling (CARAFE, Wang et al. ICCV 2019), and the crop that lines its maps up.

* ``carafe`` (resample): mmcv's ``CARAFEPack`` in plain PyTorch (mmcv's op is a CUDA kernel
  with no CPU version). A 1x1 ``channel_compressor`` (to ``compressed`` channels) and a
  ``content_encoder`` conv (``encoder_kernel``, ``encoder_dilation``) predict, for every output
  pixel, ``up_group`` kernels of ``up_kernel x up_kernel`` weights; ``F.pixel_shuffle`` puts
  them at the output resolution and a softmax normalises each over its taps. Output pixel
  ``(h, w)`` is then the weighted sum of the ``up_kernel x up_kernel`` neighbourhood (zero padded)
  of input pixel ``(h // scale, w // scale)``; the channels are cut into ``up_group`` contiguous
  groups, each with its own kernel. The ordering is mmcv's kernels' (``carafe_cuda_kernel.cuh``):
  mask channel ``(group * up_kernel + dy) * up_kernel + dx`` after the pixel shuffle.
* ``deconv_padded`` (resample): a transposed conv with PyTorch's ``padding`` and
  ``output_padding`` given, as mmcv's ``deconv`` upsample layer builds it for ``FPN_CARAFE``
  (both ``(kernel - 1) // 2``): kernel 3 then doubles a map exactly, which the ``deconv`` op (its
  padding ``(kernel - stride) / 2``, no output padding) cannot express.
* ``crop`` (resample): the top-left part of a map at the size of the target level's map, as
  mmdetection's ``FPN_CARAFE`` cuts an upsampled map (``slice_as``) before adding it to a finer
  one whose side is odd.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, replace

from ..shape import FeatureShape, ShapeError
from ..weights import declare
from .base import RESAMPLE, ResampleOp
from .common import build_conv, factor_up

__all__ = ["Carafe", "Crop", "PaddedDeconv"]


def _normal_init(conv, std: float):
    from torch import nn

    nn.init.normal_(conv.weight, std=std)
    nn.init.zeros_(conv.bias)
    return conv


@RESAMPLE.register("carafe")
@dataclass(frozen=True)
class Carafe(ResampleOp):
    """Content-aware upsampling (CARAFE, Wang et al. ICCV 2019; mmcv's ``CARAFEPack``): a 1x1
    ``channel_compressor`` to ``compressed`` channels and a ``content_encoder`` conv
    (``encoder_kernel``, ``encoder_dilation``) predict ``up_group`` softmax-normalised ``up_kernel x
    up_kernel`` kernels per output pixel; each output pixel is its kernel's weighted sum of the
    zero-padded neighbourhood of its source pixel ``(h // scale, w // scale)``, the channels in
    ``up_group`` contiguous groups. ``scale = 2**level difference`` unless given; sizes multiply by
    it (follow it with ``crop`` where the finer map's sides are odd) and the width is kept.
    Initialised as mmcv: compressor xavier uniform, encoder normal with std 0.001, zero biases.
    The neighbourhoods are unfolded once at the input's resolution (``up_kernel**2`` times its
    memory). Use as ``up``."""

    scale: int | None = None
    up_kernel: int = 5
    up_group: int = 1
    encoder_kernel: int = 3
    encoder_dilation: int = 1
    compressed: int = 64

    has_parameters = True
    exact_ratio = True

    def bind(self, x, target):
        return replace(self, scale=factor_up(self.scale, x, target))

    def label(self) -> str:
        return f"carafe x{self.scale}" if self.scale else "carafe"

    def encoder_out(self) -> int:
        return self.up_kernel**2 * self.up_group * (self.scale or 1) ** 2

    def weight_estimate(self, shapes, out):
        cin = shapes[0].channels
        return cin * self.compressed + self.compressed + self.compressed * self.encoder_out() * self.encoder_kernel**2 + self.encoder_out()

    def infer(self, x, target):
        step = (self.scale or 0).bit_length() - 1
        if self.scale < 1 or 2**step != self.scale:
            raise ShapeError(f"carafe scale {self.scale} is not a power of two")
        for name, value, most in (("up_kernel", self.up_kernel, 31), ("encoder_kernel", self.encoder_kernel, 31), ("encoder_dilation", self.encoder_dilation, 16), ("compressed", self.compressed, 65536)):
            if not 1 <= value <= most:
                raise ShapeError(f"carafe {name} must be between 1 and {most}, got {value}")
        if self.up_kernel % 2 == 0:
            raise ShapeError(f"carafe up_kernel must be odd (a neighbourhood centred on the source pixel), got {self.up_kernel}")
        if (self.encoder_kernel - 1) * self.encoder_dilation % 2:
            raise ShapeError(
                f"carafe: an encoder_kernel of {self.encoder_kernel} with dilation {self.encoder_dilation} cannot keep the map's size "
                "(its padding (kernel - 1) * dilation / 2 is not whole); use an odd encoder_kernel or an even dilation"
            )
        if self.up_group < 1 or x.channels % self.up_group:
            raise ShapeError(f"carafe with up_group={self.up_group} needs a width divisible by it, got {x.channels}")
        if target.level != x.level - step:
            raise ShapeError(f"carafe x{self.scale} brings level {x.level} to level {x.level - step}, not to level {target.level}")
        return x.with_(level=x.level - step, size=(x.size[0] * self.scale, x.size[1] * self.scale) if x.size else None)

    def emit(self, e, args, shapes, out):
        import torch
        import torch.nn.functional as F
        from torch import nn

        x, cin = args[0], shapes[0].channels
        k, groups, s = self.up_kernel, self.up_group, self.scale
        compressor = build_conv(cin, self.compressed, 1, 1, 0, True, "xavier_uniform")
        padding = (self.encoder_kernel - 1) * self.encoder_dilation // 2
        encoder = declare(nn.Conv2d, self.compressed, self.encoder_out(), self.encoder_kernel, padding=padding, dilation=self.encoder_dilation, init=functools.partial(_normal_init, std=0.001))
        logits = e.call_module("content_encoder", encoder, e.call_module("channel_compressor", compressor, x))
        # kernels: pixel shuffle to the output's resolution, N x groups x taps x H x s x W x s, softmax over the taps
        mask = e.call_function(F.pixel_shuffle, logits, s)
        mask = e.call_function(torch.unflatten, mask, 1, (groups, k * k))
        mask = e.call_function(torch.unflatten, e.call_function(torch.unflatten, mask, 3, (-1, s)), 5, (-1, s))
        mask = e.call_function(torch.softmax, mask, 2)
        # each input pixel's neighbourhood, N x groups x C/groups x taps x H x W, read by its s x s output pixels
        patches = e.call_function(F.unfold, x, k, padding=(k - 1) // 2)
        patches = e.call_function(torch.unflatten, patches, 1, (groups, cin // groups, k * k))
        patches = e.call_function(torch.unflatten, patches, 4, (-1, e.call_function(operator.getitem, e.size_of(x), 1)))
        y = e.call_function(torch.einsum, "ngcthw,ngthiwj->ngchiwj", patches, mask)
        for start in (1, 2, 3):  # groups and channels, then each side with its sub-pixels
            y = e.call_function(torch.flatten, y, start, start + 1)
        return y


@RESAMPLE.register("deconv_padded")
@dataclass(frozen=True)
class PaddedDeconv(ResampleOp):
    """Learned upsampling by ``nn.ConvTranspose2d(kernel, stride, padding, output_padding)`` to the
    target width, the arguments as PyTorch takes them: each side becomes ``(s - 1) * stride - 2 *
    padding + kernel + output_padding``, at least ``stride`` times the input's (follow it with
    ``crop`` where it is larger), ``output_padding`` smaller than the stride (PyTorch's rule).
    ``stride = 2**level difference`` unless given. mmcv's ``deconv`` upsample layer (FPN_CARAFE's
    ``upsample_cfg`` type ``deconv``) is padding and output padding ``(kernel - 1) // 2``; the
    defaults (kernel 3, padding 1, output padding 1) double a map exactly. Use as ``up``."""

    kernel: int = 3
    stride: int | None = None
    padding: int = 1
    output_padding: int = 1
    bias: bool = True

    changes_channels = True
    has_parameters = True
    exact_ratio = True

    def bind(self, x, target):
        return replace(self, stride=factor_up(self.stride, x, target))

    def label(self) -> str:
        return f"deconv{self.kernel}x{self.kernel} x{self.stride}" if self.stride else "deconv_padded"

    def _side(self, side: int) -> int:
        return (side - 1) * self.stride - 2 * self.padding + self.kernel + self.output_padding

    def infer(self, x, target):
        step = (self.stride or 0).bit_length() - 1
        if self.stride < 1 or 2**step != self.stride:
            raise ShapeError(f"deconv_padded stride {self.stride} is not a power of two")
        if not 1 <= self.kernel <= 31 or self.padding < 0 or not 0 <= self.output_padding < self.stride:
            raise ShapeError(f"deconv_padded needs a kernel from 1 to 31, padding >= 0 and output_padding from 0 to stride - 1, got kernel {self.kernel}, padding {self.padding}, output_padding {self.output_padding}")
        if target.level != x.level - step:
            raise ShapeError(f"deconv_padded x{self.stride} brings level {x.level} to level {x.level - step}, not to level {target.level}")
        if self._side(1) < self.stride:
            raise ShapeError(f"deconv_padded: kernel {self.kernel}, padding {self.padding} and output_padding {self.output_padding} make a map less than {self.stride} times as large")
        return FeatureShape(target.channels, x.level - step, (self._side(x.size[0]), self._side(x.size[1])) if x.size else None)

    def emit(self, e, args, shapes, out):
        from torch import nn

        deconv = declare(nn.ConvTranspose2d, shapes[0].channels, out.channels, self.kernel, stride=self.stride, padding=self.padding, output_padding=self.output_padding, bias=self.bias)
        return e.call_module("deconv", deconv, args[0])


@RESAMPLE.register("crop")
@dataclass(frozen=True)
class Crop(ResampleOp):
    """Cut the map to the size of the target level's map, keeping its top-left part (same level,
    same width): after an upsampling by a fixed factor, mmdetection's ``FPN_CARAFE`` cuts the
    result to the finer map's size (``slice_as``), so maps of odd sides line up. The map must be
    at least that large. Use last in a ``via`` list, after the upsampling."""

    needs_size_ref = True

    def infer(self, x, target):
        if x.level != target.level:
            raise ShapeError(f"crop keeps the level: it cuts a map at level {target.level}, not one at level {x.level}; put it after the op that reaches level {target.level}")
        if x.size and target.size and (x.size[0] < target.size[0] or x.size[1] < target.size[1]):
            raise ShapeError(f"crop cuts a map down to {target.size[0]}x{target.size[1]} (the level's size), but this one is only {x.size[0]}x{x.size[1]}")
        return x.with_(size=target.size if x.size else None)

    def emit(self, e, args, shapes, out):
        import torch

        size = e.size_of(args[1])
        y = e.call_function(torch.narrow, args[0], 2, 0, e.call_function(operator.getitem, size, 0))
        return e.call_function(torch.narrow, y, 3, 0, e.call_function(operator.getitem, size, 1))
