"""Stage ``primitives``: the IR expanded into an fx graph of primitive calls, with provenance.

Every node says in ``node.meta`` which IR value, spec node, role, op, module path and spec
line it comes from; the node holding an IR value is named after it and carries its shape;
weights are declared, not built; and nothing in the graph is a module of ours that hides
arithmetic: every call is a ``torch.nn`` module or a function of torch, ``operator`` or the
runtime's size helpers.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx

import pyramidgraph
from pyramidgraph.codegen import PrimitiveGraph, _var
from pyramidgraph.compiler import Compilation
from pyramidgraph.ops.apply import OutputOf
from pyramidgraph.weights import ModuleDecl, ParameterDecl

SPECS = sorted(pyramidgraph.bundled_specs())


def _primitive(spec: str, **params) -> tuple[Compilation, PrimitiveGraph]:
    compilation = Compilation(spec, params=params).run("primitives")
    return compilation, compilation.primitive


@pytest.mark.parametrize("spec", SPECS)
def test_every_node_says_where_it_comes_from(spec):
    compilation, primitive = _primitive(spec)
    ops = {op.name: op for op in compilation.optimised.ops}
    inputs = {name for name, _ in compilation.optimised.inputs}
    for node in primitive.graph.nodes:
        if node.op in ("placeholder", "output") or node.name == "inputs":
            continue
        meta = node.meta
        if meta["role"] == "input":
            assert meta["ir_op"] in inputs and node.name == _var(meta["ir_op"])
            continue
        op = ops[meta["ir_op"]]
        if isinstance(op.op, OutputOf):  # output i of an op with several (DyHead's block): the node names that op
            op = ops[op.args[0]]
        assert (meta["spec_node"], meta["role"], meta["module_path"], meta["op"]) == (op.meta["node"], op.meta["role"], op.module, op.op.label())
        file, line, col = meta["source"].rsplit(":", 2)
        assert (file == compilation.doc.file or file.endswith(".yaml")) and int(line) >= 1 and int(col) >= 1  # an included spec's node: its own file


def test_the_source_position_is_the_spec_nodes_key():
    text = (
        "pyramidgraph: 1\ninputs: {C3: {level: 3, channels: 8}, C4: {level: 4, channels: 16}}\nnodes:\n"
        "  P4: {from: [C4], channels: 8}\n  P3:\n    from: [C3, P4]\n    channels: 8\n    post: [conv3x3]\noutputs: [P3, P4]\n"
    )
    _, primitive = _primitive(text)
    sources = {node.meta["spec_node"]: node.meta["source"] for node in primitive.graph.nodes if node.meta.get("role") in ("edge", "fuse", "post")}
    assert sources == {"P4": "<string>:4:3", "P3": "<string>:5:3"}


@pytest.mark.parametrize("spec", SPECS)
def test_the_node_holding_a_value_is_named_after_it_and_carries_its_shape(spec):
    compilation, primitive = _primitive(spec)
    ir = compilation.optimised
    by_name = {node.name: node for node in primitive.graph.nodes}
    for op in ir.ops:
        node = by_name.get(_var(op.name))
        if node is None:  # an op whose result is one of its inputs (identity) holds no node of its own
            continue
        assert node.meta["ir_op"] == op.name and node.meta["shape"] == op.shape
    for node in primitive.graph.nodes:
        if node.op in ("placeholder", "output") or node.name == "inputs":
            continue
        stem = _var(node.meta.get("size_of") or node.meta["ir_op"])  # a size read is named after the map it reads
        assert node.name == stem or node.name.startswith(f"{stem}_"), f"{node.name} holds part of {node.meta['ir_op']}"


def test_calls_inside_a_composite_op_are_named_after_the_value_and_the_call():
    _, primitive = _primitive("yolov8")
    names = [node.name for node in primitive.graph.nodes]
    start = names.index("p4_td_pre")
    assert names[start : start + 8] == [
        "p4_td_pre",
        "p4_td_cv1_conv",
        "p4_td_cv1_bn",
        "p4_td_cv1_silu",
        "p4_td_cv1_chunk",
        "p4_td_cv1_getitem",
        "p4_td_cv1_getitem_1",
        "p4_td_m_0_cv1_conv",
    ]
    assert "p4_td" in names and names.index("p4_td") > names.index("p4_td_cv2_bn")


@pytest.mark.parametrize("spec", SPECS)
def test_weights_are_declared_and_every_call_is_a_torch_primitive(spec):
    _, primitive = _primitive(spec)
    for path, decl in primitive.declarations.items():
        assert isinstance(decl, (ModuleDecl, ParameterDecl)), path
        if isinstance(decl, ModuleDecl):  # a module of torch.nn: nothing of ours hides arithmetic
            assert decl.cls.__module__.startswith("torch.nn.modules."), f"{path}: {decl.describe()}"
    for node in primitive.graph.nodes:
        if node.op == "call_module":
            assert node.target in primitive.declarations
        elif node.op == "call_function":
            module = getattr(node.target, "__module__", "") or ""
            assert module.startswith(("torch", "_operator", "pyramidgraph.runtime", "pyramidgraph.ops", "pyramidgraph.contract", "collections")) or node.target in (getattr,), node.target
            if module.startswith("pyramidgraph"):  # ours only where sizes are decided, wrapped for re-tracing
                assert node.meta.get("is_wrapped") or node.target.__name__ in ("ceil_size", "_divide_by_positions"), node.target


SHARED_CELL = """
pyramidgraph: 1
example: {in_channels: [16, 32], image: 64}
inputs:
  C3: {level: 3}
  C4: {level: 4}
