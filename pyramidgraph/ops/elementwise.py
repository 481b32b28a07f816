"""Ops that fit on an edge and after a fusion alike, because they change nothing but values.

* ``identity`` (resample and post): passes the map through; a placeholder a parameter chooses.
* ``act`` (resample and post; post aliases ``relu``, ``silu``...): an element-wise activation.
  On an edge, in front of a ``conv_module``, it is mmcv's ConvModule with the activation first
  (``order=('act', 'conv', 'norm')``, FPG's transitions); having no weights, one activation of a
  map is computed once for every edge that applies it.
* ``maxout`` (post): the elementwise max of ``pieces`` channel groups, ``pieces`` times narrower
  (CSPNet's Exact Fusion Model compresses its concatenated pyramid maps this way).

Each is one class registered in both registries (``kinds``): the same op wherever it is used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ..shape import ShapeError
from .base import POST, RESAMPLE, Op, PostOp
from .common import ActName, emit_act

__all__ = ["Identity", "Activation", "Maxout"]


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


@POST.register("maxout")
@dataclass(frozen=True)
class Maxout(PostOp):
    """Maxout over channel groups (Goodfellow et al. 2013), CSPNet's channel compression in its
    Exact Fusion Model: the map's ``C`` channels are cut into ``pieces`` contiguous groups of
    ``C / pieces`` and the output is their elementwise max (channel ``j`` is the largest of
    channels ``j``, ``j + C / pieces``, ``j + 2 C / pieces``..., as darknet's ``maxpool_depth``),
    so the map is ``pieces`` times narrower and what follows it costs that much less. Without
    ``pieces``, as many groups as the node's width goes into the map's (after a ``concat`` of
    ``k`` maps of the node's width: ``k``, each position's strongest response among them).
    No weights."""

    pieces: int | None = None

    shorthand = "pieces"

    def label(self) -> str:
        return f"maxout x{self.pieces}" if self.pieces else "maxout"

    def at(self, inputs, site):
        if self.pieces is not None or site.channels is None or site.channels < 1:
            return self
        if inputs[0].channels % site.channels:
            raise ShapeError(f"maxout to the node's {site.channels} channels needs a width divisible by {site.channels}, got {inputs[0].channels} channels; set pieces")
        return replace(self, pieces=inputs[0].channels // site.channels)

    def infer(self, x, channels):
        if self.pieces is None:
            raise ShapeError("maxout needs pieces, or a node width to compress to (set the node's channels)")
        if self.pieces < 1:
            raise ShapeError(f"maxout needs pieces >= 1, got {self.pieces}")
        if x.channels % self.pieces:
            raise ShapeError(f"maxout with {self.pieces} pieces needs a width divisible by {self.pieces}, got {x.channels} channels")
        return x.with_(channels=x.channels // self.pieces)

    def emit(self, e, args, shapes, out):
        import torch

        if self.pieces == 1:
            return args[0]
        groups = e.call_function(torch.unflatten, args[0], 1, (self.pieces, out.channels))
        return e.call_function(torch.amax, groups, 1)
