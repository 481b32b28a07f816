"""Ops that fit on an edge and after a fusion alike, because they change nothing but values.

* ``identity`` (resample and post): passes the map through; a placeholder a parameter chooses.
* ``act`` (resample and post; post aliases ``relu``, ``silu``...): an element-wise activation.
  On an edge, in front of a ``conv_module``, it is mmcv's ConvModule with the activation first
  (``order=('act', 'conv', 'norm')``, FPG's transitions); having no weights, one activation of a
  map is computed once for every edge that applies it.

Each is one class registered in both registries (``kinds``): the same op wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import POST, RESAMPLE, Op
from .common import ActName, emit_act

__all__ = ["Identity", "Activation"]


@RESAMPLE.register("identity")
@POST.register("identity")
@dataclass(frozen=True)
class Identity(Op):
    """Pass the map through unchanged (same level, same width); after a fusion, a placeholder
    that a parameter chooses."""

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")

    def shape(self, inputs, site):
        return inputs[0]

    def emit(self, e, args, shapes, out):
        return args[0]


_ACT_ALIASES = {name: {"fn": name} for name in ActName.__args__}


@RESAMPLE.register("act")
@POST.register("act", **_ACT_ALIASES)
@dataclass(frozen=True)
class Activation(Op):
    """An element-wise activation, ``{act: silu}`` (after a fusion also by name: ``relu``,
    ``silu``...); ``slope`` is leaky_relu's. On an edge (same level, same width) before a
    ``conv_module`` it is mmcv's ConvModule with the activation first."""

    fn: ActName = "relu"
    slope: float = 0.01

    kinds: ClassVar[tuple[str, ...]] = ("resample", "post")
    shorthand = "fn"

    def label(self) -> str:
        return self.fn

    def shape(self, inputs, site):
        return inputs[0]

    def emit(self, e, args, shapes, out):
        return emit_act(e, self.fn, args[0], self.slope)
