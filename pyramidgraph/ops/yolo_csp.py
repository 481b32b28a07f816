"""Ultralytics' CSP-family blocks (YOLOv3-v5, YOLOv8 variants, YOLO11, YOLO26), as ultralytics 8.4 builds them.

One op per ultralytics module, post ops unless said otherwise, each mapping to the node's width
(or ``out``) like :class:`~pyramidgraph.ops.csp.C2f`:

* ``c3`` (``C3``), ``c2`` (``C2``), ``c3k2`` (``C3k2``: YOLO11's C2f whose blocks are
  ``Bottleneck``, ``C3k`` or ``Bottleneck`` + ``PSABlock``), ``c3ghost`` (``C3Ghost``);
* ``bottleneck`` (``Bottleneck`` on its own);
* ``spp`` (``SPP``) and ``sppf`` (``SPPF``, both the activated cv1 of YOLOv5-YOLO11 rows and
  YOLO26's linear one);
* ``ghost_conv`` (``GhostConv``): a post op, and a resample op whose stride comes from the edge.

Every unit is ultralytics' ``Conv`` (conv without bias, BN, activation), emitted by
:func:`~pyramidgraph.ops.csp.emit_conv_bn_act` with ultralytics' attribute names as module
names (``cv1.conv``, ``m.0.cv2.bn``, ``m.0.1.attn.qkv.bn``), so that a checkpoint's
``model.<i>.<tail>`` loads as ``<node>.post<k>.<tail>``. ``act`` is ``Conv.default_act``, the
activation of every unit built with ``act=True`` (a YAML's ``activation:`` changes it); units
ultralytics builds with ``act=False`` have none, whatever ``act`` is. BN ``eps`` and ``momentum``
default to 1e-3 and 0.03, what ultralytics' ``initialize_weights`` sets on a parsed model.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, ClassVar

from ..shape import FeatureShape, ShapeError
from .base import POST, RESAMPLE, Op, PostOp, one_call_when_traced
from .common import ActName, out_width, stride_at, width_and_step, window_out
from .csp import _unit_weights, c2f_weights, check_block_count, check_hidden, emit_c2f, emit_conv_bn_act

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.fx

__all__ = ["C3", "C3k2", "C2", "Bottleneck", "SPP", "SPPF", "GhostConv", "C3Ghost", "psa_attention", "emit_c3", "c3_weights", "emit_c3k", "c3k_weights"]


# -- shared checks and pieces ---------------------------------------------------------------------


def _check_groups(name: str, groups: int, *widths: int) -> None:
    if any(width % groups for width in widths):
        raise ShapeError(f"{name}: groups={groups} must divide the widths of its grouped conv, got {' -> '.join(map(str, widths))}")


def _check_odd(name: str, what: str, kernels: tuple[int, ...]) -> None:
    if any(kernel < 1 for kernel in kernels):
        raise ShapeError(f"{name}: {what} must be at least 1, got {', '.join(map(str, kernels))}")
    if any(kernel % 2 == 0 for kernel in kernels):
        raise ShapeError(f"{name}: {what} must be odd (padding k // 2 keeps the map's size), got {', '.join(map(str, kernels))}")


def _emit_bottleneck(e, local: str, x: torch.fx.Node, cin: int, cout: int, hidden: int, kernels: tuple[int, int], groups: int, add: bool, unit: dict) -> torch.fx.Node:
    """Ultralytics' ``Bottleneck``: ``cv1`` (``kernels[0]``, to ``hidden``), ``cv2``
    (``kernels[1]``, ``groups``, to ``cout``), plus the input when ``add``."""
    y = emit_conv_bn_act(e, f"{local}.cv1", x, cin, hidden, kernel=kernels[0], **unit)
    y = emit_conv_bn_act(e, f"{local}.cv2", y, hidden, cout, kernel=kernels[1], groups=groups, **unit)
    return e.call_function(operator.add, x, y) if add else y


def _bottleneck_weights(cin: int, cout: int, hidden: int, kernels: tuple[int, int], groups: int) -> int:
    return _unit_weights(cin, hidden, kernels[0]) + _unit_weights(hidden, cout, kernels[1], groups)


def emit_c3(e, local: str, x: torch.fx.Node, cin: int, cout: int, hidden: int, blocks: int, bottleneck: Callable[..., torch.fx.Node], unit: dict) -> torch.fx.Node:
    """Ultralytics' ``C3`` layout, which C3k, C3Ghost and YOLOv9's RepCSP share:
    ``cv3(cat(m(cv1(x)), cv2(x)))``, ``cv1``/``cv2`` 1x1 units to ``hidden`` and ``m`` a chain of
    ``blocks`` bottlenecks ``m.i`` at ``hidden``; ``bottleneck(e, local, x)`` emits one."""
    prefix = f"{local}." if local else ""
    main = emit_conv_bn_act(e, f"{prefix}cv1", x, cin, hidden, **unit)
    short = emit_conv_bn_act(e, f"{prefix}cv2", x, cin, hidden, **unit)
    for i in range(blocks):
        main = bottleneck(e, f"{prefix}m.{i}", main)
    return emit_conv_bn_act(e, f"{prefix}cv3", _emit_cat(e, [main, short]), 2 * hidden, cout, **unit)


def c3_weights(cin: int, cout: int, hidden: int, blocks: int, bottleneck: int) -> int:
    """Parameters and buffers of :func:`emit_c3` with ``bottleneck`` weights per block."""
    return 2 * _unit_weights(cin, hidden) + blocks * bottleneck + _unit_weights(2 * hidden, cout)


def _plain_bottlenecks(hidden: int, kernels: tuple[int, int], groups: int, shortcut: bool, unit: dict) -> Callable[..., torch.fx.Node]:
    """C3's own bottleneck (expansion 1.0) at ``hidden``, as :func:`emit_c3` takes it."""
    return lambda e, local, x: _emit_bottleneck(e, local, x, hidden, hidden, hidden, kernels, groups, shortcut, unit)


