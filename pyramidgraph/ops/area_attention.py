"""YOLO12's area-attention block (Tian et al. 2025, "YOLOv12: Attention-Centric Real-Time Object Detectors").

* ``a2c2f`` (post): ultralytics 8.4's ``A2C2f``. A C2f-like block whose ``blocks`` inner stages
  are either two area-attention blocks each (``a2: true``: ``ABlock`` = ``AAttn`` + a 1x1 MLP)
  or one ``C3k`` each (``a2: false``, what YOLO12's head uses). Unlike C2f, ``cv1`` is not split
  in two halves: each stage reads the previous stage's output, and ``cv2`` reduces the
  concatenation of ``cv1``'s output and every stage's.

Area attention is self-attention in which the ``H * W`` positions of the map, in row-major
order, are cut into ``area`` runs of equal length and each run attends only within itself: the
cost falls by ``area`` while each run still spans whole rows of a wide map. The runs are cut
along the flattened positions, not along rows, so they need ``H * W`` divisible by ``area`` and
may end in the middle of a row (ultralytics' reshape fails otherwise; here a clear error).

Every unit is emitted as separate graph calls (conv, BN, activation; the attention's reshapes,
two matmuls and the softmax as plain torch functions, in ultralytics' order, so that the graph
re-traces with ``torch.fx`` and matches the reference to float rounding). Submodules carry
ultralytics' attribute names (``cv1.conv``, ``m.0.0.attn.qkv.bn``, ``m.0.1.mlp.1.conv``,
``m.0.m.1.cv2.bn``) and the residual scale is a parameter ``gamma`` directly under the op's
path, so ``model.<i>.<key>`` maps onto ``<node>.post<k>.<key>`` by prefix.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NeckInputError
from ..shape import ShapeError
from ..weights import ParameterDecl, declare
from .base import POST, PostOp, one_call_when_traced
from .common import ActName, build_norm, emit_act, out_width
from .csp import _check_blocks, _check_groups, _unit_weights, emit_conv_bn_act
from .yolo_csp import c3k_weights, emit_c3k

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.fx

    from ..codegen import Emitter

__all__ = ["A2C2f", "HEAD_DIM", "GAMMA_INIT", "split_into_areas"]

HEAD_DIM = 32
"""Ultralytics fixes the width of an attention head: ``ABlock(c_, c_ // 32, ...)``, so the
hidden width must be a multiple of 32 and there are ``c_ // 32`` heads."""

GAMMA_INIT = 0.01
"""The residual scale's starting value (ultralytics: ``0.01 * torch.ones(c2)``): the block
starts close to the identity and learns how much to add."""

PE_KERNEL = 7
"""The depthwise positional-encoding conv on the values (``AAttn.pe``)."""


def _trunc_normal(conv) -> None:
    """``ABlock._init_weights``: every conv inside an attention block starts truncated-normal
    with std 0.02 (the others keep PyTorch's default, as ultralytics' ``Conv`` does)."""
    from torch import nn

    nn.init.trunc_normal_(conv.weight, std=0.02)


def _emit_block_unit(e: Emitter, local: str, x: torch.fx.Node, cin: int, cout: int, *, kernel: int = 1, groups: int = 1, act: ActName | None, eps: float, momentum: float) -> torch.fx.Node:
    """``act(bn(conv(x)))`` as :func:`~pyramidgraph.ops.csp.emit_conv_bn_act` emits it, with
    the attention block's truncated-normal conv init (modules ``<local>.conv``, ``<local>.bn``)."""
    from torch import nn

    conv = declare(nn.Conv2d, cin, cout, kernel, stride=1, padding=kernel // 2, dilation=1, groups=groups, bias=False, init=_trunc_normal)
    y = e.call_module(f"{local}.conv", conv, x)
    y = e.call_module(f"{local}.bn", build_norm("bn", cout, eps=eps, momentum=momentum), y)
    return emit_act(e, act, y) if act else y


@one_call_when_traced
def split_into_areas(tokens: torch.Tensor, area: int) -> torch.Tensor:
    """``(B, C, N) -> (B * area, C, N // area)``: the positions cut into ``area`` consecutive
    runs, run ``a`` of image ``b`` at batch index ``b * area + a`` (ultralytics' reshape of the
    ``(B, N, C)`` tokens). A map whose ``H * W`` is not a multiple of ``area`` is refused with a
    clear message; the compile-time shape check catches it when the sizes are known, this one
    when only the call knows them. (One call when ``torch.fx`` re-traces the neck; under
    ``torch.compile``/``torch.export`` the check is left to the compiled program's guards.)"""
    import torch

    from ..contract import is_compiling  # torch.compiler.is_compiling, or torch._dynamo's before torch 2.3

    positions = tokens.shape[-1]
    if not is_compiling() and isinstance(positions, int) and positions % area:
        raise NeckInputError(f"a2c2f: {_area_problem(positions, area)}")
    runs = torch.unflatten(tokens, 2, (area, -1))  # B, C, area, N / area
    return torch.flatten(torch.transpose(runs, 1, 2), 0, 1)


def _area_problem(positions: int, area: int) -> str:
    return f"area attention cuts the map's {positions} positions (H * W) into area={area} runs of equal length, so H * W must be a multiple of {area}"


def _join_areas(e: Emitter, runs: torch.fx.Node, area: int, like: torch.fx.Node) -> torch.fx.Node:
    """``(B * area, heads, head_dim, N / area) -> (B, C, H, W)`` with ``H, W`` from ``like``:
    the inverse of the split, heads side by side along the channels (``head * head_dim + d``)."""
    import torch

    y = e.call_function(torch.flatten, runs, 1, 2)  # B * area, C, N / area
    if area > 1:
        y = e.call_function(torch.unflatten, y, 0, (-1, area))  # B, area, C, N / area
        y = e.call_function(torch.flatten, e.call_function(torch.transpose, y, 1, 2), 2, 3)  # B, C, N
    return e.call_function(torch.unflatten, y, 2, e.size_of(like))


def emit_area_attention(e: Emitter, local: str, x: torch.fx.Node, width: int, area: int, eps: float, momentum: float) -> torch.fx.Node:
    """Ultralytics' ``AAttn(width, width // 32, area)`` at ``<local>``: ``qkv`` (1x1 unit to
    ``3 * width``, no activation), attention per head within each area, ``+ pe(v)`` (depthwise
    7x7 unit on the values), ``proj`` (1x1 unit, no activation).

    The ``qkv`` channels are grouped by head, ``[q | k | v]`` of ``head_dim`` each inside a
    head (not all queries, then all keys), as the reference's ``view(..., heads, 3 * head_dim)``
    reads them; queries are scaled by ``head_dim ** -0.5`` before the product, as there."""
    import torch

    heads = width // HEAD_DIM
    unit = {"eps": eps, "momentum": momentum, "act": None}
    qkv = _emit_block_unit(e, f"{local}.qkv", x, width, 3 * width, **unit)
    tokens = e.call_function(torch.flatten, qkv, 2)  # B, 3C, N
    if area > 1:
        tokens = e.call_function(split_into_areas, tokens, area)  # B * area, 3C, N / area
    per_head = e.call_function(torch.unflatten, tokens, 1, (heads, 3 * HEAD_DIM))  # B', heads, 3 * head_dim, n
    parts = e.call_function(torch.split, per_head, HEAD_DIM, 2)
    q, k, v = (e.call_function(operator.getitem, parts, i) for i in range(3))  # B', heads, head_dim, n
    scaled = e.call_function(operator.mul, q, HEAD_DIM**-0.5)
    logits = e.call_function(torch.matmul, e.call_function(torch.transpose, scaled, -2, -1), k)  # B', heads, n, n
    weights = e.call_function(torch.softmax, logits, -1)
    mixed = e.call_function(torch.matmul, v, e.call_function(torch.transpose, weights, -2, -1))  # B', heads, head_dim, n
    mixed, values = _join_areas(e, mixed, area, x), _join_areas(e, v, area, x)
    position = _emit_block_unit(e, f"{local}.pe", values, width, width, kernel=PE_KERNEL, groups=width, **unit)
    return _emit_block_unit(e, f"{local}.proj", e.call_function(operator.add, mixed, position), width, width, **unit)


def emit_area_block(e: Emitter, local: str, x: torch.fx.Node, width: int, hidden: int, area: int, act: ActName | None, eps: float, momentum: float) -> torch.fx.Node:
    """Ultralytics' ``ABlock`` at ``<local>``: ``x + attn(x)``, then ``+ mlp(.)`` with
    ``mlp.0`` a 1x1 unit to ``hidden`` (activated) and ``mlp.1`` a 1x1 unit back (not)."""
    y = e.call_function(operator.add, x, emit_area_attention(e, f"{local}.attn", x, width, area, eps, momentum))
    z = _emit_block_unit(e, f"{local}.mlp.0", y, width, hidden, act=act, eps=eps, momentum=momentum)
    z = _emit_block_unit(e, f"{local}.mlp.1", z, hidden, width, act=None, eps=eps, momentum=momentum)
    return e.call_function(operator.add, y, z)


def _area_block_weights(width: int, hidden: int) -> int:
    attention = _unit_weights(width, 3 * width) + _unit_weights(width, width, PE_KERNEL, width) + _unit_weights(width, width)
    return attention + _unit_weights(width, hidden) + _unit_weights(hidden, width)


@POST.register("a2c2f")
@dataclass(frozen=True)
class A2C2f(PostOp):
    """Ultralytics' ``A2C2f`` (YOLO12) to the node's width ``c2`` (or ``out``), with
    ``hidden = int(c2 * expansion)`` (a multiple of 32, as ultralytics asserts): ``cv1`` (1x1
    unit to ``hidden``), ``blocks`` stages ``m.i`` each reading the previous one's output,
    ``cv2`` (1x1 unit) on the concatenation of ``cv1``'s output and every stage's.

    ``a2: true``: each stage is two area-attention blocks ``m.i.0``, ``m.i.1`` (``hidden // 32``
    heads of 32 channels; attention within ``area`` runs of the row-major positions, the whole
    map for ``area <= 1``, ultralytics' ``area > 1`` test; an MLP of ``int(hidden * mlp_ratio)``).
    With ``residual`` the block returns ``x + gamma * cv2(...)``, ``gamma`` a learned per-channel
    scale starting at 0.01 (so the input must already have ``c2`` channels).
    ``a2: false``: each stage is a ``C3k`` of two 3x3 bottlenecks (``shortcut``, ``groups``);
    ``area``, ``residual`` and ``mlp_ratio`` are unused, as in ultralytics.
    Units are conv-BN-``act`` (the attention's ``qkv``, ``pe``, ``proj`` and the MLP's second
    unit have no activation), BN ``eps``/``momentum`` as ultralytics (1e-3, 0.03)."""

    blocks: int = 1
    a2: bool = True
    area: int = 1
    residual: bool = False
    mlp_ratio: float = 2.0
    expansion: float = 0.5
    groups: int = 1
    shortcut: bool = True
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    @property
    def areas(self) -> int:
        """How many runs the attention cuts the positions into (ultralytics splits only for ``area > 1``)."""
        return self.area if self.a2 and self.area > 1 else 1

    @property
    def scaled_residual(self) -> bool:
        """Whether the block adds ``gamma * y`` to its input (ultralytics: ``a2 and residual``)."""
        return self.a2 and self.residual

    def label(self) -> str:
        inner = f"area attention{f' /{self.areas}' if self.areas > 1 else ''}" if self.a2 else "C3k"
        return f"A2C2f x{self.blocks} ({inner})"

    def _widths(self, width: int) -> tuple[int, int]:
        hidden = int(width * self.expansion)
        return hidden, int(hidden * self.mlp_ratio)

    def weight_estimate(self, shapes, out):
        hidden, mlp = self._widths(out.channels)
        stage = 2 * _area_block_weights(hidden, mlp) if self.a2 else c3k_weights(hidden, self.groups)
        gamma = out.channels if self.scaled_residual else 0
        return _unit_weights(shapes[0].channels, hidden) + self.blocks * stage + _unit_weights((1 + self.blocks) * hidden, out.channels) + gamma

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden, mlp = self._widths(width)
        _check_blocks("a2c2f", self.blocks, hidden, 3)
        if hidden % HEAD_DIM:
            raise ShapeError(
                f"a2c2f: the hidden width int(c2 * expansion) = int({width} * {self.expansion}) = {hidden} must be a multiple of {HEAD_DIM} "
                f"(ultralytics' attention heads are {HEAD_DIM} channels wide, and it asserts this for both a2 kinds); choose a width or expansion that gives one"
            )
        if self.a2 and self.blocks and mlp < 1:
            raise ShapeError(f"a2c2f: the MLP width int(hidden * mlp_ratio) = int({hidden} * {self.mlp_ratio}) is {mlp}; mlp_ratio must give at least 1 channel")
        if not self.a2 and self.blocks:
            _check_groups("a2c2f's C3k bottleneck", self.groups, hidden // 2, hidden // 2)
        if self.scaled_residual and x.channels != width:
            raise ShapeError(f"a2c2f with residual adds its input to gamma * output, so the input's {x.channels} channels must equal the output's {width}; set residual: false or make the widths equal")
        if self.areas > 1 and self.blocks and x.size is not None and (x.size[0] * x.size[1]) % self.areas:
            raise ShapeError(f"a2c2f: {_area_problem(x.size[0] * x.size[1], self.areas)}, not {x.size[0]}x{x.size[1]}; choose another image size or area")
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        import torch

        hidden, mlp = self._widths(out.channels)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        pieces = [emit_conv_bn_act(e, "cv1", args[0], shapes[0].channels, hidden, **unit)]
        for i in range(self.blocks):
            y = pieces[-1]
            if self.a2:
                for j in range(2):
                    y = emit_area_block(e, f"m.{i}.{j}", y, hidden, mlp, self.areas, **unit)
            else:
                y = emit_c3k(e, f"m.{i}", y, hidden, shortcut=self.shortcut, groups=self.groups, unit=unit)
            pieces.append(y)
        joined = pieces[0] if len(pieces) == 1 else e.call_function(torch.cat, pieces, 1)
        y = emit_conv_bn_act(e, "cv2", joined, (1 + self.blocks) * hidden, out.channels, **unit)
        if not self.scaled_residual:
            return y
        gamma = e.call_function(torch.reshape, e.parameter("gamma", ParameterDecl((out.channels,), fill=GAMMA_INIT)), (-1, out.channels, 1, 1))
        return e.call_function(operator.add, args[0], e.call_function(operator.mul, gamma, y))
