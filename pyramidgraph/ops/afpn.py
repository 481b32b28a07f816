"""The op the Asymptotic Feature Pyramid Network needs beyond the shared ones (Yang et al. 2023).

* ``basic_block`` (post): a chain of ``blocks`` ResNet BasicBlocks (He et al. 2016) at the
  node's width: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)``, two 3x3 convs (padding 1, stride
  1) with their batch norms and an identity shortcut. AFPN runs four after every fusion stage
  (``BlockBody.blocks_scale*``). Its convs carry a bias (``nn.Conv2d(c, c, 3, padding=1)``,
  redundant before a BN but part of the checkpoint and the parameter count), so ``bias``
  defaults to true; torchvision's BasicBlock has none (``bias: false``).

The rest of AFPN is built from shared ops: the ``BasicConv`` units are ``conv_bn_act``
(``act: relu``, PyTorch's BN defaults), the ``ASFF_2/3/4`` fusions are ``pixel_weights``
(``compress: 8``, ``act: relu``), the upsampling is ``upsample`` (``mode: bilinear``,
``by: scale``) and the fifth output a ``maxpool`` of kernel 1 and stride 2; see
``specs/afpn.yaml``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from ..shape import ShapeError
from .base import POST, PostOp
from .common import build_conv, build_norm

__all__ = ["BasicBlocks"]

MAX_BASIC_BLOCKS = 64
"""Most BasicBlocks in one chain (AFPN runs 4, ResNet-34's longest stage 6): a count the
weight budget would pass at a small width takes seconds to build and means a typo."""


@POST.register("basic_block")
@dataclass(frozen=True)
class BasicBlocks(PostOp):
    """``blocks`` ResNet BasicBlocks in a chain, at the map's width and size: block ``i`` is
    ``relu(bn2(conv2(relu(bn1(conv1(x))))) + x)`` with 3x3 convs (padding 1, ``bias``) and
    batch norms (``eps``, ``momentum``), the shortcut the identity (no projection: the width
    stays the input's). AFPN's ``BasicBlock`` has conv biases (the default); torchvision's
    has none (``bias: false``). Modules as a ``Sequential`` of the reference's blocks names
    them: ``<i>.conv1``, ``<i>.bn1``, ``<i>.conv2``, ``<i>.bn2``, so a checkpoint maps by one
    key prefix. ``{basic_block: 4}`` is ``blocks: 4``."""

    blocks: int = 1
    bias: bool = True
    eps: float = 1e-5
    momentum: float = 0.1

    shorthand = "blocks"
    has_parameters = True

    def label(self) -> str:
        return f"BasicBlock x{self.blocks}"

    def weight_estimate(self, shapes, out):
        width = shapes[0].channels
        conv = width * width * 9 + (width if self.bias else 0)
        return self.blocks * 2 * (conv + 4 * width + 1)

    def infer(self, x, channels):
        if not 1 <= self.blocks <= MAX_BASIC_BLOCKS:
            raise ShapeError(f"basic_block: blocks must be between 1 and {MAX_BASIC_BLOCKS}, got {self.blocks}")
        if channels is not None and channels != x.channels:
            raise ShapeError(f"basic_block keeps its input's width (the shortcut is the identity), but it gets {x.channels} channels in a node of {channels}; put a conv before it to reach the node's width")
        return x

    def emit(self, e, args, shapes, out):
        import torch.nn.functional as F

        width = shapes[0].channels
        x = args[0]
        for i in range(self.blocks):
            y = x
            for step in (1, 2):
                y = e.call_module(f"{i}.conv{step}", build_conv(width, width, 3, 1, 1, self.bias, "default"), y)
                y = e.call_module(f"{i}.bn{step}", build_norm("bn", width, eps=self.eps, momentum=self.momentum), y)
                if step == 1:
                    y = e.call_function(F.relu, y)
            x = e.call_function(F.relu, e.call_function(operator.add, y, x))
        return x
