"""Stage ``primitives``: the IR's ops, expanded into a ``torch.fx.Graph`` of primitive calls.

Every op's ``emit`` adds primitive calls (conv, norm, activation, interpolate, pool, add,
mul, cat, chunk, matmul, softmax, ...) through an :class:`Emitter` and *declares* the modules
and parameters those calls need (:mod:`pyramidgraph.weights`); nothing is built here, so the
graph exists, with every node's provenance, before any weight does. A composite op (C2f, a
separable conv, a non-local block, a weighted sum) is only its expansion: its calls live
under the op's module path, so the ``state_dict`` keys are the ones the op always had.

Each node carries, in ``node.meta`` (torch.fx's place for per-node facts):

* ``ir_op``: the IR value the node belongs to (``P4_td.pre``), ``spec_node``: the spec node
  (``P4_td``), ``role``: ``input``, ``edge``, ``fuse``, ``post`` or ``apply``, ``op``: the op's label,
  ``module_path``: where its weights live, ``source``: ``file:line:col`` of the spec node;
  a read of a map's size has ``size_of``: the IR value whose size it reads (it is named
  after that value: ``p4_size``);
* ``shape``: the :class:`FeatureShape` of the value, on the node that holds an IR value (an
  input or an op's result). The calls inside a composite op carry no shape of their own:
  :func:`propagate_shapes` gives every node torch's ``tensor_meta`` when a pass needs it
  (``info`` runs the graph on meta tensors the same way to count MACs); the compiler does not,
  since it costs as much as building the weights.

Nodes are named after the value they hold: an op's result after its IR value (``p4_td``), the
calls inside it after the value and the call (``p4_td_post0_cv1_conv``, ``p4_td_pre_add``)::

    def forward(self, features):
        inputs = pyramidgraph_contract_check_inputs(features)
        c3 = inputs[0]
        ...
        p4_td_from_p5 = torch.nn.functional.interpolate(p5_td, size = c4_size, mode = 'nearest')
"""

from __future__ import annotations

import functools
import operator
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch.fx

from .contract import InputContract
from .ir import IRGraph, IROp
from .ops.apply import OutputOf
from .weights import Declaration, ExternalDecl, ModuleDecl, ParameterDecl

__all__ = ["Emitter", "PrimitiveGraph", "build_primitive_graph", "emit_graph", "propagate_shapes"]


@functools.lru_cache(maxsize=65536)
def _var(name: str) -> str:
    """A Python identifier for a value name: ``cell.0.P4_td.pre`` -> ``cell_0_p4_td_pre``."""
    ident = re.sub(r"[^0-9a-zA-Z_]+", "_", name).strip("_").lower()
    return ident if ident and not ident[0].isdigit() else f"v_{ident}"


