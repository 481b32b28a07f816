"""YOLOv9 and YOLOv10 blocks as ultralytics 8.4 builds them: ELAN aggregation, the downsamplers
that replace the strided conv, and YOLOv10's compact inverted block.

* ``rep_ncsp_elan4`` (post): ``RepNCSPELAN4`` (YOLOv9's GELAN block): a 1x1 unit to ``hidden``
  channels split in two, two stages (``RepCSP`` then a 3x3 unit) chained on the second half,
  every piece concatenated and reduced by a 1x1 unit.
* ``elan1`` (post): ``ELAN1`` (YOLOv9-t/s): the same aggregation with one 3x3 unit per stage.
* ``adown`` (resample): ``ADown``: a 2x2 stride-1 average pool, then half the channels through
  a 3x3 stride-2 unit and the other half through a 3x3 stride-2 max pool and a 1x1 unit.
* ``aconv`` (resample): ``AConv``: the same average pool, then one 3x3 stride-2 unit.
* ``scdown`` (resample and post): ``SCDown`` (YOLOv10): a 1x1 unit to the new width, then a
  depthwise ``kernel x kernel`` conv-BN (no activation) with the stride.
* ``c2f_cib`` (post): ``C2fCIB`` (YOLOv10): ``C2f`` whose bottlenecks are compact inverted blocks
  (``CIB``), the middle depthwise unit a ``RepVGGDW`` (7x7 + 3x3 depthwise, SiLU) when ``lk``.

Units are conv-BN-``act`` (ultralytics' ``Conv``; ``act`` is its ``Conv.default_act``, which a
YAML's ``activation:`` sets). ``RepConv`` and ``RepVGGDW`` keep their own SiLU whatever that
says, so their activation is the separate ``rep_act``. Submodules carry ultralytics' attribute
names (``cv1.conv``, ``cv2.0.m.0.cv1.conv1.bn``, ``m.0.cv1.2.conv1.conv``), so a checkpoint's
``model.<i>.`` prefix maps onto an op's module path.

Sizes: the average pool of ``ADown``/``AConv`` (kernel 2, stride 1, no padding) takes one row
and one column off, so both give ``floor(side / 2)``, not the ``ceil(side / 2)`` of a 3x3
stride-2 conv: on odd maps their output is one smaller than the backbone's next level.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from ..shape import FeatureShape, ShapeError
from .base import POST, RESAMPLE, Op, PostOp, ResampleOp
from .common import ActName, emit_act, out_width, stride_at, width_and_step, window_out
from .csp import _unit_weights, c2f_weights, check_block_count, check_hidden, emit_c2f, emit_conv_bn_act, emit_rep_conv, rep_conv_weights
from .yolo_csp import c3_weights, emit_c3

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

__all__ = ["RepNCSPELAN4", "ELAN1", "ADown", "AConv", "SCDown", "C2fCIB"]


def _check_range(name: str, what: str, value: int, low: int, high: int | None = None, why: str = "") -> None:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ShapeError(f"{name}: {what} must be {bound}, got {value}{why}")


def _elan_widths(name: str, hidden: int | None, block: int | None, width: int) -> tuple[int, int]:
    """``(c3, c4)``: the given widths, else ultralytics' head form ``c3 = c2``, ``c4 = c3 // 2``."""
    c3 = hidden if hidden is not None else width
    c4 = block if block is not None else c3 // 2
    _check_range(name, "hidden (c3)", c3, 2, why=" (cv1's output is split in two halves)")
    _check_range(name, "block (c4)", c4, 1)
    return c3, c4


