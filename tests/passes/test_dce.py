"""passes/dce.py: ops no output needs are dropped; a fresh lowering has none (the validator
rejects nodes that reach no output)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import pyramidgraph
from pyramidgraph.codegen import emit_graph

SPEC = """\
pyramidgraph: 1
name: dce
inputs:
  C4: {level: 4, channels: 8}
  C5: {level: 5, channels: 8}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [conv1x1]}
  A: {from: [C4, P5], post: [conv3x3]}
  B: {from: [C4, {from: P5, up: bilinear}], post: [conv3x3]}
outputs: [A, B]
"""


def _ir():
    return pyramidgraph.validate(SPEC).ir


def test_dce_drops_what_no_output_reads(checker):
    ir = _ir()
    assert checker.counts(ir) == {"Conv": 3, "Upsample": 2, "Sum": 2}
    # keep only output A: B's upsample, sum and conv are dead; P5 still feeds A
    only_a = replace(ir, outputs=[("A", "A")])
    result = checker.run("dce", only_a, {"Upsample": -1, "Sum": -1, "Conv": -1})
    assert [op.name for op in result.graph.ops] == ["P5", "A.from_P5", "A.pre", "A"]


def test_dce_drops_a_chain_down_to_the_inputs(checker):
    ir = _ir()
    only_p5 = replace(ir, outputs=[("P5", "P5")])
    result = checker.run("dce", only_p5, {"Upsample": -2, "Sum": -2, "Conv": -2})
    assert [op.name for op in result.graph.ops] == ["P5"]


def test_dce_outputs_match_on_the_same_weights():
    only_a = replace(_ir(), outputs=[("A", "A")])
    dead_graph, dead_modules = emit_graph(only_a)
    live_ir = pyramidgraph.passes.PASSES["dce"](only_a).graph
    live_graph, live_modules = emit_graph(live_ir)
    torch.manual_seed(0)
    with_dead = torch.fx.GraphModule(dead_modules, dead_graph)
    without = torch.fx.GraphModule(live_modules, live_graph)
    # the dead node's weights are the only difference
    assert set(with_dead.state_dict()) - set(without.state_dict()) == {"B.post0.weight", "B.post0.bias"}
    without.load_state_dict({k: v for k, v in with_dead.state_dict().items() if not k.startswith("B.")})
    inputs = [torch.randn(2, 8, 8, 6), torch.randn(2, 8, 4, 3)]
    (a,) = with_dead(inputs)
    (b,) = without(inputs)
    assert torch.equal(a, b)


def test_dce_finds_nothing_on_a_fresh_lowering(checker):
    checker.run("dce", _ir(), {})


@pytest.mark.parametrize("name", ["fpn", "pafpn", "bifpn"])
def test_dce_finds_nothing_in_bundled_specs(checker, name):
    checker.run("dce", pyramidgraph.validate(name, [8, 16, 32], channels=8).ir, {})


def test_dce_outputs_match_without_it(checker):
    checker.outputs_match(SPEC, ("dce",))


def test_dce_keeps_values_read_only_by_pre_taps(checker):
    spec = """\
pyramidgraph: 1
inputs:
  C3: {level: 3, channels: 8}
  C4: {level: 4, channels: 8}
defaults: {channels: 8}
nodes:
  P3: {from: [C3, C4], post: [conv3x3]}
  N4: {level: 4, from: [P3.pre]}
outputs: [N4]
"""
    ir = pyramidgraph.validate(spec).ir
    # P3's conv is dead: only its .pre (the sum) is read
    assert [op.name for op in ir.ops] == ["P3.from_C4", "P3.pre", "P3", "N4"]
    result = checker.run("dce", ir, {"Conv": -1})
    assert [op.name for op in result.graph.ops] == ["P3.from_C4", "P3.pre", "N4"]


def test_pass_manager_runs_passes_in_order_and_checks_the_ir():
    from pyramidgraph.passes import PASSES, PassError, PassResult, run_passes

    ir = _ir()
    assert [op.name for op in run_passes(ir, [PASSES["cse"], PASSES["dce"]]).ops] == [op.name for op in ir.ops]

    def broken(graph):
        return PassResult(replace(graph, ops=graph.ops[1:]), True)

    with pytest.raises(PassError) as info:
        run_passes(ir, [PASSES["cse"], broken])
    assert str(info.value).startswith("IR invalid after pass broken (ran before it: eliminate_common_subexpressions): IR op ")
