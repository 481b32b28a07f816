"""torchvision: a body plus a compiled neck, used where ``BackboneWithFPN`` is.

torchvision's detection models (``FasterRCNN``, ``RetinaNet``, ``MaskRCNN``...) take any
``backbone`` module that maps images to an ``OrderedDict`` of feature maps and has an
``out_channels`` attribute holding the (single) width of those maps. ``BackboneWithFPN`` is
an ``IntermediateLayerGetter`` body followed by ``FeaturePyramidNetwork``;
:func:`with_backbone` makes the same pair from any body and a compiled neck::

    body = IntermediateLayerGetter(resnet50(), {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"})
    neck = pyramidgraph.compile("fpn", [256, 512, 1024, 2048], output_names=["0", "1", "2", "3", "pool"])
    model = FasterRCNN(with_backbone(body, neck), num_classes=91)

Compiling with ``output_names`` equal to torchvision's (``"0"``.. ``"pool"``) keeps the names
its ``MultiScaleRoIAlign(featmap_names=[...])`` defaults expect.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch
from torch import nn

from ..module import PyramidNeck

__all__ = ["BackboneWithNeck", "with_backbone"]


class BackboneWithNeck(nn.Module):
    """``body`` then ``fpn`` (the neck), returning an ``OrderedDict`` keyed by the neck's
    output names, with ``out_channels`` as torchvision's ``BackboneWithFPN`` has it.

    The body's features reach the neck by name when the body returns every input name of the
    neck (compile with ``input_names=[...]`` to match an ``IntermediateLayerGetter``'s
    ``return_layers``); otherwise in order, finest first, as torchvision's
    ``FeaturePyramidNetwork`` reads them. The attribute names ``body`` and ``fpn`` are
    ``BackboneWithFPN``'s, so state_dict keys have the same prefixes.
    """

    def __init__(self, body: nn.Module, neck: PyramidNeck):
        super().__init__()
        self.body = body
        self.fpn = neck
        self.output_names = list(neck.output_names)
        self.out_channels: int | list[int] = neck.out_channels
        """One int when every output has the same width (what torchvision's heads need)."""

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(images)
        if isinstance(features, Mapping) and not all(name in features for name in self.fpn.input_names):
            features = list(features.values())
        outputs: Any = self.fpn(features)
        if isinstance(outputs, Mapping):
            return OrderedDict(outputs)
        return OrderedDict(zip(self.output_names, outputs))


def with_backbone(body: nn.Module, neck: PyramidNeck) -> BackboneWithNeck:
    """A torchvision detection backbone: ``body`` (images -> dict or list of features, finest
    first) followed by ``neck``; see :class:`BackboneWithNeck`."""
    if not isinstance(neck, PyramidNeck):
        raise TypeError(f"with_backbone: neck must be a PyramidNeck from pyramidgraph.compile, got {type(neck).__name__}")
    return BackboneWithNeck(body, neck)
