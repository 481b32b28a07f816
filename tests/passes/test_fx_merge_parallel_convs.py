"""passes/fx/merge_parallel_convs.py: convs of one configuration reading the same map (C3's
``cv1`` and ``cv2``) run as one conv and a split, in training too, with the same gradients."""

from __future__ import annotations

import torch.nn.functional as F
from fx_checker import assert_same_gradients, assert_same_outputs, base_neck, optimised_copy, run_pass

C3 = """\
pyramidgraph: 1
name: c3
inputs:
  C4: {level: 4, channels: 16}
  C5: {level: 5, channels: 32}
defaults: {channels: 16}
nodes:
  P5: {from: [C5], post: [{c3: {blocks: 1}}]}
  P4: {from: [C4, P5], fuse: concat, post: [{c3: {blocks: 1, out: 16}}]}
outputs: [P4, P5]
"""


def test_cv1_and_cv2_of_each_c3_become_one_conv():
    neck = base_neck(C3)
    ctx, delta, count = run_pass(neck, "merge_parallel_convs", "train")
    assert count == 2  # one merge per C3 block
    # in a training graph the merged convs are lowered from module calls first
    assert delta["Conv2d"] == -4 and delta["conv2d"] == 2 and delta["split"] == 2 and delta["cat_kernels"] == 2
    merged = [n for n in ctx.graph.nodes if n.op == "call_function" and n.target is F.conv2d]
    assert [n.meta["conv"]["out_channels"] for n in merged] == [16, 16]  # two 8-wide halves each
    # the modules the merge stopped calling are still read, so copies keep them
    assert {"P5.post0.cv1.conv", "P5.post0.cv2.conv"} <= {n.target for n in ctx.graph.find_nodes(op="get_attr")} | ctx.pinned


def test_merged_convs_train_with_the_same_gradients_and_keys():
    neck = base_neck(C3).train()
    fast = optimised_copy(neck, "train").train()
    assert list(fast.state_dict()) == list(neck.state_dict())
    inputs = neck.example_inputs(batch=4, image=128)
    assert_same_gradients(neck, fast, inputs)
    assert_same_outputs(neck.eval(), fast.eval(), inputs)


CHAIN = """\
pyramidgraph: 1
name: chain
inputs:
  C3: {level: 3, channels: 8}
defaults: {channels: 8}
nodes:
  A4: {from: [{from: C3, down: {op: conv, kernel: 3}}], level: 4}
  B4: {from: [{from: C3, down: {op: conv, kernel: 3}}], level: 4}
  A5: {from: [{from: A4, down: {op: conv, kernel: 3}}], level: 5}
  B5: {from: [{from: A4, down: {op: conv, kernel: 3}}], level: 5}
outputs: [A4, B4, A5, B5]
"""


def test_a_merge_whose_input_was_merged_before_reads_that_merge():
    """A4 and B4 merge (both read C3); A5 and B5 read A4, merged away by then: their merge must
    read A4's part of the first split (mmdetection's FPG at inference, found by the sweeps)."""
    neck = base_neck(CHAIN)
    for level in ("train", "inference"):
        ctx, delta, count = run_pass(neck, "merge_parallel_convs", level)
        assert count == 2
        ctx.graph.lint()
    fast = optimised_copy(neck, "inference")
    assert_same_outputs(neck.eval(), fast.eval(), neck.example_inputs(batch=2, image=64))
