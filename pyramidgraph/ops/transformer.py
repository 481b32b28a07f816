"""The three transformers of the Feature Pyramid Transformer (Zhang et al., ECCV 2020, "Feature
Pyramid Transformer", arXiv 2007.09451), as apply ops: each reads its inputs at their own levels.

* ``self_transformer`` (one input, same shape): non-local attention within a level, normalised
  by a Mixture of Softmaxes over ``parts`` channel groups.
* ``grounding_transformer`` (inputs: fine query map, coarse key/value map; output at the fine
  level and size): top-down attention whose similarity is the negative squared Euclidean distance.
* ``rendering_transformer`` (inputs: fine key/value map, coarse query map; output at the coarse
  level and size): the coarse map weighted by the fine map's global average, refined by a 3x3
  conv, plus the fine map brought down by one stride-2 3x3 conv per level of the gap.

They follow the paper's formulas, with the official code's widths where the paper gives none
(ZHANGDONG-NJUST/FPT, ``lib/modeling/{self_trans,grounding_trans,rendering_trans,FPT_a}.py``),
and fix its bugs; each docstring says which. Everything is emitted as flatten / matmul /
softmax / mean over the map, so ``torch.export`` keeps height and width symbolic. Attention
dropout (the official code's p=0.1) is left out: it is the identity at inference. Every
convolution starts as ``FPT_a.initialize()`` sets it: kaiming uniform (a=1), zero bias.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..shape import FeatureShape, ShapeError, conv_out
from .base import APPLY, ApplyOp
from .common import Init, build_conv, build_norm, check_norm, out_width

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

    from ..codegen import Emitter

__all__ = ["SelfTransformer", "GroundingTransformer", "RenderingTransformer"]


def _init_mix(linear) -> None:
    """The official ``MixtureOfSoftMax.weight`` init: uniform in +-1/sqrt(parts)."""
    bound = linear.out_features**-0.5
    linear.weight.data.uniform_(-bound, bound)


@dataclass(frozen=True)
class _Transformer(ApplyOp):
    """Helpers the three transformers share. Each declares the same four last fields: ``norm``
    (``bn``/``gn``, on the output; ``norm_groups``, ``norm_eps``) and the convs' ``init``."""

    has_parameters = True

    def _norm_params(self, channels: int) -> int:
        """The norm's parameters and buffers (batch norm: weight, bias, running mean and variance, count)."""
        return {"bn": 4 * channels + 1, "gn": 2 * channels, None: 0}[self.norm]

    def _conv(self, e: Emitter, local: str, cin: int, cout: int, x: torch.fx.Node, kernel: int = 1, stride: int = 1, bias: bool = True) -> torch.fx.Node:
        return e.call_module(local, build_conv(cin, cout, kernel, stride, None, bias, self.init), x)

    def _normed(self, e: Emitter, channels: int, y: torch.fx.Node) -> torch.fx.Node:
        if self.norm is None:
            return y
        return e.call_module("norm", build_norm(self.norm, channels, self.norm_groups, eps=self.norm_eps), y)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ShapeError(f"{name} must be at least 1, got {value}")


def _tokens(e: Emitter, x: torch.fx.Node) -> torch.fx.Node:
    """(B, C, H, W) -> (B, C, H*W)."""
    import torch

    return e.call_function(torch.flatten, x, 2)


