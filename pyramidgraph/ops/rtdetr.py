"""The two blocks of RT-DETR's hybrid encoder (Zhao et al., CVPR 2024, "DETRs Beat YOLOs on
Real-time Object Detection"), as ultralytics 8.4 builds them for ``rtdetr-l.yaml``.

* ``aifi`` (post): Attention-based Intra-scale Feature Interaction, one transformer encoder
  layer over the positions of one map: ultralytics' ``AIFI`` (a ``TransformerEncoderLayer``),
  RT-DETR's ``TransformerEncoderLayer`` in ``HybridEncoder.encoder``. Queries and keys are the
  tokens plus a 2-D sine-cosine position embedding, values the tokens themselves; then a
  two-layer feed-forward network, each half with a residual add and a LayerNorm (after the add
  by default, before the half with ``normalize_before``). The embedding is computed from the
  map's size on every call, so any image size works.
* ``rep_c3`` (post): the CSP block of RT-DETR's CCFM, ultralytics' ``RepC3`` and RT-DETR's
  ``CSPRepLayer``: ``cv3(m(cv1(x)) + cv2(x))``, ``m`` a chain of RepVGG units
  (:func:`~pyramidgraph.ops.csp.emit_rep_conv`), ``cv3`` only where the hidden width differs
  from the output's.

Submodules carry ultralytics' names (``ma``, ``fc1``, ``fc2``, ``norm1``, ``norm2``; ``cv1``,
``cv2``, ``m.<i>.conv1``, ``m.<i>.conv2``, ``cv3``), so a ``model.<i>.`` key of an ultralytics
checkpoint maps onto ``<node>.post<k>.`` by prefix; RT-DETR's own names map by prefix as well
(:mod:`pyramidgraph.interop.rtdetr`).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..shape import ShapeError
from .base import POST, PostOp, one_call_when_traced
from .common import ActName, emit_act, out_width
from .csp import _unit_weights, check_block_count, check_hidden, emit_conv_bn_act, emit_rep_conv, rep_conv_weights

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["AIFI", "RepC3", "sincos_position_embedding"]


@one_call_when_traced
def sincos_position_embedding(x: torch.Tensor, temperature: float, layout: str) -> torch.Tensor:
    """The 2-D sine-cosine embedding of every position of ``x`` (B, C, H, W), as (1, H*W, C) in
    ``x``'s dtype, token ``k`` being the position ``flatten(2)`` puts there (row ``k // W``,
    column ``k % W``).

    With ``omega_i = temperature ** -(i / (C / 4))``, the channels are ``sin(a * omega),
    cos(a * omega), sin(b * omega), cos(b * omega)`` for a grid ``(a, b)`` laid out row-major
    over ``(A, B)``. ``hw``: ``(A, B) = (H, W)``, so ``a`` is token ``k``'s row and ``b`` its
    column (ultralytics 8.4). ``wh``: ``(A, B) = (W, H)``, the official RT-DETR's
    ``meshgrid(arange(w), arange(h))``: token ``k`` gets the embedding of column ``k // H``
    and row ``k % H``; the two agree on square maps only. Computed in float32 (sines of
    integer positions lose too much in half precision), on ``x``'s device."""
    import torch

    height, width = x.shape[-2:]
    channels = x.shape[1]
    first, second = (height, width) if layout == "hw" else (width, height)
    like = x.new_zeros((), dtype=torch.float32)
    grid_a, grid_b = torch.meshgrid(torch.arange(first, device=x.device).to(like), torch.arange(second, device=x.device).to(like), indexing="ij")
    quarter = channels // 4
    omega = 1.0 / (temperature ** (torch.arange(quarter, device=x.device).to(like) / quarter))
    angle_a = grid_a.flatten()[:, None] * omega[None]
    angle_b = grid_b.flatten()[:, None] * omega[None]
    return torch.cat([angle_a.sin(), angle_a.cos(), angle_b.sin(), angle_b.cos()], 1)[None].to(x.dtype)


