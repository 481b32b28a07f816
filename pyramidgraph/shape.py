"""The level record that flows through the pipeline, and the integer size arithmetic.

A feature map is described by its width (``channels``), its pyramid ``level`` (stride
``2**level``) and, when an input size is known, its spatial ``size``. Sizes are computed with
the same integer formulas PyTorch uses, so a mismatch is found before any tensor exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FeatureShape", "ShapeError", "conv_out", "same_out", "halving_chain"]


class ShapeError(ValueError):
    """A shape rule was broken; the message names both sides and a fix."""


@dataclass(frozen=True)
class FeatureShape:
    """Width, pyramid level and (optionally) spatial size ``(height, width)`` of a feature map."""

    channels: int
    level: int
    size: tuple[int, int] | None = None

    @property
    def stride(self) -> int:
        return 2**self.level

    def with_(self, **changes) -> FeatureShape:
        fields = {"channels": self.channels, "level": self.level, "size": self.size}
        fields.update(changes)
        return FeatureShape(**fields)

    def describe(self) -> str:
        size = f", {self.size[0]}x{self.size[1]}" if self.size else ""
        return f"{self.channels} channels at level {self.level}{size}"


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window (PyTorch's floor formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def same_out(size: int, stride: int) -> int:
    """Output length with TensorFlow "same" padding: ``ceil(size / stride)``."""
    return -(-size // stride)


def halving_chain(first: int, kind: str, steps: tuple[int, ...] | list[int]) -> list[int]:
    """The sides of maps ``steps`` levels below one of side ``first``: ``ceil(first / 2**step)``
    (what padded stride-2 convs give) for ``kind`` ``"ceil"``, else ``floor``. The size checks
    reason about these chains (:mod:`pyramidgraph.contract`, :func:`pyramidgraph.lower.sizes_never_line_up`)."""
    return [-(-first >> step) if kind == "ceil" else first >> step for step in steps]
