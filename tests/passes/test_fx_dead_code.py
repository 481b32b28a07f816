"""passes/fx/dead_code.py: the inference program reads no module it does not compute with
(DAMO-YOLO's CSP stage of no blocks keeps a ``conv2`` its reference builds and never calls, for
the checkpoint); a training graph keeps every module read, so copies of the neck keep them."""

from __future__ import annotations

import copy

from fx_checker import base_neck, optimised_copy, run_pass


def _kept(neck) -> set[str]:
    return {n.target for n in neck.graph.find_nodes(op="get_attr") if not n.users}


KEEPS = """\
pyramidgraph: 1
name: keeps
inputs:
  C4: {level: 4, channels: 16}
  C5: {level: 5, channels: 16}
defaults: {channels: 16}
nodes:
  P5: {from: [C5], post: [{csp_stage: {blocks: 0}}]}
  P4: {from: [C4, P5], post: [conv3x3]}
outputs: [P4, P5]
"""


def test_the_inference_program_drops_the_kept_modules_and_training_keeps_them():
    neck = base_neck(KEEPS)
    kept = _kept(neck)
    assert kept == {"P5.post0.conv2.conv", "P5.post0.conv2.bn"}
    ctx, _, _ = run_pass(neck, "dead_code", "inference")
    assert kept.isdisjoint({n.target for n in ctx.graph.find_nodes(op="get_attr")})
    train, _, removed = run_pass(neck, "dead_code", "train")
    assert kept <= {n.target for n in train.graph.find_nodes(op="get_attr")}
    fast = optimised_copy(neck, "inference")
    assert list(copy.deepcopy(fast).state_dict()) == list(neck.state_dict())