@POST.register("aifi")
@dataclass(frozen=True)
class AIFI(PostOp):
    """One transformer encoder layer over the map's positions (ultralytics' ``AIFI``, RT-DETR's
    encoder layer): tokens ``t = flatten(x)`` (B, H*W, C), ``p`` the 2-D sine-cosine embedding
    (:func:`sincos_position_embedding`, ``embedding`` its layout, ``temperature`` its base);
    ``s = norm1(t + ma(t + p, t + p, t))`` (``ma``: ``nn.MultiheadAttention`` of ``heads``
    heads, ``batch_first``), ``y = norm2(s + fc2(act(fc1(s))))`` (``fc1`` to ``hidden``
    channels), back to (B, C, H, W). ``normalize_before``: the pre-norm layer instead,
    ``s = t + ma(n + p, n + p, n)`` with ``n = norm1(t)``, ``y = s + fc2(act(fc1(norm2(s))))``.
    ``dropout`` (attention weights, after each half, inside the FFN) acts in training only.
    The width is kept; it must divide by 4 (the embedding's four parts) and by ``heads``."""

    hidden: int = 2048
    heads: int = 8
    dropout: float = 0.0
    act: ActName | None = "gelu"
    normalize_before: bool = False
    embedding: Literal["hw", "wh"] = "hw"
    temperature: float = 10000.0

    shorthand = "hidden"
    has_parameters = True

    def label(self) -> str:
        return f"AIFI /{self.heads}"

    def infer(self, x, channels):
        if self.hidden < 1 or self.heads < 1:
            raise ShapeError(f"aifi: hidden and heads must be at least 1, got hidden={self.hidden}, heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ShapeError(f"aifi: dropout must be in [0, 1), got {self.dropout}")
        if not self.temperature > 0:
            raise ShapeError(f"aifi: the embedding's temperature must be positive, got {self.temperature}")
        if x.channels % 4:
            raise ShapeError(f"aifi: the 2-D sin-cos position embedding splits the width into four parts (sin and cos of row and column), so it must divide by 4, got {x.channels} channels")
        if x.channels % self.heads:
            raise ShapeError(f"aifi: {x.channels} channels do not divide into {self.heads} attention heads; choose a width divisible by heads")
        if channels is not None and channels != x.channels:
            raise ShapeError(f"aifi keeps its input's width ({x.channels} channels), but the node declares {channels}; add a conv before or after it")
        return x

    def weight_estimate(self, shapes, out):
        c = shapes[0].channels
        return 4 * c * c + 4 * c + 2 * c * self.hidden + self.hidden + c + 4 * c

    def emit(self, e, args, shapes, out):
        import torch
        from torch import nn

        from ..weights import declare

        x, c = args[0], shapes[0].channels

        def dropped(local: str, y: torch.fx.Node) -> torch.fx.Node:
            return e.call_module(local, declare(nn.Dropout, self.dropout), y) if self.dropout > 0 else y

        tokens = e.call_function(torch.transpose, e.call_function(torch.flatten, x, 2), 1, 2)  # B, H*W, C
        position = e.call_function(sincos_position_embedding, x, float(self.temperature), self.embedding)
        attention = declare(nn.MultiheadAttention, c, self.heads, dropout=self.dropout, batch_first=True)
        layer_norm = declare(nn.LayerNorm, c)
        if self.normalize_before:
            normed = e.call_module("norm1", layer_norm, tokens)
            query = e.call_function(operator.add, normed, position)
            attended = e.call_function(operator.getitem, e.call_module("ma", attention, query, query, normed), 0)
            s = e.call_function(operator.add, tokens, dropped("dropout1", attended))
            hidden = e.call_module("fc1", declare(nn.Linear, c, self.hidden), e.call_module("norm2", declare(nn.LayerNorm, c), s))
        else:
            query = e.call_function(operator.add, tokens, position)
            attended = e.call_function(operator.getitem, e.call_module("ma", attention, query, query, tokens), 0)
            s = e.call_module("norm1", layer_norm, e.call_function(operator.add, tokens, dropped("dropout1", attended)))
            hidden = e.call_module("fc1", declare(nn.Linear, c, self.hidden), s)
        if self.act:
            hidden = emit_act(e, self.act, hidden)
        fed = dropped("dropout2", e.call_module("fc2", declare(nn.Linear, self.hidden, c), dropped("dropout", hidden)))
        y = e.call_function(operator.add, s, fed)
        if not self.normalize_before:
            y = e.call_module("norm2", declare(nn.LayerNorm, c), y)
        return e.call_function(torch.unflatten, e.call_function(torch.transpose, y, 1, 2), 2, e.size_of(x))


@POST.register("rep_c3")
@dataclass(frozen=True)
class RepC3(PostOp):
    """Ultralytics' ``RepC3`` = RT-DETR's ``CSPRepLayer``, to the node's width ``c2`` (or
    ``out``), ``hidden = int(c2 * expansion)``: ``cv1`` and ``cv2`` (1x1 conv-BN-``act`` units
    to ``hidden``) read the input; ``blocks`` RepVGG units ``m.i`` (``rep_act(bn(conv3x3) +
    bn(conv1x1))``, branches ``conv1``, ``conv2``) are chained on ``cv1``'s map; their output
    plus ``cv2``'s goes through ``cv3`` (1x1 unit to ``c2``), which exists only when ``hidden``
    differs from ``c2`` (an identity otherwise). ``act`` is ultralytics' ``Conv`` activation,
    ``rep_act`` its ``RepConv.default_act`` (both SiLU; RT-DETR uses its ``act`` for both).
    BN ``eps``/``momentum``: ultralytics 1e-3, 0.03; RT-DETR PyTorch's 1e-5, 0.1."""

    blocks: int = 3
    expansion: float = 1.0
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"
    rep_act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"RepC3 x{self.blocks}"

    def widths(self, channels: int) -> tuple[int, int]:
        return channels, int(channels * self.expansion)

    def infer(self, x, channels):
        width, hidden = self.widths(out_width(self.out, channels, x.channels))
        check_block_count("rep_c3", self.blocks)
        check_hidden("rep_c3", hidden, f"int({width} * expansion {self.expansion})")
        return x.with_(channels=width)

    def weight_estimate(self, shapes, out):
        width, hidden = self.widths(out.channels)
        return 2 * _unit_weights(shapes[0].channels, hidden) + self.blocks * rep_conv_weights(hidden, hidden) + (_unit_weights(hidden, width) if hidden != width else 0)

    def emit(self, e, args, shapes, out):
        width, hidden = self.widths(out.channels)
        cin, norm = shapes[0].channels, {"eps": self.eps, "momentum": self.momentum}
        y = emit_conv_bn_act(e, "cv1", args[0], cin, hidden, act=self.act, **norm)
        for i in range(self.blocks):
            y = emit_rep_conv(e, f"m.{i}", y, hidden, hidden, act=self.rep_act, **norm)
        y = e.call_function(operator.add, y, emit_conv_bn_act(e, "cv2", args[0], cin, hidden, act=self.act, **norm))
        if hidden != width:
            y = emit_conv_bn_act(e, "cv3", y, hidden, width, act=self.act, **norm)
        return y