def _emit_elan(e, x: torch.fx.Node, cin: int, c3: int, c4: int, cout: int, stages, unit: dict) -> torch.fx.Node:
    """The ELAN aggregation both blocks share: ``cv1`` (1x1 to ``c3``), chunked in two (the first
    piece ``ceil(c3 / 2)`` wide, the second ``c3 // 2``, as ``torch.chunk`` splits); ``stages``
    (``cv2``, ``cv3``) each read the previous piece; ``cv4`` (1x1) reduces all four."""
    import torch

    y = emit_conv_bn_act(e, "cv1", x, cin, c3, **unit)
    halves = e.call_function(torch.chunk, y, 2, 1)
    pieces = [e.call_function(operator.getitem, halves, 0), e.call_function(operator.getitem, halves, 1)]
    widths = c3 // 2
    for local, stage in zip(("cv2", "cv3"), stages):
        pieces.append(stage(local, pieces[-1], widths))
        widths = c4
    joined = e.call_function(torch.cat, pieces, 1)
    return emit_conv_bn_act(e, "cv4", joined, c3 + 2 * c4, cout, **unit)


def _rep_csp_weights(cin: int, cout: int, blocks: int) -> int:
    hidden = cout // 2
    return c3_weights(cin, cout, hidden, blocks, rep_conv_weights(hidden, hidden) + _unit_weights(hidden, hidden, 3))


@POST.register("rep_ncsp_elan4")
@dataclass(frozen=True)
class RepNCSPELAN4(PostOp):
    """Ultralytics' ``RepNCSPELAN4`` (YOLOv9, Wang et al. 2024: GELAN) to the node's width ``c2``
    (or ``out``). ``hidden`` is ``c3`` (default ``c2``), ``block`` is ``c4`` (default
    ``c3 // 2``), ``blocks`` the ``RepCSP`` repeats ``n``. ``cv1`` (1x1 unit to ``c3``) is chunked
    in two; ``cv2`` = ``RepCSP(c3 // 2, c4)`` then a 3x3 unit, ``cv3`` = ``RepCSP(c4, c4)`` then a 3x3
    unit, each on the previous piece; ``cv4`` (1x1) reduces ``cat`` of the four pieces.
    ``RepCSP(a, b)`` is ultralytics' ``C3`` with ``c_ = b // 2``: ``cv3(cat(m(cv1(x)), cv2(x)))``,
    where ``m`` chains ``blocks`` residual ``RepBottleneck``: a ``RepConv`` (3x3 + 1x1 conv-BN
    branches, summed, then ``rep_act``: ``conv1``, ``conv2``) and a 3x3 unit. Units are
    conv-BN-``act``; BN ``eps``/``momentum`` as ultralytics sets them (1e-3, 0.03)."""

    hidden: int | None = None
    block: int | None = None
    blocks: int = 1
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"
    rep_act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"RepNCSPELAN4 x{self.blocks}"

    def weight_estimate(self, shapes, out):
        c3, c4 = _elan_widths(self.name, self.hidden, self.block, out.channels)
        stages = _rep_csp_weights(c3 // 2, c4, self.blocks) + _rep_csp_weights(c4, c4, self.blocks) + 2 * _unit_weights(c4, c4, 3)
        return _unit_weights(shapes[0].channels, c3) + stages + _unit_weights(c3 + 2 * c4, out.channels)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        _c3, c4 = _elan_widths(self.name, self.hidden, self.block, width)
        _check_range(self.name, "block (c4)", c4, 2, why=" (each RepCSP's hidden width is c4 // 2)")
        check_block_count(self.name, self.blocks)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        c3, c4 = _elan_widths(self.name, self.hidden, self.block, out.channels)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}

        def stage(local: str, x: torch.fx.Node, cin: int) -> torch.fx.Node:
            y = self._emit_rep_csp(e, f"{local}.0", x, cin, c4, unit)
            return emit_conv_bn_act(e, f"{local}.1", y, c4, c4, kernel=3, **unit)

        return _emit_elan(e, args[0], shapes[0].channels, c3, c4, out.channels, (stage, stage), unit)

    def _emit_rep_csp(self, e, local: str, x: torch.fx.Node, cin: int, cout: int, unit: dict) -> torch.fx.Node:
        hidden = cout // 2

        def rep_bottleneck(e, local, x):  # RepBottleneck(c_, c_, shortcut=True): always residual
            z = emit_rep_conv(e, f"{local}.cv1", x, hidden, hidden, eps=self.eps, momentum=self.momentum, act=self.rep_act)
            z = emit_conv_bn_act(e, f"{local}.cv2", z, hidden, hidden, kernel=3, **unit)
            return e.call_function(operator.add, x, z)

        return emit_c3(e, local, x, cin, cout, hidden, self.blocks, rep_bottleneck, unit)