def emit_c3k(e, local: str, x: torch.fx.Node, width: int, *, shortcut: bool, groups: int, unit: dict, blocks: int = 2) -> torch.fx.Node:
    """Ultralytics' ``C3k(width, width, blocks, shortcut, groups)``: a C3 at half the width whose
    bottlenecks are two 3x3 units (the inner block of C3k2 and of A2C2f without attention)."""
    half = int(width * 0.5)
    return emit_c3(e, local, x, width, width, half, blocks, _plain_bottlenecks(half, (3, 3), groups, shortcut, unit), unit)


def c3k_weights(width: int, groups: int, blocks: int = 2) -> int:
    half = int(width * 0.5)
    return c3_weights(width, width, half, blocks, _bottleneck_weights(half, half, half, (3, 3), groups))


def _emit_cat(e, pieces: list[torch.fx.Node]) -> torch.fx.Node:
    """Concatenate ``pieces`` along channels."""
    import torch

    return e.call_function(torch.cat, pieces, 1)


def _emit_max_pool(e, x: torch.fx.Node, kernel: int) -> torch.fx.Node:
    """``nn.MaxPool2d(kernel, stride=1, padding=kernel // 2)``: the size-keeping pooling of SPP and SPPF."""
    import torch.nn.functional as F

    return e.call_function(F.max_pool2d, x, kernel, 1, kernel // 2)


def _emit_halves(e, x: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node]:
    """``x.chunk(2, 1)``: the two halves of C2's ``cv1`` (C2f's layout is :func:`emit_c2f`)."""
    import torch

    halves = e.call_function(torch.chunk, x, 2, 1)
    return e.call_function(operator.getitem, halves, 0), e.call_function(operator.getitem, halves, 1)


# -- C3, C2, Bottleneck ----------------------------------------------------------------------------


@POST.register("c3")
@dataclass(frozen=True)
class C3(PostOp):
    """Ultralytics' ``C3`` (YOLOv5's CSP bottleneck with three convs) to the node's width ``c2``
    (or ``out``), ``hidden = int(c2 * expansion)``: ``cv1`` and ``cv2`` (1x1 units to ``hidden``)
    both read the input; ``blocks`` bottlenecks ``m.i`` (a 1x1 unit ``cv1``, a 3x3 unit ``cv2``
    with ``groups``, plus their input when ``shortcut``) follow ``cv1``; ``cv3`` (1x1) reduces
    ``cat(m(cv1(x)), cv2(x))``. The CSP split keeps half the width away from the bottlenecks,
    which is why it is cheaper than a plain stack of them."""

    blocks: int = 1
    shortcut: bool = True
    groups: int = 1
    expansion: float = 0.5
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True
    kernels: ClassVar[tuple[int, int]] = (1, 3)

    def label(self) -> str:
        return f"C3 x{self.blocks}"

    def weight_estimate(self, shapes, out):
        hidden = int(out.channels * self.expansion)
        return c3_weights(shapes[0].channels, out.channels, hidden, self.blocks, _bottleneck_weights(hidden, hidden, hidden, self.kernels, self.groups))

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        check_hidden("c3", hidden)
        check_block_count("c3", self.blocks)
        if self.blocks:
            _check_groups("c3 bottleneck", self.groups, hidden, hidden)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        hidden = int(out.channels * self.expansion)
        bottleneck = _plain_bottlenecks(hidden, self.kernels, self.groups, self.shortcut, unit)
        return emit_c3(e, "", args[0], shapes[0].channels, out.channels, hidden, self.blocks, bottleneck, unit)


@POST.register("c2")
@dataclass(frozen=True)
class C2(PostOp):
    """Ultralytics' ``C2`` (CSP bottleneck with two convs) to the node's width ``c2`` (or
    ``out``), ``hidden = int(c2 * expansion)``: ``cv1`` (1x1 unit to ``2 * hidden``) is chunked
    into ``a`` and ``b``; ``m.i``, ``blocks`` bottlenecks of two 3x3 units (the second with
    ``groups``; plus their input when ``shortcut``), run on ``a``; ``cv2`` (1x1) reduces
    ``cat(m(a), b)``. Unlike C2f only the chain's last piece is kept."""

    blocks: int = 1
    shortcut: bool = True
    groups: int = 1
    expansion: float = 0.5
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"C2 x{self.blocks}"

    def weight_estimate(self, shapes, out):
        hidden = int(out.channels * self.expansion)
        blocks = self.blocks * _bottleneck_weights(hidden, hidden, hidden, (3, 3), self.groups)
        return _unit_weights(shapes[0].channels, 2 * hidden) + blocks + _unit_weights(2 * hidden, out.channels)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        check_hidden("c2", hidden)
        check_block_count("c2", self.blocks)
        if self.blocks:
            _check_groups("c2 bottleneck", self.groups, hidden, hidden)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        hidden = int(out.channels * self.expansion)
        a, b = _emit_halves(e, emit_conv_bn_act(e, "cv1", args[0], shapes[0].channels, 2 * hidden, **unit))
        for i in range(self.blocks):
            a = _emit_bottleneck(e, f"m.{i}", a, hidden, hidden, hidden, (3, 3), self.groups, self.shortcut, unit)
        return emit_conv_bn_act(e, "cv2", _emit_cat(e, [a, b]), 2 * hidden, out.channels, **unit)


@POST.register("bottleneck")
@dataclass(frozen=True)
class Bottleneck(PostOp):
    """Ultralytics' ``Bottleneck`` on its own, to the node's width ``c2`` (or ``out``):
    ``cv1`` (``kernels[0]`` unit to ``int(c2 * expansion)``), ``cv2`` (``kernels[1]`` unit with
    ``groups`` to ``c2``), plus the input only when ``shortcut`` and the widths agree
    (ultralytics drops the add silently otherwise, and so does this op)."""

    shortcut: bool = True
    groups: int = 1
    kernels: tuple[int, int] = (3, 3)
    expansion: float = 0.5
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    has_parameters = True

    def label(self) -> str:
        return "bottleneck"

    def weight_estimate(self, shapes, out):
        return _bottleneck_weights(shapes[0].channels, out.channels, int(out.channels * self.expansion), tuple(self.kernels), self.groups)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        if len(self.kernels) != 2:
            raise ShapeError(f"bottleneck: kernels are the two convs' kernels, [cv1, cv2], not {list(self.kernels)}")
        _check_odd("bottleneck", "kernels", tuple(self.kernels))
        check_hidden("bottleneck", hidden)
        _check_groups("bottleneck cv2", self.groups, hidden, width)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        cin, cout = shapes[0].channels, out.channels
        hidden, kernels = int(cout * self.expansion), (self.kernels[0], self.kernels[1])
        y = emit_conv_bn_act(e, "cv1", args[0], cin, hidden, kernel=kernels[0], **unit)
        y = emit_conv_bn_act(e, "cv2", y, hidden, cout, kernel=kernels[1], groups=self.groups, **unit)
        return e.call_function(operator.add, args[0], y) if self.shortcut and cin == cout else y


# -- C3k2 (YOLO11, YOLO26) --------------------------------------------------------------------------


PSA_ATTN_RATIO = 0.5
"""C3k2 builds its ``PSABlock`` with ``attn_ratio=0.5``: keys and queries of half a head's width."""


def psa_heads(width: int) -> tuple[int, int, int]:
    """``(heads, head_dim, key_dim)`` of the ``Attention`` that C3k2 builds on ``width``
    channels: ``max(width // 64, 1)`` heads, ``width // heads`` channels each, keys of
    ``int(head_dim * 0.5)``."""
    heads = max(width // 64, 1)
    head_dim = width // heads
    return heads, head_dim, int(head_dim * PSA_ATTN_RATIO)


@one_call_when_traced
def psa_attention(qkv: torch.Tensor, heads: int, key_dim: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ultralytics' ``Attention`` between its ``qkv`` and ``pe``/``proj`` convs: per head, the
    ``2 * key_dim + head_dim`` channels of ``qkv`` are ``q``, ``k``, ``v`` (heads interleaved,
    as ``qkv.view(B, heads, -1, H * W)`` splits them); every position attends over all
    positions with ``softmax(q^T k / sqrt(key_dim))``. Returns the attended values and ``v``,
    both as ``B x (heads * head_dim) x H x W`` maps (``pe`` runs on ``v``)."""
    batch, _, height, width = qkv.shape
    q, k, v = qkv.view(batch, heads, 2 * key_dim + head_dim, height * width).split([key_dim, key_dim, head_dim], dim=2)
    weights = ((q * key_dim**-0.5).transpose(-2, -1) @ k).softmax(dim=-1)
    attended = (v @ weights.transpose(-2, -1)).view(batch, heads * head_dim, height, width)
    return attended, v.reshape(batch, heads * head_dim, height, width)


def _emit_psa_block(e, local: str, x: torch.fx.Node, width: int, unit: dict) -> torch.fx.Node:
    """Ultralytics' ``PSABlock(width, attn_ratio=0.5, num_heads=max(width // 64, 1))`` with its
    shortcuts: ``x + attn(x)``, then ``+ ffn`` (``ffn.0`` 1x1 unit to ``2 * width`` with ``act``,
    ``ffn.1`` 1x1 unit back, linear). ``attn``: ``qkv`` (linear 1x1 unit), :func:`psa_attention`,
    plus ``pe`` (linear depthwise 3x3 unit on ``v``), then ``proj`` (linear 1x1 unit)."""
    heads, head_dim, key_dim = psa_heads(width)
    linear = dict(unit, act=None)
    qkv = emit_conv_bn_act(e, f"{local}.attn.qkv", x, width, width + 2 * key_dim * heads, **linear)
    pair = e.call_function(psa_attention, qkv, heads, key_dim, head_dim)
    attended, values = e.call_function(operator.getitem, pair, 0), e.call_function(operator.getitem, pair, 1)
    positional = emit_conv_bn_act(e, f"{local}.attn.pe", values, width, width, kernel=3, groups=width, **linear)
    y = emit_conv_bn_act(e, f"{local}.attn.proj", e.call_function(operator.add, attended, positional), width, width, **linear)
    x = e.call_function(operator.add, x, y)
    y = emit_conv_bn_act(e, f"{local}.ffn.0", x, width, 2 * width, **unit)
    y = emit_conv_bn_act(e, f"{local}.ffn.1", y, 2 * width, width, **linear)
    return e.call_function(operator.add, x, y)


def _psa_block_weights(width: int) -> int:
    heads, _head_dim, key_dim = psa_heads(width)
    qkv = _unit_weights(width, width + 2 * key_dim * heads)
    return qkv + _unit_weights(width, width, 3, width) + _unit_weights(width, width) + _unit_weights(width, 2 * width) + _unit_weights(2 * width, width)


@POST.register("c3k2")
@dataclass(frozen=True)
class C3k2(PostOp):
    """Ultralytics' ``C3k2`` (YOLO11, YOLO26) to the node's width ``c2`` (or ``out``): C2f's
    layout with ``c = int(c2 * expansion)``: ``cv1`` (1x1 unit to ``2c``) chunked in two, each
    block ``m.i`` reading the previous piece, ``cv2`` (1x1) reducing all ``2 + blocks`` pieces.
    The blocks (all with ``groups`` on their grouped convs and ``shortcut``):

    * default: ``Bottleneck(c, c)`` at expansion 0.5: 3x3 units ``c -> c // 2 -> c``
      (C2f's are ``c -> c -> c``);
    * ``c3k``: ``C3k(c, c, 2)``: a C3 (``cv1``, ``cv2``, ``cv3``, hidden ``int(c * 0.5)``) whose
      two bottlenecks ``m.0``, ``m.1`` have 3x3 kernels (ultralytics' M/L/X scales);
    * ``attn`` (YOLO26, wins over ``c3k``): ``m.i.0`` the default Bottleneck, then ``m.i.1`` a
      ``PSABlock`` of ``max(c // 64, 1)`` heads, ``attn_ratio`` 0.5 (``attn.qkv``, ``attn.pe``,
      ``attn.proj``, ``ffn.0``, ``ffn.1``), with its own shortcuts always on."""

    blocks: int = 1
    c3k: bool = False
    expansion: float = 0.5
    attn: bool = False
    groups: int = 1
    shortcut: bool = True
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        inner = "attn" if self.attn else "C3k" if self.c3k else "bottleneck"
        return f"C3k2 x{self.blocks} ({inner})"

    def block_weights(self, c: int) -> int:
        bottleneck = _bottleneck_weights(c, c, int(c * 0.5), (3, 3), self.groups)
        if self.attn:
            return bottleneck + _psa_block_weights(c)
        if self.c3k:
            return c3k_weights(c, self.groups)
        return bottleneck

    def weight_estimate(self, shapes, out):
        c = int(out.channels * self.expansion)
        return c2f_weights(shapes[0].channels, out.channels, c, self.blocks, self.block_weights(c))

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        c = int(width * self.expansion)
        check_hidden("c3k2", c)
        check_block_count("c3k2", self.blocks)
        if self.blocks:
            inner = "int(int(out * expansion) * 0.5)"
            check_hidden("c3k2 block", int(c * 0.5), inner)
            if self.c3k and not self.attn:
                _check_groups("c3k2 C3k bottleneck", self.groups, int(c * 0.5), int(c * 0.5))
            else:
                _check_groups("c3k2 bottleneck cv2", self.groups, int(c * 0.5), c)
            if self.attn:
                heads, _head_dim, key_dim = psa_heads(c)
                if c % heads:
                    raise ShapeError(f"c3k2: attn splits the hidden width {c} into max({c} // 64, 1) = {heads} heads, which does not divide it; choose a width or expansion that it divides")
                if key_dim < 1:
                    raise ShapeError(f"c3k2: attn needs a hidden width of at least 2 (its keys are half a head wide), got {c}")
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        c = int(out.channels * self.expansion)

        def block(e, local, x):
            if self.attn:
                y = _emit_bottleneck(e, f"{local}.0", x, c, c, int(c * 0.5), (3, 3), self.groups, self.shortcut, unit)
                return _emit_psa_block(e, f"{local}.1", y, c, unit)
            if self.c3k:
                return emit_c3k(e, local, x, c, shortcut=self.shortcut, groups=self.groups, unit=unit)
            return _emit_bottleneck(e, local, x, c, c, int(c * 0.5), (3, 3), self.groups, self.shortcut, unit)

        return emit_c2f(e, args[0], shapes[0].channels, out.channels, c, self.blocks, block, unit)


# -- SPP, SPPF ----------------------------------------------------------------------------------------


MAX_POOL_KERNEL = 31
MAX_POOL_REPEATS = 16


@POST.register("spp")
@dataclass(frozen=True)
class SPP(PostOp):
    """Ultralytics' ``SPP`` (spatial pyramid pooling, He et al. 2014, as YOLOv3-SPP uses it) to
    the node's width (or ``out``): ``cv1`` (1x1 unit to half the *input's* width), max pools of
    each of ``kernels`` at stride 1 (padding ``k // 2``: the map keeps its size) side by side,
    ``cv2`` (1x1) on ``cat(x, pool_k1(x), pool_k2(x), ...)``. Widens the receptive field at
    little cost; ``m.i`` are the pools (no weights)."""

    kernels: tuple[int, ...] = (5, 9, 13)
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    has_parameters = True

    def label(self) -> str:
        return f"SPP {'/'.join(map(str, self.kernels))}"

    def weight_estimate(self, shapes, out):
        hidden = shapes[0].channels // 2
        return _unit_weights(shapes[0].channels, hidden) + _unit_weights(hidden * (len(self.kernels) + 1), out.channels)

    def infer(self, x, channels):
        check_hidden("spp", x.channels // 2, "input width // 2")
        if not self.kernels:
            raise ShapeError("spp: kernels must list at least one pooling size")
        _check_odd("spp", "kernels", tuple(self.kernels))
        if max(self.kernels) > MAX_POOL_KERNEL:
            raise ShapeError(f"spp: kernels must be at most {MAX_POOL_KERNEL}, got {max(self.kernels)}")
        return x.with_(channels=out_width(self.out, channels, x.channels))

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        hidden = shapes[0].channels // 2
        y = emit_conv_bn_act(e, "cv1", args[0], shapes[0].channels, hidden, **unit)
        pieces = [y, *(_emit_max_pool(e, y, kernel) for kernel in self.kernels)]
        return emit_conv_bn_act(e, "cv2", _emit_cat(e, pieces), hidden * len(pieces), out.channels, **unit)


@POST.register("sppf")
@dataclass(frozen=True)
class SPPF(PostOp):
    """Ultralytics' ``SPPF`` (8.4) to the node's width (or ``out``): ``cv1`` (1x1 unit to half
    the *input's* width), then ``repeats`` max pools of ``kernel`` at stride 1 chained, each on
    the previous one (three 5x5 pools equal SPP's 5, 9, 13 at a fraction of the cost), ``cv2``
    (1x1) on all ``repeats + 1`` pieces concatenated, plus the input when ``shortcut`` and the
    widths agree. ``cv1_act``: whether ``cv1`` has the activation. ``SPPF`` itself builds it
    linear (YOLO26), but ``parse_model`` gives it back to rows of at most three args
    (``[c2, k]``: YOLOv5-YOLO11 checkpoints), so an importer sets ``cv1_act: false`` only
    for rows that give ``n`` or ``shortcut``."""

    kernel: int = 5
    repeats: int = 3
    shortcut: bool = False
    cv1_act: bool = True
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    has_parameters = True

    def label(self) -> str:
        return f"SPPF {self.kernel}x{self.repeats}"

    def weight_estimate(self, shapes, out):
        hidden = shapes[0].channels // 2
        return _unit_weights(shapes[0].channels, hidden) + _unit_weights(hidden * (self.repeats + 1), out.channels)

    def infer(self, x, channels):
        check_hidden("sppf", x.channels // 2, "input width // 2")
        _check_odd("sppf", "kernel", (self.kernel,))
        if not 0 <= self.repeats <= MAX_POOL_REPEATS:
            raise ShapeError(f"sppf: repeats must be between 0 and {MAX_POOL_REPEATS}, got {self.repeats}")
        return x.with_(channels=out_width(self.out, channels, x.channels))

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        cin = shapes[0].channels
        hidden = cin // 2
        pieces = [emit_conv_bn_act(e, "cv1", args[0], cin, hidden, **dict(unit, act=self.act if self.cv1_act else None))]
        for _ in range(self.repeats):
            pieces.append(_emit_max_pool(e, pieces[-1], self.kernel))
        y = emit_conv_bn_act(e, "cv2", _emit_cat(e, pieces), hidden * len(pieces), out.channels, **unit)
        return e.call_function(operator.add, y, args[0]) if self.shortcut and cin == out.channels else y


# -- Ghost convolutions -------------------------------------------------------------------------------


GHOST_CHEAP_KERNEL = 5
"""GhostConv's cheap operation: a depthwise 5x5 unit."""


def _emit_ghost_conv(e, local: str, x: torch.fx.Node, cin: int, cout: int, kernel: int, stride: int, groups: int, unit: dict) -> torch.fx.Node:
    """Ultralytics' ``GhostConv``: ``cv1`` (``kernel``, ``stride``, ``groups``; to ``cout // 2``),
    ``cv2`` (depthwise 5x5 on it), ``cat(cv1, cv2)``."""
    prefix = f"{local}." if local else ""
    half = cout // 2
    y = emit_conv_bn_act(e, f"{prefix}cv1", x, cin, half, kernel=kernel, stride=stride, groups=groups, **unit)
    cheap = emit_conv_bn_act(e, f"{prefix}cv2", y, half, half, kernel=GHOST_CHEAP_KERNEL, groups=half, **unit)
    return _emit_cat(e, [y, cheap])


def _ghost_conv_weights(cin: int, cout: int, kernel: int, groups: int) -> int:
    half = cout // 2
    return _unit_weights(cin, half, kernel, groups) + _unit_weights(half, half, GHOST_CHEAP_KERNEL, half)


@RESAMPLE.register("ghost_conv")
@POST.register("ghost_conv")
@dataclass(frozen=True)
class GhostConv(Op):
    """Ultralytics' ``GhostConv`` (GhostNet, Han et al. 2020): half the output from an ordinary
    unit ``cv1`` (``kernel``, ``stride``, ``groups``), the other half from a cheap depthwise 5x5
    unit ``cv2`` on it, concatenated; both units with ``act``. After a fusion it maps to the
    node's width (or ``out``) at stride 1; on an edge (YOLOv8-ghost's downsampling
    ``GhostConv(c, c, 3, 2)``) to the target's width with stride ``2**level difference``
    unless given. The width must be even."""

    kernel: int = 1
    stride: int | None = None
    groups: int = 1
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    shorthand = "kernel"
    has_parameters = True
    changes_channels = True

    def at(self, inputs, site):
        return replace(self, stride=stride_at(self.stride, inputs[0], site))

    def label(self) -> str:
        stride = f" /{self.stride}" if self.stride and self.stride > 1 else ""
        return f"ghost{self.kernel}x{self.kernel}{stride}"

    def weight_estimate(self, shapes, out):
        return _ghost_conv_weights(shapes[0].channels, out.channels, self.kernel, self.groups)

    def shape(self, inputs, site):
        x = inputs[0]
        stride = self.stride if self.stride is not None else 1
        width, step = width_and_step("ghost_conv", stride, self.out, x, site)
        _check_odd("ghost_conv", "kernel", (self.kernel,))
        if width % 2 or width < 2:
            raise ShapeError(f"ghost_conv: the width must be even (half from cv1, half from its cheap depthwise cv2), got {width}")
        _check_groups("ghost_conv cv1", self.groups, x.channels, width // 2)
        return FeatureShape(width, x.level + step, window_out(x.size, self.kernel, stride, None))

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        return _emit_ghost_conv(e, "", args[0], shapes[0].channels, out.channels, self.kernel, self.stride or 1, self.groups, unit)


@POST.register("c3ghost")
@dataclass(frozen=True)
class C3Ghost(PostOp):
    """Ultralytics' ``C3Ghost`` (YOLOv5/v8-ghost) to the node's width ``c2`` (or ``out``): C3's
    ``cv1``, ``cv2``, ``cv3`` with ``hidden = int(c2 * expansion)``, its ``blocks`` being
    ``GhostBottleneck(hidden, hidden)`` at stride 1: ``conv.0`` a GhostConv to ``hidden // 2``
    with ``act``, ``conv.2`` a linear GhostConv back to ``hidden`` (``conv.1`` is an identity),
    plus the block's input. ``shortcut`` and ``groups`` are C3's positional arguments, which
    C3Ghost accepts and its Ghost bottlenecks ignore (they always add their input); they are
    kept so that a row's arguments map one to one. ``hidden`` must be a multiple of 4 (each
    GhostConv halves its width)."""

    blocks: int = 1
    shortcut: bool = True
    groups: int = 1
    expansion: float = 0.5
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"C3Ghost x{self.blocks}"

    def weight_estimate(self, shapes, out):
        hidden = int(out.channels * self.expansion)
        block = _ghost_conv_weights(hidden, hidden // 2, 1, 1) + _ghost_conv_weights(hidden // 2, hidden, 1, 1)
        return c3_weights(shapes[0].channels, out.channels, hidden, self.blocks, block)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        check_hidden("c3ghost", hidden)
        check_block_count("c3ghost", self.blocks)
        if self.blocks and hidden % 4:
            raise ShapeError(f"c3ghost: the hidden width int(out * expansion) must be a multiple of 4 (each GhostConv of a Ghost bottleneck halves it), got {hidden}")
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}
        hidden = int(out.channels * self.expansion)

        def ghost_bottleneck(e, local, x):  # GhostBottleneck(hidden, hidden) at stride 1: conv.1 is an identity
            y = _emit_ghost_conv(e, f"{local}.conv.0", x, hidden, hidden // 2, 1, 1, 1, unit)
            y = _emit_ghost_conv(e, f"{local}.conv.2", y, hidden // 2, hidden, 1, 1, 1, dict(unit, act=None))
            return e.call_function(operator.add, y, x)

        return emit_c3(e, "", args[0], shapes[0].channels, out.channels, hidden, self.blocks, ghost_bottleneck, unit)
