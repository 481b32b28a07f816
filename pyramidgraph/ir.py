"""The intermediate representation between a spec and a ``torch.fx`` graph.

A flat list of ops in execution order, each reading named values and producing one. Every op
knows its input and output :class:`FeatureShape`, the module path its parameters live under
(two ops of a shared block use the same path) and, in ``meta``, which spec node and role it
comes from. Passes rewrite this list; codegen turns it into a ``torch.fx.Graph`` one op at a
time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ops import Op
from .shape import FeatureShape

__all__ = ["IROp", "IRGraph"]


@dataclass
class IROp:
    name: str
    """Unique name of the op's result value (``P4_td.from_P5``, ``P4_td.pre``, ``P4_td``)."""
    module: str
    """Module path for the op's parameters (``P4_td.from_P5``); shared blocks reuse it."""
    op: Op
    args: list[str]
    """Value names read: tensor inputs, then (for size-based upsampling) the size reference."""
    shapes: list[FeatureShape]
    shape: FeatureShape | tuple[FeatureShape, ...]
    """The result's shape; a tuple for an op with several outputs (``OutputOf`` ops pick them)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """``node``: the spec node id; ``role``: ``edge``, ``fuse``, ``post`` or ``apply``; ``where``: its
    spec place; ``source``: its ``file:line:col``."""


@dataclass
class IRGraph:
    name: str
    inputs: list[tuple[str, FeatureShape]]
    ops: list[IROp]
    outputs: list[tuple[str, str]]
    """(output name, value name) in the order the neck returns them."""
    return_type: str = "tuple"
    input_names: list[str] | None = None
    """Names the caller uses for the inputs (dict keys), when they differ from the spec's."""
    node_values: dict[str, str] = field(default_factory=dict)
    """Spec node id (and ``id.pre``) -> the value holding it."""
    meta: dict[str, Any] = field(default_factory=dict)

    def external_inputs(self) -> list[tuple[str, FeatureShape]]:
        """Inputs under the names callers use."""
        names = self.input_names or [name for name, _ in self.inputs]
        return [(name, shape) for name, (_, shape) in zip(names, self.inputs)]

    def values(self) -> dict[str, FeatureShape]:
        """Shape of every value, inputs included (an op with several outputs is not one value:
        its outputs ``X.0``, ``X.1``... are)."""
        shapes = dict(self.inputs)
        shapes.update((op.name, op.shape) for op in self.ops if isinstance(op.shape, FeatureShape))
        return shapes

    def users(self) -> dict[str, list[IROp]]:
        """Ops reading each value."""
        readers: dict[str, list[IROp]] = {}
        for op in self.ops:
            for arg in op.args:
                readers.setdefault(arg, []).append(op)
        return readers

    def check(self) -> None:
        """Our own invariant (not a user error): every value is defined once, before use."""
        defined = {name for name, _ in self.inputs}
        for op in self.ops:
            missing = [a for a in op.args if a not in defined]
            assert not missing, f"IR op {op.name} reads undefined {missing}"
            assert op.name not in defined, f"IR value {op.name} defined twice"
            defined.add(op.name)
        for _, value in self.outputs:
            assert value in defined, f"IR output {value} undefined"