@POST.register("elan1")
@dataclass(frozen=True)
class ELAN1(PostOp):
    """Ultralytics' ``ELAN1`` (YOLOv9-t/s) to the node's width ``c2`` (or ``out``): the
    aggregation of ``rep_ncsp_elan4`` with a single 3x3 unit per stage: ``cv1`` (1x1 to ``hidden``
    = ``c3``, default ``c2``) chunked in two, ``cv2`` (3x3, ``c3 // 2`` -> ``block`` = ``c4``,
    default ``c3 // 2``) and ``cv3`` (3x3, ``c4`` -> ``c4``) chained on the second piece, ``cv4``
    (1x1) on the concatenation. An odd ``c3`` splits as ``torch.chunk`` does (the first piece
    one wider), as in ultralytics."""

    hidden: int | None = None
    block: int | None = None
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    has_parameters = True

    def label(self) -> str:
        return "ELAN1"

    def weight_estimate(self, shapes, out):
        c3, c4 = _elan_widths(self.name, self.hidden, self.block, out.channels)
        return _unit_weights(shapes[0].channels, c3) + _unit_weights(c3 // 2, c4, 3) + _unit_weights(c4, c4, 3) + _unit_weights(c3 + 2 * c4, out.channels)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        _elan_widths(self.name, self.hidden, self.block, width)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        c3, c4 = _elan_widths(self.name, self.hidden, self.block, out.channels)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}

        def stage(local: str, x: torch.fx.Node, cin: int) -> torch.fx.Node:
            return emit_conv_bn_act(e, local, x, cin, c4, kernel=3, **unit)

        return _emit_elan(e, args[0], shapes[0].channels, c3, c4, out.channels, (stage, stage), unit)


def _halved_size(name: str, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size after ``avg_pool2d(x, 2, 1, 0)`` and a 3x3 stride-2 window with padding 1:
    ``floor(side / 2)``; a side of 1 leaves nothing after the pool."""
    if size is None:
        return None
    if min(size) < 2:
        raise ShapeError(f"{name}: its 2x2 average pool needs a map of at least 2x2, got {size[0]}x{size[1]}; use a larger input")
    return (size[0] // 2, size[1] // 2)


def _check_down(name: str, x: FeatureShape, target: FeatureShape) -> None:
    if target.level <= x.level:
        raise ShapeError(f"{name} halves the map (one level down), but this edge goes from level {x.level} to level {target.level}; use it on an edge to a coarser node")


@dataclass(frozen=True)
class _AvgPoolDown(ResampleOp):
    """What ``ADown`` and ``AConv`` share: one level down to the target's width, after
    ``avg_pool2d(x, kernel=2, stride=1, padding=0, ceil_mode=False, count_include_pad=True)``."""

    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    has_parameters = True
    changes_channels = True

    def pool(self, e, x: torch.fx.Node) -> torch.fx.Node:
        import torch.nn.functional as F

        return e.call_function(F.avg_pool2d, x, 2, 1, 0, False, True)

    def unit(self) -> dict:
        return {"eps": self.eps, "momentum": self.momentum, "act": self.act}


@RESAMPLE.register("adown")
@dataclass(frozen=True)
class ADown(_AvgPoolDown):
    """Ultralytics' ``ADown`` (YOLOv9's downsampler), one level down to the target width ``c2``:
    a 2x2 stride-1 average pool, then the channels chunked in two halves: the first through
    ``cv1`` (3x3 stride-2 unit, padding 1, to ``c2 // 2``), the second through a 3x3 stride-2
    max pool (padding 1) and ``cv2`` (1x1 unit, to ``c2 // 2``); the two are concatenated. Both
    widths must be even (the halves are ``c1 // 2`` and ``c2 // 2`` wide). Sides become
    ``floor(side / 2)`` (the pool takes one off first), one less than a stride-2 conv's on odd maps."""

    def label(self) -> str:
        return "ADown"

    def weight_estimate(self, shapes, out):
        half_in, half_out = shapes[0].channels // 2, out.channels // 2
        return _unit_weights(half_in, half_out, 3) + _unit_weights(half_in, half_out)

    def infer(self, x, target):
        _check_down(self.name, x, target)
        for what, width in (("input", x.channels), ("output", target.channels)):
            if width % 2:
                raise ShapeError(f"adown splits its {what} in two halves, so its {what} width must be even, got {width}")
        return FeatureShape(target.channels, x.level + 1, _halved_size(self.name, x.size))

    def emit(self, e, args, shapes, out):
        import torch
        import torch.nn.functional as F

        half_in, half_out = shapes[0].channels // 2, out.channels // 2
        halves = e.call_function(torch.chunk, self.pool(e, args[0]), 2, 1)
        first = e.call_function(operator.getitem, halves, 0)
        second = e.call_function(operator.getitem, halves, 1)
        first = emit_conv_bn_act(e, "cv1", first, half_in, half_out, kernel=3, stride=2, padding=1, **self.unit())
        second = e.call_function(F.max_pool2d, second, 3, 2, 1)
        second = emit_conv_bn_act(e, "cv2", second, half_in, half_out, kernel=1, padding=0, **self.unit())
        return e.call_function(torch.cat, [first, second], 1)


@RESAMPLE.register("aconv")
@dataclass(frozen=True)
class AConv(_AvgPoolDown):
    """Ultralytics' ``AConv`` (YOLOv9-t/s's downsampler), one level down to the target width: a
    2x2 stride-1 average pool, then ``cv1``, a 3x3 stride-2 unit with padding 1. Sides become
    ``floor(side / 2)``, one less than a plain stride-2 conv's on odd maps."""

    def label(self) -> str:
        return "AConv"

    def weight_estimate(self, shapes, out):
        return _unit_weights(shapes[0].channels, out.channels, 3)

    def infer(self, x, target):
        _check_down(self.name, x, target)
        return FeatureShape(target.channels, x.level + 1, _halved_size(self.name, x.size))

    def emit(self, e, args, shapes, out):
        return emit_conv_bn_act(e, "cv1", self.pool(e, args[0]), shapes[0].channels, out.channels, kernel=3, stride=2, padding=1, **self.unit())


@RESAMPLE.register("scdown")
@POST.register("scdown")
@dataclass(frozen=True)
class SCDown(Op):
    """Ultralytics' ``SCDown`` (YOLOv10, Wang et al. 2024: spatial-channel decoupled
    downsampling): ``cv1``, a 1x1 unit to the new width ``c2``, then ``cv2``, a depthwise
    ``kernel x kernel`` conv-BN with ``stride`` and no activation (ultralytics pads ``kernel // 2``,
    also for an even kernel). On an edge it maps to the target width, with stride ``2**level
    difference`` unless given (YOLOv10's rows say ``[c2, 3, 2]``); after a fusion to the node's
    width (or ``out``) at stride 1."""

    kernel: int = 3
    stride: int | None = None
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    has_parameters = True
    changes_channels = True

    def at(self, inputs, site):
        return replace(self, stride=stride_at(self.stride, inputs[0], site))

    def label(self) -> str:
        stride = f" /{self.stride}" if self.stride and self.stride > 1 else ""
        return f"SCDown {self.kernel}x{self.kernel}{stride}"

    def weight_estimate(self, shapes, out):
        return _unit_weights(shapes[0].channels, out.channels) + _unit_weights(out.channels, out.channels, self.kernel, out.channels)

    def shape(self, inputs, site):
        x = inputs[0]
        width, step = width_and_step(self.name, self.stride, self.out, x, site)
        return FeatureShape(width, x.level + step, window_out(x.size, self.kernel, self.stride, self.kernel // 2))

    def emit(self, e, args, shapes, out):
        unit = {"eps": self.eps, "momentum": self.momentum}
        y = emit_conv_bn_act(e, "cv1", args[0], shapes[0].channels, out.channels, act=self.act, **unit)
        return emit_conv_bn_act(e, "cv2", y, out.channels, out.channels, kernel=self.kernel, stride=self.stride, groups=out.channels, padding=self.kernel // 2, act=None, **unit)


@POST.register("c2f_cib")
@dataclass(frozen=True)
class C2fCIB(PostOp):
    """Ultralytics' ``C2fCIB`` (YOLOv10) to the node's width ``c2`` (or ``out``), with
    ``c = int(c2 * expansion)``: ``C2f``'s ``cv1`` (1x1 unit to ``2 * c``, chunked in two) and
    ``cv2`` (1x1 unit reducing all ``2 + blocks`` pieces), its bottlenecks ``m.i`` compact
    inverted blocks ``CIB(c, c)``: ``cv1`` is a sequence of five units, ``0`` depthwise 3x3,
    ``1`` 1x1 to ``2 * c``, ``2`` depthwise 3x3 (with ``lk``: a ``RepVGGDW``, a depthwise 7x7
    conv-BN ``conv`` plus a depthwise 3x3 conv-BN ``conv1``, summed, then ``rep_act``), ``3`` 1x1
    back to ``c``, ``4`` depthwise 3x3; ``x + cv1(x)`` when ``shortcut``. Units are
    conv-BN-``act`` with BN ``eps``/``momentum`` (ultralytics: 1e-3, 0.03)."""

    blocks: int = 1
    shortcut: bool = False
    lk: bool = False
    expansion: float = 0.5
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"
    rep_act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"C2fCIB{' lk' if self.lk else ''} x{self.blocks}"

    def weight_estimate(self, shapes, out):
        c = int(out.channels * self.expansion)
        middle = _unit_weights(2 * c, 2 * c, 7, 2 * c) + _unit_weights(2 * c, 2 * c, 3, 2 * c) if self.lk else _unit_weights(2 * c, 2 * c, 3, 2 * c)
        cib = 2 * _unit_weights(c, c, 3, c) + _unit_weights(c, 2 * c) + _unit_weights(2 * c, c) + middle
        return c2f_weights(shapes[0].channels, out.channels, c, self.blocks, cib)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        check_hidden(self.name, hidden)
        check_block_count(self.name, self.blocks)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        c = int(out.channels * self.expansion)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}

        def cib(e, local, x):
            z = self._emit_cib(e, f"{local}.cv1", x, c, unit)
            return e.call_function(operator.add, x, z) if self.shortcut else z

        return emit_c2f(e, args[0], shapes[0].channels, out.channels, c, self.blocks, cib, unit)

    def _emit_cib(self, e, local: str, x: torch.fx.Node, c: int, unit: dict) -> torch.fx.Node:
        y = emit_conv_bn_act(e, f"{local}.0", x, c, c, kernel=3, groups=c, **unit)
        y = emit_conv_bn_act(e, f"{local}.1", y, c, 2 * c, **unit)
        if self.lk:
            plain = {"eps": self.eps, "momentum": self.momentum, "act": None, "groups": 2 * c}
            large = emit_conv_bn_act(e, f"{local}.2.conv", y, 2 * c, 2 * c, kernel=7, padding=3, **plain)
            small = emit_conv_bn_act(e, f"{local}.2.conv1", y, 2 * c, 2 * c, kernel=3, padding=1, **plain)
            y = e.call_function(operator.add, large, small)
            y = emit_act(e, self.rep_act, y) if self.rep_act else y
        else:
            y = emit_conv_bn_act(e, f"{local}.2", y, 2 * c, 2 * c, kernel=3, groups=2 * c, **unit)
        y = emit_conv_bn_act(e, f"{local}.3", y, 2 * c, c, **unit)
        return emit_conv_bn_act(e, f"{local}.4", y, c, c, kernel=3, groups=c, **unit)