@APPLY.register("self_transformer")
@dataclass(frozen=True)
class SelfTransformer(_Transformer):
    """FPT's Self-Transformer: ``y_i = sum_j (sum_n pi_n softmax_j(q_in . k_jn / temperature)) v_j``
    over one map, 1x1 convs ``query``, ``key`` (to ``inner`` channels, split into ``parts``
    contiguous groups) and ``value`` (to the node's width), ``temperature`` sqrt(inner) by
    default (the official one), and the Mixture-of-Softmaxes weights ``pi = softmax_n(mix(mean_j
    k_j))`` (``mix``: one vector per part, absent for one part). The output has the input's
    size. As the paper, not the official code: separate query and key convs (the code shares
    one), ``pi`` from the mean of the keys (the code: of the queries), keys over the whole map
    (the code average-pools them, which breaks at odd sizes), no output projection or residual."""

    parts: int = 2
    inner: int | None = None
    temperature: float | None = None
    norm: Literal["bn", "gn"] | None = None
    norm_groups: int = 32
    norm_eps: float = 1e-5
    init: Init = "kaiming_uniform"

    shorthand = "parts"
    min_inputs = 1
    max_inputs = 1

    def label(self) -> str:
        return f"self-transformer /{self.parts}"

    def widths(self, x: FeatureShape, channels: int | None) -> tuple[int, int]:
        return (self.inner or x.channels), out_width(None, channels, x.channels)

    def infer(self, xs, channels):
        _positive("self_transformer: parts", self.parts)
        _positive("self_transformer: inner", self.inner)
        if self.temperature is not None and not self.temperature > 0:
            raise ShapeError(f"self_transformer: temperature must be positive, got {self.temperature}")
        inner, out = self.widths(xs[0], channels)
        if inner % self.parts:
            raise ShapeError(f"self_transformer: {inner} query/key channels do not divide into {self.parts} parts; set inner to a multiple of parts")
        check_norm(self.norm, out, self.norm_groups, xs[0].size)
        return xs[0].with_(channels=out)

    def weight_estimate(self, shapes, out):
        channels, (inner, width) = shapes[0].channels, self.widths(shapes[0], out.channels)
        mix = inner * self.parts if self.parts > 1 else 0
        return 2 * (channels * inner + inner) + channels * width + width + mix + self._norm_params(width)

    def emit(self, e, args, shapes, out):
        import torch

        x = args[0]
        inner, width = self.widths(shapes[0], out.channels)
        groups = (self.parts, inner // self.parts)
        q = _tokens(e, self._conv(e, "query", shapes[0].channels, inner, x))
        k = _tokens(e, self._conv(e, "key", shapes[0].channels, inner, x))
        v = _tokens(e, self._conv(e, "value", shapes[0].channels, width, x))
        q_parts = e.call_function(torch.transpose, e.call_function(torch.unflatten, q, 1, groups), 2, 3)  # B, parts, N, d
        k_parts = e.call_function(torch.unflatten, k, 1, groups)  # B, parts, d, N
        logits = e.call_function(operator.truediv, e.call_function(torch.matmul, q_parts, k_parts), self.temperature or inner**0.5)
        attention = e.call_function(torch.softmax, logits, -1)  # B, parts, N, N: one softmax over the keys per part
        if self.parts > 1:
            from torch import nn

            from ..weights import declare

            summary = e.call_function(torch.mean, k, 2)  # B, inner: the mean key
            pi = e.call_function(torch.softmax, e.call_module("mix", declare(nn.Linear, inner, self.parts, bias=False, init=_init_mix), summary), -1)
            pi = e.call_function(torch.unsqueeze, e.call_function(torch.unsqueeze, pi, -1), -1)  # B, parts, 1, 1
            attention = e.call_function(operator.mul, attention, pi)
        attention = e.call_function(torch.sum, attention, 1)  # B, N, N
        y = e.call_function(torch.matmul, v, e.call_function(torch.transpose, attention, 1, 2))  # B, width, N
        return self._normed(e, width, e.call_function(torch.unflatten, y, 2, e.size_of(x)))


@APPLY.register("grounding_transformer")
@dataclass(frozen=True)
class GroundingTransformer(_Transformer):
    """FPT's Grounding Transformer (top-down), inputs ``[fine, coarse]``: queries ``query(fine)``,
    keys ``key(coarse)`` (1x1 convs to ``inner`` channels, half the fine width by default) and
    values ``value(coarse)`` (to the node's width, the fine width by default);
    ``y_i = sum_j softmax_j(-|q_i - k_j|^2) v_j``, at the fine level and size. The paper's
    Euclidean similarity, computed by ``torch.cdist`` (no Nf x Nc x C difference tensor), which
    autocast keeps in float32: the expanded ``2 q_i.k_j - |k_j|^2`` loses too much in bfloat16. The official
    ``GroundTrans`` uses a dot product over the number of positions and no softmax, ends in a
    zero-initialised projection and cannot run at HEAD (its final ``view`` passes a
    ``torch.Size`` as one size): here the softmax, no projection, and a reshape to the fine size."""

    inner: int | None = None
    norm: Literal["bn", "gn"] | None = None
    norm_groups: int = 32
    norm_eps: float = 1e-5
    init: Init = "kaiming_uniform"

    min_inputs = 2
    max_inputs = 2

    def label(self) -> str:
        return "grounding transformer"

    def widths(self, xs: list[FeatureShape], channels: int | None) -> tuple[int, int]:
        return (self.inner or max(xs[0].channels // 2, 1)), out_width(None, channels, xs[0].channels)

    def infer(self, xs, channels):
        _positive("grounding_transformer: inner", self.inner)
        fine, coarse = xs
        if coarse.level <= fine.level:
            raise ShapeError(f"grounding_transformer reads [fine query map, coarser key/value map]; got levels {fine.level} and {coarse.level}: list the finer map first")
        check_norm(self.norm, self.widths(xs, channels)[1], self.norm_groups, fine.size)
        return fine.with_(channels=self.widths(xs, channels)[1])

    def weight_estimate(self, shapes, out):
        (fine, coarse), (inner, width) = shapes, self.widths(shapes, out.channels)
        return (fine.channels + coarse.channels) * inner + 2 * inner + coarse.channels * width + width + self._norm_params(width)

    def emit(self, e, args, shapes, out):
        import torch

        fine, coarse = args
        inner, width = self.widths(shapes, out.channels)
        q = e.call_function(torch.transpose, _tokens(e, self._conv(e, "query", shapes[0].channels, inner, fine)), 1, 2)  # B, Nf, inner
        k = e.call_function(torch.transpose, _tokens(e, self._conv(e, "key", shapes[1].channels, inner, coarse)), 1, 2)  # B, Nc, inner
        v = _tokens(e, self._conv(e, "value", shapes[1].channels, width, coarse))  # B, width, Nc
        # -|q - k|^2 by torch.cdist, which autocast keeps in float32: in bfloat16 the expanded form
        # 2 q.k - |k|^2 loses the difference of two large numbers (5 % of the output at 256 wide)
        logits = e.call_function(operator.neg, e.call_function(operator.pow, e.call_function(torch.cdist, q, k), 2))
        attention = e.call_function(torch.softmax, logits, -1)  # B, Nf, Nc
        y = e.call_function(torch.matmul, v, e.call_function(torch.transpose, attention, 1, 2))  # B, width, Nf
        return self._normed(e, width, e.call_function(torch.unflatten, y, 2, e.size_of(fine)))


@APPLY.register("rendering_transformer")
@dataclass(frozen=True)
class RenderingTransformer(_Transformer):
    """FPT's Rendering Transformer (bottom-up), inputs ``[fine, coarse]``: the coarse map Q is
    weighted channel by channel by the fine map's global average, ``refine``d by a 3x3 conv, and
    added to the fine map V brought down by ``down0``, ``down1``... (one stride-2 3x3 conv per
    level between the two maps, no activation between them); a 3x3 conv ``fuse`` ends it:
    ``fuse(refine(Q * mean(V)) + down_k(...down_1(V)))`` at the coarse level and size, the node's
    width (Q's by default). The chain of stride-2 convs is the fix of ZHANGDONG-NJUST/FPT#25
    (the official ``RenderTrans`` has one stride-2 conv, so P3->P5, P2->P5 and P2->P4 fail on
    a size mismatch; the maintainer: "use stride conv several times"); the paper's order
    (weight, then conv) and final 3x3 conv, where the code convolves first, gates through a
    learned 1x1 + BN + ReLU and ends in a ReLU; the mean over the map, not a pooling module
    built inside ``forward``. The two maps must have the same width, and the fine map's sizes
    halved (ceil) once per level must give the coarse map's."""

    norm: Literal["bn", "gn"] | None = None
    norm_groups: int = 32
    norm_eps: float = 1e-5
    init: Init = "kaiming_uniform"

    min_inputs = 2
    max_inputs = 2

    def label(self) -> str:
        return "rendering transformer"

    def level_of(self, levels):
        return levels[1] if len(levels) == 2 else None  # the coarse query map's

    def infer(self, xs, channels):
        fine, coarse = xs
        gap = coarse.level - fine.level
        if gap < 1:
            raise ShapeError(f"rendering_transformer reads [finer key/value map, coarser query map]; got levels {fine.level} and {coarse.level}: list the finer map first")
        if fine.channels != coarse.channels:
            raise ShapeError(f"rendering_transformer weighs the query map's channels by the key map's means, so both need one width, got {fine.channels} and {coarse.channels} channels")
        if fine.size and coarse.size:
            size = fine.size
            for _ in range(gap):
                size = (conv_out(size[0], 3, 2, 1), conv_out(size[1], 3, 2, 1))
            if size != coarse.size:
                raise ShapeError(
                    f"rendering_transformer: {gap} stride-2 3x3 convs take the level-{fine.level} map's {fine.size[0]}x{fine.size[1]} to {size[0]}x{size[1]}, "
                    f"not the level-{coarse.level} map's {coarse.size[0]}x{coarse.size[1]}; inputs must be ceil(image / stride), as padded stride-2 convs give them"
                )
        width = out_width(None, channels, coarse.channels)
        check_norm(self.norm, width, self.norm_groups, coarse.size)
        return coarse.with_(channels=width)

    def weight_estimate(self, shapes, out):
        (fine, coarse), width = shapes, out.channels
        gap = max(coarse.level - fine.level, 1)
        conv = 9 * width * width + width
        return (9 * coarse.channels * width + width) + (9 * fine.channels * width + width) + (gap - 1) * conv + conv + self._norm_params(width)

    def emit(self, e, args, shapes, out):
        import torch

        fine, coarse = args
        channels, width, gap = shapes[1].channels, out.channels, shapes[1].level - shapes[0].level
        weights = e.call_function(torch.mean, fine, (2, 3), keepdim=True)  # B, C, 1, 1: the global average of K
        query = self._conv(e, "refine", channels, width, e.call_function(operator.mul, coarse, weights), kernel=3)
        value = fine
        for step in range(gap):
            value = self._conv(e, f"down{step}", channels if step == 0 else width, width, value, kernel=3, stride=2)
        summed = e.call_function(operator.add, query, value)
        return self._normed(e, width, self._conv(e, "fuse", width, width, summed, kernel=3, bias=self.norm is None))
