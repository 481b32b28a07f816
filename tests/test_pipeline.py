"""The pipeline as data: one declared list of stages, one driver, no stage run twice."""

from __future__ import annotations

import pytest

import pyramidgraph
import pyramidgraph.compiler as compiler
from pyramidgraph.compiler import STAGES, Compilation


def test_the_stages_are_declared_in_order():
    assert [stage.name for stage in STAGES] == ["load", "schema", "expand", "graph", "lower", "passes", "primitives", "materialise", "module", "optimize"]


def _count_stages(monkeypatch) -> list[str]:
    ran: list[str] = []
    counted = tuple(compiler.Stage(s.name, (lambda run, name: lambda c: (ran.append(name), run(c)))(s.run, s.name)) for s in STAGES)
    monkeypatch.setattr(compiler, "STAGES", counted)
    return ran


def test_run_stops_at_the_stage_asked_for_and_carries_on_without_repeating(monkeypatch):
    ran = _count_stages(monkeypatch)
    compilation = Compilation("fpn").run("lower")
    assert ran == ["load", "schema", "expand", "graph", "lower"]
    assert compilation.optimised is None and compilation.primitive is None
    compilation.run("primitives")
    assert ran[5:] == ["passes", "primitives"] and compilation.weights is None
    compilation.run()
    assert ran[7:] == ["materialise", "module", "optimize"] and compilation.neck is not None
    compilation.run()
    assert len(ran) == 10


def test_an_unknown_stage_names_the_stages():
    with pytest.raises(ValueError) as info:
        Compilation("fpn").run("emit")
    assert str(info.value) == "no stage 'emit'; the stages are load, schema, expand, graph, lower, passes, primitives, materialise, module, optimize"


def test_analyze_and_compile_are_the_driver(monkeypatch):
    ran = _count_stages(monkeypatch)
    pyramidgraph.analyze("fpn")
    assert ran == ["load", "schema", "expand", "graph", "lower"]
    ran.clear()
    pyramidgraph.compile("fpn")
    assert ran == [stage.name for stage in STAGES]


def test_info_and_render_carry_on_from_one_analysis(monkeypatch):
    ran = _count_stages(monkeypatch)
    pyramidgraph.neck_info("bifpn")
    assert ran == ["load", "schema", "expand", "graph", "lower", "passes"]
    ran.clear()
    from pyramidgraph.render import render

    render("fpn", lowered=True)
    assert ran == ["load", "schema", "expand", "graph", "lower", "passes"]


def test_an_mmdet_chain_analyses_each_neck_once(monkeypatch):
    from pyramidgraph.interop import from_reference

    lowered: list[str] = []
    counted = tuple(
        compiler.Stage(s.name, (lambda run: lambda c: (lowered.append(c.doc.data.get("name")), run(c)))(s.run)) if s.name == "lower" else s for s in STAGES
    )
    monkeypatch.setattr(compiler, "STAGES", counted)
    config = {
        "necks": [
            {"type": "FPN", "in_channels": [16, 32, 64, 128], "out_channels": 16, "num_outs": 5},
            {"type": "BFP", "in_channels": 16, "num_levels": 5, "refine_level": 2, "refine_type": "non_local"},
        ],
        "strides": [4, 8, 16, 32],
    }
    neck = from_reference("mmdet", config)
    assert lowered == ["fpn", "bfp", "chain"]  # each neck once while converting, the chain once when compiling
    assert neck.out_channels == 16


def test_expansion_and_graph_issues_are_reported_together():
    spec = """
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 8}}
params: {width: {default: 8, type: int}}
nodes:
  P3: {from: [C3], channels: "$widht"}
  A: {from: [C3, B], channels: 8}
  B: {from: [A], channels: 8}
outputs: [P3, B]
"""
    with pytest.raises(pyramidgraph.SpecError) as info:
        Compilation(spec).run("graph")
    assert [issue.format() for issue in info.value.issues] == [
        "<string>:6:30: nodes.P3.channels: unknown name 'widht'; did you mean 'width'?",
        "<string>:7:18: nodes.A.from[1]: cycle: A -> B -> A; a node cannot depend on itself",
    ]


STAGE_TESTS = {
    "load": "test_loader.py",
    "schema": "test_schema.py",
    "expand": "test_expand.py",
    "graph": "test_graph.py",
    "lower": "test_lower.py",
    "passes": "passes",
    "primitives": "test_primitives.py",
    "materialise": "test_weights.py",
    "module": "test_compile.py",
    "optimize": "test_optimize.py",
}
"""Where each stage's own tests are (the module stage: the compiled neck's interface, copies, pickling)."""


def test_every_stage_has_its_own_tests():
    from pathlib import Path

    here = Path(__file__).resolve().parent
    assert list(STAGE_TESTS) == [stage.name for stage in STAGES]
    assert [name for name, path in STAGE_TESTS.items() if not (here / path).exists()] == []
