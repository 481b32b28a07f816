"""passes/cse.py: parameter-free ops on the same values are computed once; ops with weights never
merge. Plus a random-graph test: CSE and DCE never change what a neck computes."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyramidgraph

# Two nodes at level 4 both read P5: each gets an upsample of P5 and a sum with C4.
TWICE = """\
pyramidgraph: 1
name: twice
inputs:
  C4: {level: 4, channels: 8}
  C5: {level: 5, channels: 8}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [conv1x1]}
  A: {from: [C4, P5], post: [conv3x3]}
  B: {from: [C4, P5], post: [{conv: {kernel: 3, bias: false}}]}
outputs: [A, B]
"""


def _ir(spec, in_channels=None, **params):
    return pyramidgraph.validate(spec, in_channels, **params).ir


def test_cse_merges_the_second_upsample_and_sum(checker):
    ir = _ir(TWICE)
    assert checker.counts(ir) == {"Conv": 3, "Upsample": 2, "Sum": 2}
    result = checker.run("cse", ir, {"Upsample": -1, "Sum": -1})
    assert [op.name for op in result.graph.ops] == ["P5", "A.from_P5", "A.pre", "A", "B"]
    # B's conv now reads A's sum; the node map follows
    assert result.graph.ops[-1].args == ["A.pre"]
    assert result.graph.node_values["B.pre"] == "A.pre"
    assert result.graph.outputs == [("A", "A"), ("B", "B")]


def test_cse_outputs_match_without_it(checker):
    checker.outputs_match(TWICE, ("cse",))
    checker.outputs_match(TWICE, ("cse", "dce"))


def test_cse_in_compiled_code():
    plain = pyramidgraph.compile(TWICE, passes=())
    merged = pyramidgraph.compile(TWICE)
    assert plain.code.count("interpolate") == 2
    assert merged.code.count("interpolate") == 1
    assert plain.code.count(" + ") == 2
    assert merged.code.count(" + ") == 1


def test_cse_never_merges_ops_with_weights(checker):
    # both nodes project C5 (4 wide) to 8 with identical configuration: two sets of weights
    spec = TWICE.replace("C5: {level: 5, channels: 8}", "C5: {level: 5, channels: 4}").replace("P5: {from: [C5], post: [conv1x1]}", "P5: {from: [C5], post: []}")
    spec = spec.replace("from: [C4, P5]", "from: [C4, C5]").replace("outputs: [A, B]", "outputs: [A, B, P5]")
    ir = _ir(spec)
    assert checker.counts(ir) == {"Project": 3, "Upsample": 2, "Sum": 2, "Conv": 2}
    # the projections stay, and so do the upsamples and sums reading them (different values)
    checker.run("cse", ir, {})
    checker.outputs_match(spec, ("cse",))


def test_cse_keeps_ops_that_differ_in_configuration(checker):
    spec = TWICE.replace("B: {from: [C4, P5]", "B: {from: [C4, {from: P5, up: bilinear}]")
    checker.run("cse", _ir(spec), {})


def test_cse_merges_identical_pooling_from_one_source(checker):
    spec = """\
pyramidgraph: 1
inputs:
  C3: {level: 3, channels: 8}
  C4: {level: 4, channels: 8}
defaults: {channels: 8}
nodes:
  D4: {from: [C4], post: [conv1x1]}
  A: {from: [C4, C3], post: [conv3x3]}
  B: {from: [D4, C3], post: [conv3x3]}
outputs: [A, B]
"""
    ir = _ir(spec)
    assert checker.counts(ir) == {"MaxPool": 2, "Sum": 2, "Conv": 3}
    checker.run("cse", ir, {"MaxPool": -1})
    checker.outputs_match(spec, ("cse",))


@pytest.mark.parametrize("name", ["fpn", "pafpn", "bifpn"])
def test_cse_on_bundled_specs_finds_nothing_to_merge(checker, name):
    # hand-written necks resample each value once already
    checker.run("cse", _ir(name, [8, 16, 32], channels=8), {})


@pytest.mark.parametrize("name", ["fpn", "pafpn", "bifpn"])
def test_bundled_specs_outputs_match_with_and_without_passes(checker, name):
    checker.outputs_match(name, ("cse", "dce"), [8, 16, 32], channels=8)


# -- random graphs -------------------------------------------------------------------------------

RANDOM = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def random_necks(draw):
    """A random DAG over three inputs: each node reads 1-3 earlier values at random levels, with
    sum or mean fusion and maybe a conv, so that the same resample appears more than once."""
    values = [("C3", 3), ("C4", 4), ("C5", 5)]
    nodes = {}
    for i in range(draw(st.integers(2, 6))):
        level = draw(st.integers(3, 5))
        sources = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
        node = {"level": level, "from": [name for name, _ in sources], "fuse": draw(st.sampled_from(["sum", "mean", "concat"]))}
        if node["fuse"] == "concat":
            node["channels"] = 8 * len(sources)
        if draw(st.booleans()):
            node["post"] = [{"conv": {"kernel": draw(st.sampled_from([1, 3])), "out": 8}}]
            node["channels"] = 8
        nodes[f"N{i}"] = node
        values.append((f"N{i}", level))
    used = {ref for node in nodes.values() for ref in node["from"]}
    outputs = [name for name in nodes if name not in used] + [c for c in ("C3", "C4", "C5") if c not in used]
    return {
        "pyramidgraph": 1,
        "name": "random",
        "inputs": {"C3": {"level": 3, "channels": 8}, "C4": {"level": 4, "channels": 8}, "C5": {"level": 5, "channels": 8}},
        "defaults": {"channels": 8},
        "nodes": nodes,
        "outputs": outputs,
    }


@RANDOM
@given(random_necks())
def test_random_graphs_compute_the_same_with_and_without_passes(spec):
    try:
        analysis = pyramidgraph.validate(spec, image=(40, 24))
    except pyramidgraph.SpecError:
        return  # e.g. a node whose only output is unused; validation's business, not the passes'
    from pyramidgraph.passes import PASSES

    ir = analysis.ir
    cse = PASSES["cse"](ir).graph
    cse.check()
    dce = PASSES["dce"](cse)
    assert dce.changed is False  # CSE drops what it merges itself
    assert PASSES["cse"](cse).changed is False
    torch.manual_seed(0)
    plain = pyramidgraph.compile(spec, passes=())
    optimised = pyramidgraph.compile(spec)
    optimised.load_state_dict(plain.state_dict())
    inputs = plain.example_inputs(batch=1, image=(40, 24))
    with torch.no_grad():
        for x, y in zip(plain(inputs), optimised(inputs)):
            assert torch.equal(x, y)
    assert len(optimised.graph.nodes) <= len(plain.graph.nodes)
