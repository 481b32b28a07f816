"""detectron2: a compiled neck with the ``Backbone`` interface its detectors read.

A detectron2 backbone returns a dict of feature maps named ``p<level>`` (``p2`` has stride 4)
and describes them with ``output_shape()`` (name -> ``ShapeSpec(channels, stride)``),
``size_divisibility`` (images are padded to a multiple of it, so every level halves exactly)
and ``padding_constraints``. :class:`Detectron2Neck` gives a compiled neck those::

    neck = Detectron2Neck(pyramidgraph.compile("fpn", [256, 512, 1024, 2048]),
                          in_features=["res2", "res3", "res4", "res5"], bottom_up=resnet)
    model = GeneralizedRCNN(backbone=neck, ...)   # LazyConfig style: backbone=L(Detectron2Neck)(...)

It is a plain ``nn.Module``, not a subclass of detectron2's ``Backbone`` (which would need
detectron2 installed); ``GeneralizedRCNN`` and the heads only read the attributes above.
``build_backbone`` from a yacs config asserts ``isinstance(..., Backbone)``: there, subclass
both (``class Neck(Detectron2Neck, Backbone)``) in your registration code.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import torch
from torch import nn

from ..module import PyramidNeck, ShapeSpec

__all__ = ["Detectron2Neck"]


class Detectron2Neck(nn.Module):
    """``neck`` with detectron2's backbone interface.

    ``forward`` takes the bottom-up feature dict (or, with ``bottom_up``, the images, as
    detectron2's ``FPN`` does) and returns an ``OrderedDict`` keyed ``p<log2(stride)>``, in
    the neck's output order. ``in_features`` names the dict entries the neck reads, finest first
    (default: the neck's input names). ``size_divisibility`` defaults to the coarsest output
    stride, as in detectron2's ``FPN``; ``square_pad`` is its ``square_size`` constraint.
    """

    def __init__(
        self,
        neck: PyramidNeck,
        size_divisibility: int | None = None,
        *,
        in_features: Sequence[str] | None = None,
        bottom_up: nn.Module | None = None,
        square_pad: int = 0,
    ):
        super().__init__()
        if not isinstance(neck, PyramidNeck):
            raise TypeError(f"Detectron2Neck: neck must be a PyramidNeck from pyramidgraph.compile, got {type(neck).__name__}")
        self.neck = neck
        self.bottom_up = bottom_up
        self.in_features = list(in_features if in_features is not None else neck.input_names)
        if len(self.in_features) != len(neck.input_names):
            raise ValueError(f"Detectron2Neck: {len(self.in_features)} in_features {self.in_features} for a neck with {len(neck.input_names)} inputs ({', '.join(neck.input_names)})")
        self._out_features = [f"p{stride.bit_length() - 1}" for stride in neck.strides]
        if len(set(self._out_features)) != len(self._out_features):
            raise ValueError(f"Detectron2Neck: outputs {neck.output_names} have strides {neck.strides}; detectron2 names outputs by stride, so each needs its own")
        self._out_feature_channels = {name: shape.channels for name, shape in zip(self._out_features, neck.output_shapes.values())}
        self._out_feature_strides = {name: shape.stride for name, shape in zip(self._out_features, neck.output_shapes.values())}
        self._size_divisibility = max(neck.strides) if size_divisibility is None else size_divisibility
        self._square_pad = square_pad

    def forward(self, features: Mapping[str, torch.Tensor] | torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        if self.bottom_up is not None:
            features = self.bottom_up(features)
        if not isinstance(features, Mapping):
            raise TypeError(f"Detectron2Neck: expected a dict of features keyed {self.in_features}, got {type(features).__name__}")
        missing = [name for name in self.in_features if name not in features]
        if missing:
            raise KeyError(f"Detectron2Neck: features {missing} missing; got {list(features)}, reading {self.in_features}")
        outputs = self.neck([features[name] for name in self.in_features])
        if isinstance(outputs, Mapping):
            outputs = list(outputs.values())
        return OrderedDict(zip(self._out_features, outputs))

    def output_shape(self) -> dict[str, ShapeSpec]:
        """Width and stride of every output, by detectron2 name (``p3``...)."""
        return {name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]) for name in self._out_features}

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict[str, int]:
        """What ``ImageList.from_tensors`` pads images to: a multiple of ``size_divisibility``
        and, when ``square_pad`` is set, a square of that side."""
        return {"size_divisibility": self._size_divisibility, "square_size": self._square_pad}
