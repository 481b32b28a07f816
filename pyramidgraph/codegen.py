"""Stage 5: build a ``torch.fx.Graph`` directly from the IR (nothing is traced).

Each IR op's ``emit`` adds its calls through an :class:`Emitter`, which registers the op's
modules under the op's module path (reusing them for shared blocks) and names graph values
after spec nodes, so the generated ``code`` reads like a hand-written neck::

    def forward(self, features):
        inputs = pyramidgraph_contract_check_inputs(features)
        c3 = inputs[0]
        ...
        p4_td_from_p5 = torch.nn.functional.interpolate(p5_td, size = getattr(c4, 'shape')[-2:], mode = 'nearest')
"""

from __future__ import annotations

import operator
import re
from collections import OrderedDict
from typing import Any, Callable

import torch.fx
from torch import nn

from .contract import InputContract
from .ir import IRGraph, IROp

__all__ = ["Emitter", "emit_graph"]


def _var(name: str) -> str:
    """A Python identifier for a value name: ``cell.0.P4_td.pre`` -> ``cell_0_p4_td_pre``."""
    ident = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()
    return ident if ident and not ident[0].isdigit() else f"v_{ident}"


class Emitter:
    """What an op's ``emit`` uses to add modules and calls to the graph."""

    def __init__(self, graph: torch.fx.Graph, modules: dict[str, nn.Module]):
        self.graph = graph
        self.modules = modules
        self.op: IROp | None = None
        self._sizes: dict[torch.fx.Node, torch.fx.Node] = {}

    def _name(self) -> str:
        return _var(self.op.name) if self.op else "v"

    def call_module(self, local: str, module: nn.Module, *args: torch.fx.Node) -> torch.fx.Node:
        """Call ``module``, registered as ``<op module path>.<local>`` (or the path itself for "").

        In a shared block the second user of a path gets the first user's module.
        """
        target = f"{self.op.module}.{local}" if local else self.op.module
        self.modules.setdefault(target, module)
        return self.graph.create_node("call_module", target, tuple(args), {}, name=self._name())

    def parameter(self, local: str, value: nn.Parameter) -> torch.fx.Node:
        """Read a parameter the op owns, registered as ``<op module path>.<local>``, so that its
        arithmetic is graph ops (a shared block's second user reads the first user's)."""
        target = f"{self.op.module}.{local}"
        self.modules.setdefault(target, value)  # type: ignore[arg-type]  # GraphModule copies parameters from its root dict as it does modules
        return self.graph.create_node("get_attr", target, (), {}, name=f"{self._name()}_{local}")

    def call_function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.fx.Node:
        return _wrapped_if_marked(self.graph.create_node("call_function", fn, tuple(args), kwargs, name=self._name()))

    def size_of(self, value: torch.fx.Node) -> torch.fx.Node:
        """``value.shape[-2:]``, computed once per value."""
        if value not in self._sizes:
            shape = self.graph.create_node("call_function", getattr, (value, "shape"), {}, name=f"{value.name}_shape")
            self._sizes[value] = self.graph.create_node("call_function", operator.getitem, (shape, slice(-2, None)), {}, name=f"{value.name}_size")
        return self._sizes[value]


def _wrapped_if_marked(node: torch.fx.Node) -> torch.fx.Node:
    """Flag a call of a function marked :func:`~pyramidgraph.ops.base.one_call_when_traced` the
    way ``torch.fx.wrap`` flags it, so that the generated code wraps it for re-tracing."""
    if getattr(node.target, "fx_wrapped", False):
        node.meta["is_wrapped"] = True
    return node


def emit_graph(ir: IRGraph, contract: InputContract | None = None) -> tuple[torch.fx.Graph, dict[str, nn.Module]]:
    """The fx graph and the modules (by qualified name) that implement ``ir``.

    The forward starts by checking its inputs against ``contract``
    (:meth:`InputContract.check_inputs`); without one, against the IR's own (count, widths
    and batch; sizes are not re-inferred, as there is no spec to infer them from)."""
    graph = torch.fx.Graph()
    modules: dict[str, nn.Module] = {}
    emitter = Emitter(graph, modules)
    features = graph.placeholder("features")
    if contract is None:
        contract = InputContract.from_ir(ir)
    unpacked = _wrapped_if_marked(graph.create_node("call_function", contract.check_inputs, (features,), {}, name="inputs"))
    env: dict[str, torch.fx.Node] = {}
    for index, (name, _shape) in enumerate(ir.inputs):
        env[name] = graph.create_node("call_function", operator.getitem, (unpacked, index), {}, name=_var(name))
    for op in ir.ops:
        emitter.op = op
        result = op.op.emit(emitter, [env[a] for a in op.args], op.shapes, op.shape)
        if result.name != _var(op.name) and result.op != "placeholder" and result not in env.values():
            result._rename(_var(op.name))
        env[op.name] = result
    values = [env[value] for _, value in ir.outputs]
    if ir.return_type == "dict":
        out: Any = graph.create_node("call_function", OrderedDict, ([(name, v) for (name, _), v in zip(ir.outputs, values)],), {}, name="outputs")
    elif ir.return_type == "list":
        out = list(values)
    else:
        out = tuple(values)
    graph.output(out)
    graph.lint()
    return graph, modules
