"""Stage ``graph``: the dataflow between inputs and nodes, its order, and the checks on it
(cycles, taps of inputs, what no output uses, the levels an include is fed at)."""

from __future__ import annotations

import pytest

import pyramidgraph
from pyramidgraph.compiler import Compilation
from pyramidgraph.graph import base_of, check_graph, dataflow, node_levels, topological_order


def _flat(text: str):
    compilation = Compilation(text).run("expand")
    return compilation.doc, compilation.flat


SPEC = """
pyramidgraph: 1
example: {in_channels: [8, 16, 32], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}
nodes:
  P3: {from: [C3, P4], channels: 8}
  P5: {from: [C5], channels: 8}
  P4: {from: [C4, P5], channels: 8}
  G: {from: [P3, P5], apply: concat_levels}
  S: {from: [P4], apply: {split: 2}}
  Q: {from: [S.1, P4.pre]}
outputs: [P3, G, S.0, Q]
"""


def test_base_of_strips_taps_and_output_indices_only():
    assert [base_of(s) for s in ("P4", "P4.pre", "S.1", "cell.0.P3", "cell.0.P3.pre", "inc.halves.12")] == ["P4", "P4", "S", "cell.0.P3", "cell.0.P3", "inc.halves"]


def test_the_dataflow_runs_in_dependency_order_then_declaration_order():
    _, flat = _flat(SPEC)
    g = dataflow(flat)
    assert sorted(g.edges) == sorted([("C3", "P3"), ("P4", "P3"), ("C5", "P5"), ("C4", "P4"), ("P5", "P4"), ("P3", "G"), ("P5", "G"), ("P4", "S"), ("S", "Q"), ("P4", "Q")])
    assert topological_order(g) == ["C3", "C4", "C5", "P5", "P4", "P3", "G", "S", "Q"]


def test_levels_follow_the_first_input_and_an_apply_op_decides_its_own():
    called = "G: {from: [P3, P5], apply: concat_levels}\n  B: {from: [P3], apply: {call: {module: m, stride: 4}}}"
    _, flat = _flat(SPEC.replace("G: {from: [P3, P5], apply: concat_levels}", called).replace("outputs: [P3,", "outputs: [B, P3,"))
    levels = node_levels(flat)
    assert {k: levels[k] for k in ("P3", "P4", "P5", "G", "S", "Q", "B")} == {"P3": 3, "P4": 4, "P5": 5, "G": 3, "S": 4, "Q": 4, "B": 5}


def test_a_clean_spec_has_no_graph_issues():
    doc, flat = _flat(SPEC)
    assert check_graph(doc, flat) == []


def test_a_cycle_is_reported_once_at_the_edge_that_closes_it():
    doc, flat = _flat(SPEC.replace("P5: {from: [C5], channels: 8}", "P5: {from: [C5, P3], channels: 8}"))
    assert [i.format() for i in check_graph(doc, flat)] == ["<string>:6:19: nodes.P3.from[1]: cycle: P3 -> P5 -> P4 -> P3; a node cannot depend on itself"]


def test_unused_nodes_and_inputs_are_reported_and_not_after_expansion_problems():
    doc, flat = _flat(SPEC.replace("outputs: [P3, G, S.0, Q]", "outputs: [P5]"))
    assert [i.format() for i in check_graph(doc, flat)] == [
        "<string>:6:3: nodes.P3: node 'P3' does not reach any output; remove it or list it in outputs",
        "<string>:8:3: nodes.P4: node 'P4' does not reach any output; remove it or list it in outputs",
        "<string>:9:3: nodes.G: node 'G' does not reach any output; remove it or list it in outputs",
        "<string>:10:3: nodes.S: node 'S' does not reach any output; remove it or list it in outputs",
        "<string>:11:3: nodes.Q: node 'Q' does not reach any output; remove it or list it in outputs",
        "<string>:4:10: inputs.C3: input 'C3' is not used by any output; remove it, read it from a node, or mark it optional: true",
        "<string>:4:26: inputs.C4: input 'C4' is not used by any output; remove it, read it from a node, or mark it optional: true",
    ]
    assert check_graph(doc, flat, reachability=False) == []


def test_an_input_has_no_pre_tap():
    with pytest.raises(pyramidgraph.SpecError) as info:
        Compilation(SPEC.replace("Q: {from: [S.1, P4.pre]}", "Q: {from: [S.1, C4.pre]}")).run("graph")
    assert [i.format() for i in info.value.issues] == ["<string>:11:19: nodes.Q.from[1]: 'C4.pre': inputs have no .pre tap; only nodes do"]