def _call_name(fn: Any) -> str:
    """What a function call computes, for node names: ``interpolate``, ``add``, ``cat``."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return name.strip("_") or "call"


@dataclass
class PrimitiveGraph:
    """The neck as primitive calls: the fx graph, and the declared weights it reads by path."""

    graph: torch.fx.Graph
    declarations: dict[str, Declaration]
    ir: IRGraph

    def owners(self) -> dict[str, str]:
        """Module path -> the IR op that declared it (the op of a shared block's first use)."""
        owner: dict[str, str] = {}
        for node in self.graph.nodes:
            if node.op in ("call_module", "get_attr"):
                owner.setdefault(node.target, node.meta["ir_op"])
        return owner


class Emitter:
    """What an op's ``emit`` uses to add calls to the graph and declare the weights they read."""

    def __init__(self, graph: torch.fx.Graph, declarations: dict[str, Declaration]):
        self.graph = graph
        self.declarations = declarations
        self.op: IROp | None = None
        self._meta: dict[str, Any] = {}
        self._scope = ""  # the last module called within the op, minus its own name (``cv1`` for ``cv1.bn``)
        self._scoped: set[torch.fx.Node] = set()  # nodes computed in that scope: a call reading one is named in it
        self._sizes: dict[torch.fx.Node, torch.fx.Node] = {}

    def begin(self, op: IROp, meta: dict[str, Any]) -> None:
        """Start emitting ``op``; every node added until the next ``begin`` carries ``meta``."""
        self.op = op
        self._meta = meta
        self._scope = ""
        self._scoped = set()

    def _node(self, kind: str, target: Any, args: tuple, kwargs: dict, what: str) -> torch.fx.Node:
        base = _var(self.op.name) if self.op else "v"
        node = self.graph.create_node(kind, target, args, kwargs, name=f"{base}_{what}" if what else base)
        node.meta.update(self._meta)
        return node

    def call_module(self, local: str, decl: ModuleDecl, *args: torch.fx.Node) -> torch.fx.Node:
        """Call the module ``decl`` declares, at ``<op module path>.<local>`` (the path itself for "").

        In a shared block the later users of a path call the first user's declaration."""
        if isinstance(decl, ExternalDecl):  # the caller's module, held under its own name
            target, local = f"external.{decl.name}", decl.name
        else:
            target = f"{self.op.module}.{local}" if local else self.op.module
        self.declarations.setdefault(target, decl)
        scope = local.rpartition(".")[0]
        self._scope = _var(scope) if scope else ""
        node = self._node("call_module", target, tuple(args), {}, _var(local) if local else _var(decl.cls.__name__))
        self._scoped = {node}
        return node

    def parameter(self, local: str, decl: ParameterDecl) -> torch.fx.Node:
        """Read a parameter the op owns, declared at ``<op module path>.<local>``, so that its
        arithmetic is graph ops (a shared block's later users read the first user's)."""
        target = f"{self.op.module}.{local}"
        self.declarations.setdefault(target, decl)
        return self._node("get_attr", target, (), {}, _var(local))

    def keep(self, local: str, decl: ModuleDecl) -> None:
        """Declare a module at ``<op module path>.<local>`` that no call reads (a reference builds
        it and never uses it; its weights are in the checkpoint): a ``get_attr`` node keeps it
        in the GraphModule, and nothing reads the node."""
        target = f"{self.op.module}.{local}"
        self.declarations.setdefault(target, decl)
        self._node("get_attr", target, (), {}, _var(local))

    def call_function(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.fx.Node:
        what = _call_name(fn)
        scoped = bool(self._scope) and bool(args) and isinstance(args[0], torch.fx.Node) and args[0] in self._scoped  # silu(cv1.bn(...)) is cv1's silu; cat([...]) is no one's
        node = self._node("call_function", fn, tuple(args), kwargs, f"{self._scope}_{what}" if scoped else what)
        if scoped:
            self._scoped.add(node)
        return _wrapped_if_marked(node)

    def size_of(self, value: torch.fx.Node) -> torch.fx.Node:
        """``value.shape[-2:]``, computed once per value (named ``<value>_shape``, ``<value>_size``)."""
        if value not in self._sizes:
            shape = self.graph.create_node("call_function", getattr, (value, "shape"), {}, name=f"{value.name}_shape")
            size = self.graph.create_node("call_function", operator.getitem, (shape, slice(-2, None)), {}, name=f"{value.name}_size")
            for node in (shape, size):
                node.meta.update(self._meta)
                node.meta["size_of"] = value.meta.get("ir_op")
            self._sizes[value] = size
        return self._sizes[value]


def _wrapped_if_marked(node: torch.fx.Node) -> torch.fx.Node:
    """Flag a call of a function marked :func:`~pyramidgraph.ops.base.one_call_when_traced` the
    way ``torch.fx.wrap`` flags it, so that the generated code wraps it for re-tracing."""
    if getattr(node.target, "fx_wrapped", False):
        node.meta["is_wrapped"] = True
    return node


def _op_meta(op: IROp) -> dict[str, Any]:
    return {
        "ir_op": op.name,
        "spec_node": op.meta.get("node"),
        "role": op.meta.get("role"),
        "op": op.op.label(),
        "module_path": op.module,
        "source": op.meta.get("source"),
    }


def build_primitive_graph(ir: IRGraph, contract: InputContract | None = None) -> PrimitiveGraph:
    """Expand every op of ``ir`` into primitive calls; declare, do not build, their weights.

    The forward starts by checking its inputs against ``contract``
    (:meth:`InputContract.check_inputs`); without one, against the IR's own (count, widths
    and batch; sizes are not re-inferred, as there is no spec to infer them from)."""
    graph = torch.fx.Graph()
    declarations: dict[str, Declaration] = {}
    emitter = Emitter(graph, declarations)
    holds: set[torch.fx.Node] = set()  # the nodes holding an IR value (named after it)
    features = graph.placeholder("features")
    if contract is None:
        contract = InputContract.from_ir(ir)
    unpacked = _wrapped_if_marked(graph.create_node("call_function", contract.check_inputs, (features,), {}, name="inputs"))
    unpacked.meta["role"] = "input"
    env: dict[str, Any] = {}
    for index, (name, shape) in enumerate(ir.inputs):
        node = graph.create_node("call_function", operator.getitem, (unpacked, index), {}, name=_var(name))
        node.meta.update({"ir_op": name, "spec_node": name, "role": "input", "shape": shape})
        holds.add(node)
        env[name] = node
    for op in ir.ops:
        emitter.begin(op, _op_meta(op))
        result = op.op.emit(emitter, [env[a] for a in op.args], op.shapes, op.shape)
        if isinstance(result, (list, tuple)):  # an op with several outputs: each is held by the value reading it (``X.0``)
            env[op.name] = list(result)
            continue
        picked = isinstance(op.op, OutputOf) and result not in holds
        if picked or (result.meta.get("ir_op") == op.name and result not in holds):  # a node of this op (not an input passed through)
            named = _named(graph, result, _var(op.name))
            named.meta.update(shape=op.shape, ir_op=op.name)
            holds.add(named)
            if picked:
                env[op.args[0]][op.op.index] = named
            result = named
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
    return PrimitiveGraph(graph, declarations, ir)


def _named(graph: torch.fx.Graph, node: torch.fx.Node, name: str) -> torch.fx.Node:
    """``node`` under the name ``name``: the node holding an op's result is known only once the
    op's ``emit`` returns, after fx named it when it was created. fx renames a node with
    ``Node._rename`` (private: it names the node as ``create_node`` would, ``name_1`` when
    taken); where this torch has none, the node is made again under its value's name, in its
    place, and the first one removed, which costs a second ``create_node`` per op (about half
    of this stage on a 2,000-node spec)."""
    if node.name == name:
        return node
    rename = getattr(node, "_rename", None)
    if rename is not None:
        rename(name)
        return node
    with graph.inserting_after(node):
        named = graph.create_node(node.op, node.target, node.args, node.kwargs, name=name, type_expr=node.type)
    named.meta = dict(node.meta)
    node.replace_all_uses_with(named)
    graph.erase_node(node)
    return named


def emit_graph(ir: IRGraph, contract: InputContract | None = None) -> tuple[torch.fx.Graph, dict[str, Any]]:
    """The fx graph and its built modules and parameters (by qualified name) for ``ir``: the
    ``primitives`` and ``materialise`` stages in one call."""
    from .weights import materialise

    primitive = build_primitive_graph(ir, contract)
    return primitive.graph, materialise(primitive.declarations)


def propagate_shapes(module: torch.fx.GraphModule, image: int | tuple[int, int] | None = None) -> torch.fx.GraphModule:
    """Give every node of a compiled neck torch's ``node.meta["tensor_meta"]`` (shape, dtype,
    strides) for inputs of an ``image`` (default: the spec example's), by running it on meta
    tensors (``torch.fx.passes.shape_prop.ShapeProp``): the shapes of the calls inside composite
    ops, which the compiler does not compute (it costs about what building the weights does).
    Returns the module, annotated in place; its weights are not touched."""
    import copy

    from torch.fx.passes.shape_prop import ShapeProp

    shadow = copy.deepcopy(module).to("meta").eval()  # the same graph nodes' names, on the meta device; eval: shapes, not batch statistics
    inputs = [x.to("meta") for x in module.example_inputs(batch=1, image=image)] if hasattr(module, "example_inputs") else None
    ShapeProp(shadow).propagate(inputs)
    by_name = {node.name: node for node in shadow.graph.nodes}
    for node in module.graph.nodes:
        if "tensor_meta" in by_name[node.name].meta:
            node.meta["tensor_meta"] = by_name[node.name].meta["tensor_meta"]
    return module
