"""Cross Stage Partial blocks (YOLO necks) and the conv-BN-activation unit they are built from.

* ``conv_bn_act`` (one op, on an edge and after a fusion): convolution without bias, batch
  norm, activation, as ultralytics' ``Conv`` and mmcv's ``ConvModule`` with a BN ``norm_cfg``;
  on an edge its stride is ``2**level difference`` (YOLO's bottom-up downsampling). ``depthwise: true`` is mmcv's
  ``DepthwiseSeparableConvModule``: a depthwise ``kernel x kernel`` unit then a pointwise 1x1
  unit, each with its own BN and activation.
* ``c2f`` (post): ultralytics' ``C2f`` (YOLOv8): a 1x1 unit to ``2 * hidden`` channels, split in
  two halves, ``blocks`` bottlenecks chained on the second half, every piece concatenated and
  reduced by a 1x1 unit.
* ``csp`` (post): mmdetection's ``CSPLayer`` (YOLOX, the CSP of YOLOv5's ``C3``): a main 1x1
  unit followed by ``blocks`` Darknet bottlenecks, a short 1x1 unit, both concatenated
  (main first) and reduced by a final 1x1 unit. ``block: cspnext`` uses RTMDet's CSPNeXt
  blocks instead (a 3x3 unit, then a depthwise separable 5x5 one: ``use_cspnext_block``) and
  ``attention`` its channel attention on the concatenation (``channel_attention``).

Batch norm ``eps`` and ``momentum`` are parameters because the frameworks differ (PyTorch's
defaults are 1e-5 and 0.1; ultralytics and mmdetection's YOLO necks use 1e-3 and 0.03). Every
unit emits its convolution, its norm and its activation as separate graph calls, and the
submodules carry the reference's names (``cv1.conv``, ``m.0.cv2.bn``; ``main_conv.conv``,
``blocks.0.conv2.depthwise_conv.bn``), so a checkpoint maps onto a block by one key prefix.
Convolutions keep PyTorch's default init, as both references do.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, ClassVar, Literal

from ..shape import FeatureShape, ShapeError
from .base import POST, RESAMPLE, Op, PostOp
from .common import ActName, Padding, build_conv, build_norm, check_norm, emit_act, emit_conv, out_width, stride_at, width_and_step, window_out

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

NormKind = Literal["bn", "gn"] | None
"""The norm of a conv unit: batch norm (the YOLO necks'), group norm, or none (a conv bias instead)."""

__all__ = ["ConvBnAct", "C2f", "CSPLayer", "emit_conv_bn_act", "emit_rep_conv", "rep_conv_weights", "emit_c2f", "c2f_weights"]


def emit_conv_bn_act(
    e,
    local: str,
    x: torch.fx.Node,
    cin: int,
    cout: int,
    *,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    padding: Padding = None,
    depthwise: bool = False,
    eps: float = 1e-3,
    momentum: float = 0.03,
    act: ActName | None = "silu",
    slope: float = 0.01,
    norm_name: str | None = None,
    norm: NormKind = "bn",
    norm_groups: int = 32,
) -> torch.fx.Node:
    """Add ``act(norm(conv(x)))`` with modules ``<local>.conv`` and ``<local>.<norm_name>``
    (by default the norm's own name, ``bn`` or ``gn``, as ultralytics and mmcv name it; RT-DETR
    says ``norm``); with ``depthwise``, a depthwise unit ``<local>.depthwise_conv`` then a
    pointwise 1x1 unit ``<local>.pointwise_conv`` (mmcv's ``DepthwiseSeparableConvModule``).
    ``norm``: ``bn`` (BatchNorm2d), ``gn`` (GroupNorm of ``norm_groups``) or None, no norm and
    a conv bias instead (mmcv's ``bias='auto'``: a ``ConvModule`` without ``norm_cfg``)."""
    prefix = f"{local}." if local else ""
    if depthwise:
        unit = {"eps": eps, "momentum": momentum, "act": act, "slope": slope, "norm": norm, "norm_groups": norm_groups}
        y = emit_conv_bn_act(e, f"{prefix}depthwise_conv", x, cin, cin, kernel=kernel, stride=stride, groups=cin, padding=padding, **unit)
        return emit_conv_bn_act(e, f"{prefix}pointwise_conv", y, cin, cout, **unit)
    conv = build_conv(cin, cout, kernel, stride, padding, norm is None, "default", groups)
    y = emit_conv(e, f"{prefix}conv", conv, x, padding)
    if norm is not None:
        y = e.call_module(f"{prefix}{norm_name or norm}", build_norm(norm, cout, groups=norm_groups, eps=eps, momentum=momentum), y)
    return emit_act(e, act, y, slope) if act else y


def emit_rep_conv(
    e,
    local: str,
    x: torch.fx.Node,
    cin: int,
    cout: int,
    *,
    kernel: int = 3,
    stride: int = 1,
    groups: int = 1,
    eps: float = 1e-3,
    momentum: float = 0.03,
    act: ActName | None = "silu",
    branches: tuple[str, str] = ("conv1", "conv2"),
    norm_name: str | None = None,
) -> torch.fx.Node:
    """A RepVGG unit as trained (Ding et al. 2021): ``act(bn(conv_k(x)) + bn(conv_1x1(x)))``,
    the two conv-BN branches under ``<local>.<branches[0]>`` (``kernel x kernel``, padding
    ``kernel // 2``) and ``<local>.<branches[1]>`` (1x1, no padding). Ultralytics' ``RepConv``
    and RT-DETR's ``RepVggBlock`` name them ``conv1``/``conv2``; their norms are ``bn`` and
    ``norm``. At inference the branches fold into one conv, which the optimiser may do; the
    graph keeps them apart so that a checkpoint maps one to one."""
    prefix = f"{local}." if local else ""
    unit = {"stride": stride, "groups": groups, "eps": eps, "momentum": momentum, "act": None, "norm_name": norm_name}
    dense = emit_conv_bn_act(e, f"{prefix}{branches[0]}", x, cin, cout, kernel=kernel, padding=kernel // 2, **unit)
    pointwise = emit_conv_bn_act(e, f"{prefix}{branches[1]}", x, cin, cout, kernel=1, padding=0, **unit)
    y = e.call_function(operator.add, dense, pointwise)
    return emit_act(e, act, y) if act else y


def rep_conv_weights(cin: int, cout: int, kernel: int = 3, groups: int = 1) -> int:
    """Parameters and buffers of :func:`emit_rep_conv`'s two branches."""
    return _unit_weights(cin, cout, kernel, groups) + _unit_weights(cin, cout, 1, groups)


def _unit_weights(cin: int, cout: int, kernel: int = 1, groups: int = 1, depthwise: bool = False, norm: NormKind = "bn") -> int:
    """Parameters and buffers of one conv-norm-act unit (of a depthwise one and its pointwise
    partner when ``depthwise``), for :meth:`Op.weight_estimate`."""
    if depthwise:
        return _unit_weights(cin, cin, kernel, cin, norm=norm) + _unit_weights(cin, cout, norm=norm)
    return cin * cout * kernel**2 // groups + {"bn": 4 * cout + 1, "gn": 2 * cout, None: cout}[norm]


def _check_groups(name: str, groups: int, cin: int, cout: int) -> None:
    if cin % groups or cout % groups:
        raise ShapeError(f"{name} with groups={groups} needs widths divisible by it, got {cin} -> {cout}")


@RESAMPLE.register("conv_bn_act")
@POST.register("conv_bn_act", conv_bn_act1x1={"kernel": 1}, conv_bn_act3x3={"kernel": 3})
@dataclass(frozen=True)
class ConvBnAct(Op):
    """Conv (no bias) -> batch norm -> activation: ultralytics' ``Conv``, mmcv's ``ConvModule``
    with BN. After a fusion it maps to the node's width (or ``out``) at stride 1, kernel 1 unless
    given; on an edge to the target width with stride ``2**level difference`` unless given,
    kernel 3 unless given (YOLO's bottom-up downsampling, ultralytics ``Conv(c, c, 3, 2)``).
    ``depthwise``: mmcv's depthwise separable unit (depthwise conv+BN+act, pointwise 1x1
    conv+BN+act). ``act: null``: none; ``slope``: leaky_relu's negative slope.
    Modules: ``conv``, ``bn`` (or ``depthwise_conv.*``, ``pointwise_conv.*``)."""

    kernel: int | None = None
    stride: int | None = None
    groups: int = 1
    depthwise: bool = False
    padding: Padding = None
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"
    slope: float = 0.01
    norm: NormKind = "bn"
    norm_groups: int = 32

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    shorthand = "kernel"
    has_parameters = True
    changes_channels = True

    def at(self, inputs, site):
        kernel = self.kernel if self.kernel is not None else 3 if site.role == "edge" else 1
        return replace(self, kernel=kernel, stride=stride_at(self.stride, inputs[0], site))

    def label(self) -> str:
        kernel = self.kernel or "k"
        stride = f" /{self.stride}" if self.stride and self.stride > 1 else ""
        return f"{'dw' if self.depthwise else ''}conv{kernel}x{kernel}{stride}-bn-{self.act or 'linear'}"

    def weight_estimate(self, shapes, out):
        return _unit_weights(shapes[0].channels, out.channels, self.kernel or 1, self.groups, self.depthwise, self.norm)

    def shape(self, inputs, site):
        x = inputs[0]
        width, step = width_and_step("conv_bn_act", self.stride, self.out, x, site)
        _check_groups("conv_bn_act", self.groups, x.channels, width)
        size = window_out(x.size, self.kernel, self.stride, self.padding)
        if self.depthwise:
            check_norm(self.norm, x.channels, self.norm_groups, size)
        check_norm(self.norm, width, self.norm_groups, size)
        return FeatureShape(width, x.level + step, size)

    def emit(self, e, args, shapes, out):
        return emit_conv_bn_act(
            e, "", args[0], shapes[0].channels, out.channels, kernel=self.kernel, stride=self.stride, groups=self.groups,
            padding=self.padding, depthwise=self.depthwise, eps=self.eps, momentum=self.momentum, act=self.act, slope=self.slope,
            norm=self.norm, norm_groups=self.norm_groups,
        )


def emit_c2f(e, x: torch.fx.Node, cin: int, cout: int, hidden: int, blocks: int, block: Callable[..., torch.fx.Node], unit: dict) -> torch.fx.Node:
    """Ultralytics' ``C2f`` layout, which C3k2 and C2fCIB share: ``cv1`` (1x1 unit to
    ``2 * hidden``) chunked in two halves, ``blocks`` blocks ``m.i`` each reading the previous
    piece (``block(e, local, x)`` emits one, its shortcut included), all ``2 + blocks`` pieces
    concatenated and reduced by ``cv2`` (1x1 unit)."""
    import torch

    halves = e.call_function(torch.chunk, emit_conv_bn_act(e, "cv1", x, cin, 2 * hidden, **unit), 2, 1)
    pieces = [e.call_function(operator.getitem, halves, 0), e.call_function(operator.getitem, halves, 1)]
    for i in range(blocks):
        pieces.append(block(e, f"m.{i}", pieces[-1]))
    return emit_conv_bn_act(e, "cv2", e.call_function(torch.cat, pieces, 1), (2 + blocks) * hidden, cout, **unit)


def c2f_weights(cin: int, cout: int, hidden: int, blocks: int, block: int) -> int:
    """Parameters and buffers of :func:`emit_c2f` with ``block`` weights per block."""
    return _unit_weights(cin, 2 * hidden) + blocks * block + _unit_weights((2 + blocks) * hidden, cout)


MAX_BLOCKS = 64
"""Most bottlenecks in one ``c2f`` or ``csp`` (the largest YOLO models use 9): a count the
weight budget would pass at a small width, such as 5,000, took 13 s to build."""


def check_block_count(name: str, blocks: int) -> None:
    """``blocks`` repeats of a CSP-style op's inner block: 0 to :data:`MAX_BLOCKS`."""
    if not 0 <= blocks <= MAX_BLOCKS:
        raise ShapeError(f"{name}: blocks must be between 0 and {MAX_BLOCKS}, got {blocks}")


def check_hidden(name: str, hidden: int, what: str = "int(out * expansion)") -> None:
    """A CSP-style op's hidden width (``what`` says how it is computed) is at least 1."""
    if hidden < 1:
        raise ShapeError(f"{name}: the hidden width {what} is {hidden}; raise expansion or the width")


def _check_blocks(name: str, blocks: int, hidden: int, kernel: int) -> None:
    if kernel % 2 == 0:
        raise ShapeError(f"{name}: the bottleneck kernel must be odd (it keeps the map's size), got {kernel}")
    check_block_count(name, blocks)
    check_hidden(name, hidden)


@POST.register("c2f")
@dataclass(frozen=True)
class C2f(PostOp):
    """Ultralytics' ``C2f`` (YOLOv8) to the node's width ``c2`` (or ``out``), with
    ``hidden = int(c2 * expansion)``: ``cv1`` (1x1 unit to ``2 * hidden``) is chunked in two
    halves; ``blocks`` bottlenecks ``m.i`` (two ``kernel x kernel`` units ``cv1``, ``cv2``, the
    second with ``groups``; ``x + ...`` when ``shortcut``) each read the previous piece; all
    ``2 + blocks`` pieces are concatenated and ``cv2`` (1x1 unit) reduces them. Units are
    conv-BN-``act`` with BN ``eps``/``momentum`` (ultralytics: 1e-3, 0.03)."""

    blocks: int = 1
    shortcut: bool = False
    expansion: float = 0.5
    kernel: int = 3
    groups: int = 1
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"C2f x{self.blocks}"

    def weight_estimate(self, shapes, out):
        hidden = int(out.channels * self.expansion)
        bottleneck = _unit_weights(hidden, hidden, self.kernel) + _unit_weights(hidden, hidden, self.kernel, self.groups)
        return c2f_weights(shapes[0].channels, out.channels, hidden, self.blocks, bottleneck)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        hidden = int(width * self.expansion)
        _check_blocks("c2f", self.blocks, hidden, self.kernel)
        if self.blocks:
            _check_groups("c2f bottleneck", self.groups, hidden, hidden)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        hidden = int(out.channels * self.expansion)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act}

        def bottleneck(e, local, x):
            z = emit_conv_bn_act(e, f"{local}.cv1", x, hidden, hidden, kernel=self.kernel, **unit)
            z = emit_conv_bn_act(e, f"{local}.cv2", z, hidden, hidden, kernel=self.kernel, groups=self.groups, **unit)
            return e.call_function(operator.add, x, z) if self.shortcut else z

        return emit_c2f(e, args[0], shapes[0].channels, out.channels, hidden, self.blocks, bottleneck, unit)


@POST.register("csp")
@dataclass(frozen=True)
class CSPLayer(PostOp):
    """mmdetection's ``CSPLayer`` (YOLOX's PAFPN) to the node's width ``c`` (or ``out``), with
    ``mid = int(c * expansion)``: ``main_conv`` (1x1 unit to ``mid``) then ``blocks`` Darknet
    bottlenecks ``blocks.i`` (``conv1`` 1x1 unit, ``conv2`` ``kernel x kernel`` unit, depthwise
    separable when ``depthwise``; ``x + ...`` when ``shortcut``), ``short_conv`` (1x1 unit to
    ``mid``) on the input, ``cat(main, short)`` and ``final_conv`` (1x1 unit). Units are
    conv-BN-``act`` with BN ``eps``/``momentum`` (mmdetection: 1e-3, 0.03).

    ``block: cspnext`` (RTMDet, Lyu et al. 2022: ``use_cspnext_block``): each block is
    ``conv1``, a ``kernel x kernel`` unit (depthwise separable when ``depthwise``), then
    ``conv2``, a depthwise separable ``large_kernel x large_kernel`` unit (always), with the
    same ``shortcut``. ``attention`` (``channel_attention``): the concatenation is multiplied by
    ``hardsigmoid(attention.fc(avg_pool(x)))``, ``fc`` a 1x1 conv with bias."""

    blocks: int = 1
    shortcut: bool = True
    expansion: float = 0.5
    kernel: int = 3
    depthwise: bool = False
    out: int | None = None
    eps: float = 1e-3
    momentum: float = 0.03
    act: ActName | None = "silu"
    block: Literal["darknet", "cspnext"] = "darknet"
    large_kernel: int = 5
    attention: bool = False
    slope: float = 0.01
    norm: NormKind = "bn"
    norm_groups: int = 32

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"CSP{'NeXt' if self.block == 'cspnext' else ''} x{self.blocks}"

    def weight_estimate(self, shapes, out):
        mid, cin, norm = int(out.channels * self.expansion), shapes[0].channels, self.norm
        if self.block == "cspnext":
            bottleneck = _unit_weights(mid, mid, self.kernel, depthwise=self.depthwise, norm=norm) + _unit_weights(mid, mid, self.large_kernel, depthwise=True, norm=norm)
        else:
            bottleneck = _unit_weights(mid, mid, norm=norm) + _unit_weights(mid, mid, self.kernel, depthwise=self.depthwise, norm=norm)
        attention = (2 * mid) ** 2 + 2 * mid if self.attention else 0
        return 2 * _unit_weights(cin, mid, norm=norm) + self.blocks * bottleneck + attention + _unit_weights(2 * mid, out.channels, norm=norm)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        mid = int(width * self.expansion)
        _check_blocks("csp", self.blocks, mid, self.kernel)
        if self.block == "cspnext":
            _check_blocks("csp", self.blocks, mid, self.large_kernel)
        check_norm(self.norm, mid, self.norm_groups, x.size)  # every unit but the last normalises mid channels
        check_norm(self.norm, width, self.norm_groups, x.size)
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        import torch

        mid = int(out.channels * self.expansion)
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act, "slope": self.slope, "norm": self.norm, "norm_groups": self.norm_groups}
        cin = shapes[0].channels
        short = emit_conv_bn_act(e, "short_conv", args[0], cin, mid, **unit)
        main = emit_conv_bn_act(e, "main_conv", args[0], cin, mid, **unit)
        for i in range(self.blocks):
            if self.block == "cspnext":
                z = emit_conv_bn_act(e, f"blocks.{i}.conv1", main, mid, mid, kernel=self.kernel, depthwise=self.depthwise, **unit)
                z = emit_conv_bn_act(e, f"blocks.{i}.conv2", z, mid, mid, kernel=self.large_kernel, depthwise=True, **unit)
            else:
                z = emit_conv_bn_act(e, f"blocks.{i}.conv1", main, mid, mid, **unit)
                z = emit_conv_bn_act(e, f"blocks.{i}.conv2", z, mid, mid, kernel=self.kernel, depthwise=self.depthwise, **unit)
            main = e.call_function(operator.add, z, main) if self.shortcut else z
        joined = e.call_function(torch.cat, [main, short], 1)
        if self.attention:
            import torch.nn.functional as F

            fc = build_conv(2 * mid, 2 * mid, 1, 1, 0, True, "default")
            weight = e.call_function(F.hardsigmoid, e.call_module("attention.fc", fc, e.call_function(F.adaptive_avg_pool2d, joined, 1)))
            joined = e.call_function(operator.mul, joined, weight)
        return emit_conv_bn_act(e, "final_conv", joined, 2 * mid, out.channels, **unit)
