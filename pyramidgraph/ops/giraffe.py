"""DAMO-YOLO's fusion block: the ``CSPStage`` of its RepGFPN neck (``GiraffeNeckV2``).

Xu et al. 2022, "DAMO-YOLO: A Report on Real-Time Object Detection Design"; the behaviour is the
authors' code (tinyvision/DAMO-YOLO, ``damo/base_models/core/ops.py``), which differs from the
paper's figure in ways a checkpoint depends on:

* the two 1x1 entry units split the width unevenly: ``conv1`` gives ``c // 2`` channels and
  ``conv2`` the rest, ``c - c // 2`` (the blocks' width), so an odd ``c`` is not halved;
* each ``BasicBlock_3x3_Reverse`` runs its ``conv2`` first, a RepVGG unit (3x3 and 1x1 conv-BN
  branches ``rbr_dense`` and ``rbr_1x1``, summed, then the activation) to
  ``int(mid * hidden_ratio)``, and then ``conv1``, a 3x3 conv-BN-act unit back to ``mid``, and
  adds its input (the names are the reverse of the order they run in);
* the blocks run one after another on ``conv2``'s branch and *every* block's output is kept:
  ``conv3`` (1x1 unit) reduces ``cat(conv1, block 1, ..., block n)``;
* with no block (``round(3 * depth)`` is 0) ``conv2`` is still built, and never called.

``depthwise`` is the Nano models' variant: each block is a ``MobileV3Block`` instead (1x1 conv to
``make_divisible(ceil(3 * mid))``, BN, act, a depthwise 5x5 conv, BN, act, a 1x1 conv back to
``mid``, BN, plus the input), held as ``convs.<i>.conv.conv.<0..7>`` as its ``nn.Sequential``
numbers them; ``hidden_ratio`` is then unused, as in the code.

Submodules carry the code's attribute names (``conv1.conv``, ``convs.0.conv2.rbr_dense.bn``,
``conv3.bn``), so a checkpoint's ``merge_<k>.*`` maps onto one op by its prefix.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..shape import ShapeError
from .base import POST, PostOp
from .common import ActName, build_conv, build_norm, emit_act, out_width
from .csp import _unit_weights, check_block_count, emit_conv_bn_act, emit_rep_conv, rep_conv_weights

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

__all__ = ["CSPStage", "mobile_block_width"]


def mobile_block_width(mid: int) -> int:
    """The hidden width of the code's ``MobileV3Block`` for ``mid`` channels: ``ceil(3 * mid)``
    rounded to the nearest multiple of 8 (at least 8, and never more than 10% below it), as the
    code's ``make_divisible`` does."""
    wanted = math.ceil(mid * 3.0)
    width = max(8, int(wanted + 4) // 8 * 8)
    return width + 8 if width < 0.9 * wanted else width


@POST.register("csp_stage")
@dataclass(frozen=True)
class CSPStage(PostOp):
    """DAMO-YOLO's ``CSPStage`` (RepGFPN's fusion block) to the node's width ``c`` (or ``out``):
    ``conv1`` (1x1 unit to ``c // 2``) and ``conv2`` (1x1 unit to ``mid = c - c // 2``) on the
    input; ``blocks`` reversed basic blocks ``convs.i`` chained on ``conv2``'s output, each
    ``x + conv1(conv2(x))`` with ``conv2`` a RepVGG unit to ``int(mid * hidden_ratio)``
    (branches ``rbr_dense`` 3x3, ``rbr_1x1``) and ``conv1`` a 3x3 unit back to ``mid``; then
    ``conv3`` (1x1 unit) on ``cat(conv1, every block's output)``. ``depthwise``: the blocks are
    ``MobileV3Block``s (``convs.i.conv.conv.0..7``; ``hidden_ratio`` unused). Units are conv (no
    bias), BN (``eps``, ``momentum``; the code keeps PyTorch's 1e-5 and 0.1) and ``act``
    (``slope`` for leaky_relu; the code's ``lrelu`` is 0.1). With 0 blocks ``conv2`` is held but
    not called, as in the code."""

    blocks: int = 1
    hidden_ratio: float = 1.0
    depthwise: bool = False
    out: int | None = None
    eps: float = 1e-5
    momentum: float = 0.1
    act: ActName | None = "relu"
    slope: float = 0.1

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"CSPStage x{self.blocks}{' dw' if self.depthwise else ''}"

    def _hidden(self, mid: int) -> int:
        return mobile_block_width(mid) if self.depthwise else int(mid * self.hidden_ratio)

    def weight_estimate(self, shapes, out):
        first, mid = out.channels // 2, out.channels - out.channels // 2
        hidden = self._hidden(mid)
        if self.depthwise:
            block = _unit_weights(mid, hidden) + _unit_weights(hidden, hidden, 5, hidden) + _unit_weights(hidden, mid)
        else:
            block = rep_conv_weights(mid, hidden) + _unit_weights(hidden, mid, 3)
        cin = shapes[0].channels
        return _unit_weights(cin, first) + _unit_weights(cin, mid) + self.blocks * block + _unit_weights(first + self.blocks * mid, out.channels)

    def infer(self, x, channels):
        width = out_width(self.out, channels, x.channels)
        if width < 2:
            raise ShapeError(f"csp_stage splits its width in two (c // 2 and c - c // 2), so it needs at least 2 channels, got {width}")
        check_block_count("csp_stage", self.blocks)
        mid = width - width // 2
        if not self.depthwise and int(mid * self.hidden_ratio) < 1:
            raise ShapeError(f"csp_stage: the blocks' hidden width int({mid} * hidden_ratio {self.hidden_ratio}) is 0; raise hidden_ratio or the width")
        return x.with_(channels=width)

    def emit(self, e, args, shapes, out):
        import torch

        cin, width = shapes[0].channels, out.channels
        first, mid = width // 2, width - width // 2
        unit = {"eps": self.eps, "momentum": self.momentum, "act": self.act, "slope": self.slope}
        pieces = [emit_conv_bn_act(e, "conv1", args[0], cin, first, **unit)]
        if self.blocks == 0:  # the code builds conv2 whatever n is; with no block nothing reads it
            e.keep("conv2.conv", build_conv(cin, mid, 1, 1, 0, False, "default"))
            e.keep("conv2.bn", build_norm("bn", mid, eps=self.eps, momentum=self.momentum))
        else:
            y = emit_conv_bn_act(e, "conv2", args[0], cin, mid, **unit)
            for i in range(self.blocks):
                y = self._mobile_block(e, f"convs.{i}.conv.conv", y, mid) if self.depthwise else self._reverse_block(e, f"convs.{i}", y, mid)
                pieces.append(y)
        joined = e.call_function(torch.cat, pieces, 1) if len(pieces) > 1 else pieces[0]
        return emit_conv_bn_act(e, "conv3", joined, first + self.blocks * mid, width, **unit)

    def _activate(self, e, y: torch.fx.Node) -> torch.fx.Node:
        return emit_act(e, self.act, y, self.slope) if self.act else y

    def _reverse_block(self, e, local: str, x: torch.fx.Node, mid: int) -> torch.fx.Node:
        """``BasicBlock_3x3_Reverse``: the RepVGG unit ``conv2`` first, then the 3x3 unit ``conv1``, plus ``x``."""
        hidden = int(mid * self.hidden_ratio)
        norm = {"eps": self.eps, "momentum": self.momentum}
        y = emit_rep_conv(e, f"{local}.conv2", x, mid, hidden, kernel=3, act=None, branches=("rbr_dense", "rbr_1x1"), norm_name="bn", **norm)
        y = self._activate(e, y)  # after the emitter's own call, so that leaky_relu gets the code's slope
        y = emit_conv_bn_act(e, f"{local}.conv1", y, hidden, mid, kernel=3, act=self.act, slope=self.slope, **norm)
        return e.call_function(operator.add, x, y)

    def _mobile_block(self, e, local: str, x: torch.fx.Node, mid: int) -> torch.fx.Node:
        """``MobileV3Block`` (stride 1, in = out, so with its shortcut): 1x1 expand, depthwise 5x5, 1x1 project."""
        hidden = mobile_block_width(mid)
        steps = ((mid, hidden, 1, 1), (hidden, hidden, 5, hidden), (hidden, mid, 1, 1))
        y = x
        for index, (cin, cout, kernel, groups) in enumerate(steps):  # Sequential indices 0/1, 3/4, 6/7; the activations are 2 and 5
            y = e.call_module(f"{local}.{3 * index}", build_conv(cin, cout, kernel, 1, kernel // 2, False, "default", groups), y)
            y = e.call_module(f"{local}.{3 * index + 1}", build_norm("bn", cout, eps=self.eps, momentum=self.momentum), y)
            if index < 2:
                y = self._activate(e, y)
        return e.call_function(operator.add, x, y)
