"""Apply ops: what a node with ``apply:`` does to its inputs, read as they are.

* ``split`` (apply): one input cut along its channels into ``parts`` equal pieces, or pieces of
  the widths ``sizes`` lists: several outputs, read as ``node.0``, ``node.1``... (YOLO's C2f
  halves, a CSP's two paths, a map's attention and value parts).
* ``concat_levels`` (apply): every input brought to the first input's size by nearest
  interpolation and concatenated, for necks that gather all levels into one map (HRFPN):
  shown here as the simplest op that reads several levels at their own sizes.

Attention across levels (the Feature Pyramid Transformer's grounding and rendering
transformers) are apply ops too: see :mod:`.transformer`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

from ..shape import ShapeError
from .base import APPLY, ApplyOp

__all__ = ["Split", "ConcatLevels", "OutputOf", "CallModule"]


@APPLY.register("split", chunk={})
@dataclass(frozen=True)
class Split(ApplyOp):
    """Cut one map along its channels: into ``parts`` equal pieces, or into pieces of the widths
    ``sizes`` lists (which must add up to the input's width). Outputs: ``node.0``, ``node.1``..."""

    parts: int = 2
    sizes: tuple[int, ...] | None = None

    shorthand = "parts"
    max_inputs = 1

    def label(self) -> str:
        return f"split {'/'.join(map(str, self.sizes))}" if self.sizes else f"split /{self.parts}"

    def widths(self, channels: int) -> list[int]:
        if self.sizes is not None:
            if len(self.sizes) < 2 or any(s < 1 for s in self.sizes):
                raise ShapeError(f"split: sizes must be positive widths, got {list(self.sizes)}")
            if sum(self.sizes) != channels:
                raise ShapeError(f"split: sizes {list(self.sizes)} add up to {sum(self.sizes)} channels, but the input has {channels}")
            return list(self.sizes)
        if channels % self.parts:
            raise ShapeError(f"split: {channels} channels do not divide into {self.parts} equal parts; give sizes instead")
        return [channels // self.parts] * self.parts

    def infer(self, xs, channels):
        if self.sizes is None and self.parts < 2:
            raise ShapeError(f"split: parts must be at least 2, got {self.parts}")
        return [xs[0].with_(channels=width) for width in self.widths(xs[0].channels)]

    def emit(self, e, args, shapes, out):
        import torch

        pieces = e.call_function(torch.split, args[0], self.widths(shapes[0].channels), 1)
        return [e.call_function(operator.getitem, pieces, index) for index in range(len(out))]


@APPLY.register("concat_levels")
@dataclass(frozen=True)
class ConcatLevels(ApplyOp):
    """Every input resized to the first input's map (nearest interpolation to its size) and
    concatenated along channels; the output is at the first input's level."""

    min_inputs = 2

    def label(self) -> str:
        return "concat levels"

    def infer(self, xs, channels):
        first = xs[0]
        return first.with_(channels=sum(x.channels for x in xs))

    def emit(self, e, args, shapes, out):
        import torch
        import torch.nn.functional as F

        size = e.size_of(args[0])
        resized = [args[0]] + [e.call_function(F.interpolate, x, size=size, mode="nearest") for x in args[1:]]
        return e.call_function(torch.cat, resized, 1)


@dataclass(frozen=True)
class OutputOf(ApplyOp):
    """Internal (not a spec op): output ``index`` of an op with several outputs, the value a
    reference ``node.<index>`` reads. It adds no graph node: the op's ``emit`` returned its
    outputs as a list, and this picks one."""

    index: int = 0

    def label(self) -> str:
        return f"output {self.index}"

    def infer(self, xs, channels):  # pragma: no cover - lowering gives the shape directly
        raise NotImplementedError

    def emit(self, e, args, shapes, out):
        return args[0][self.index]


@APPLY.register("call")
@dataclass(frozen=True)
class CallModule(ApplyOp):
    """Call a module the caller provides (``compile(spec, modules={name: module})``): a backbone
    stage, for feedback into the backbone (DetectoRS' RFP re-runs the backbone on the image with
    the neck's features added), or any block of one's own. The spec declares what it gives:
    ``channels`` (default: the node's, else the input's) at ``stride`` times the input's stride
    (``2``: one level coarser, ``1``: the same level), each side ``ceil(side / stride)`` as a
    padded stride-2 conv gives it. The rest of the spec is checked against that declaration
    (the module is not run to find out: running a backbone stage to check a spec costs more
    than compiling it); a module that gives something else fails where its output is used.
    Its weights stay the caller's: the neck holds it as ``external.<module>``."""

    module: str = ""
    channels: int | None = None
    stride: int = 1

    max_inputs = 1

    def label(self) -> str:
        return f"call {self.module}"

    def level_of(self, levels):
        return levels[0] + self.stride.bit_length() - 1 if levels and self.stride >= 1 else None

    def infer(self, xs, channels):
        if not self.module:
            raise ShapeError("call: name the module to call (module: NAME), given to compile as modules={NAME: module}")
        import re

        from ..reserved import MODULE_ATTRIBUTES

        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.module) or self.module in MODULE_ATTRIBUTES or self.module.startswith("__"):
            raise ShapeError(f"call: module {self.module!r} must be a plain name (letters, digits and _) that is not an attribute of nn.Module, such as 'stage2'")
        if self.channels is not None and self.channels < 1:
            raise ShapeError(f"call: channels must be at least 1, got {self.channels}")
        step = self.stride.bit_length() - 1
        if self.stride < 1 or 2**step != self.stride:
            raise ShapeError(f"call: stride {self.stride} is not a power of two")
        x = xs[0]
        size = None if x.size is None else (-(-x.size[0] // self.stride), -(-x.size[1] // self.stride))
        return x.with_(channels=self.channels or channels or x.channels, level=x.level + step, size=size)

    def emit(self, e, args, shapes, out):
        from ..weights import ExternalDecl

        return e.call_module("", ExternalDecl(self.module, out.channels, self.stride), args[0])