defaults: {channels: 8, resample: {project: none}}
nodes:
  P3: {from: [C3], post: [conv1x1]}
  P4: {from: [C4], post: [conv1x1]}
  cell:
    repeat: 3
    share: true
    inputs: [P3, P4]
    outputs: [O3, O4]
    nodes:
      O3: {from: [P3, P4], post: [conv3x3]}
      O4: {from: [P4, O3], post: [conv3x3]}
outputs: [cell.O3, cell.O4]
"""


def test_a_shared_block_declares_its_weights_once_and_every_repetition_calls_them(monkeypatch):
    compilation = Compilation(SHARED_CELL).run("primitives")
    calls = [n.target for n in compilation.primitive.graph.nodes if n.op == "call_module"]
    assert calls.count("cell.O3.post0") == 3 and calls.count("cell.O4.post0") == 3
    assert list(compilation.primitive.declarations) == ["P3.post0", "P4.post0", "cell.O3.post0", "cell.O4.post0"]
    built = []
    original = ModuleDecl.build
    monkeypatch.setattr(ModuleDecl, "build", lambda self: built.append(self) or original(self))
    compilation.run("module")
    assert len(built) == 4  # not one per repetition, thrown away: each shared module is built once


def test_the_weighted_sum_is_graph_ops_on_a_declared_parameter():
    _, primitive = _primitive("bifpn")
    decl = primitive.declarations["cell0.P6_td.fuse.weight"]
    assert isinstance(decl, ParameterDecl) and decl.shape == (2,) and decl.fill == 1.0
    (read,) = [n for n in primitive.graph.nodes if n.op == "get_attr" and n.target == "cell0.P6_td.fuse.weight"]
    ops = [n for n in primitive.graph.nodes if n.meta.get("ir_op") == read.meta["ir_op"]]
    assert [n.op for n in ops][:1] == ["get_attr"]
    assert {n.target for n in ops if n.op == "call_function"} == {torch.nn.functional.relu, operator.truediv, operator.add, torch.sum, operator.mul, operator.getitem}


def test_nothing_is_built_before_materialise(monkeypatch):
    built = []
    monkeypatch.setattr(ModuleDecl, "build", lambda self: built.append(self))
    Compilation("nasfpn").run("primitives")
    assert built == []


@pytest.mark.parametrize("spec", ["yolov8", "bifpn"])
def test_propagate_shapes_gives_every_call_its_tensor_shape(spec):
    from pyramidgraph.codegen import propagate_shapes

    neck = pyramidgraph.compile(spec)
    before = {name: p.clone() for name, p in list(neck.state_dict().items())[:3]}
    propagate_shapes(neck, image=128)
    calls = [n for n in neck.graph.nodes if n.op in ("call_module", "call_function") and n.name != "inputs"]
    assert all("tensor_meta" in n.meta or n.target in (getattr, operator.getitem) for n in calls)
    for node in calls:  # the value nodes' shapes agree with the spec-level shapes at 128x128
        if "shape" in node.meta and "tensor_meta" in node.meta:
            shape = node.meta["shape"]
            assert tuple(node.meta["tensor_meta"].shape) == (1, shape.channels, -(-128 // shape.stride), -(-128 // shape.stride)), node.name
    assert all(torch.equal(before[k], neck.state_dict()[k]) for k in before)
    assert next(neck.parameters()).device.type == "cpu"
