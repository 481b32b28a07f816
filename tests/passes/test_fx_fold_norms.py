"""passes/fx/fold_norms.py: an eval-mode batch norm after a conv becomes the conv's kernel and
bias; a norm after anything else, or after a conv something else reads, stays."""

from __future__ import annotations

import torch
from fx_checker import assert_same_outputs, base_neck, optimised_copy, run_pass

UNITS = """\
pyramidgraph: 1
name: units
inputs:
  C4: {level: 4, channels: 8}
  C5: {level: 5, channels: 16}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [{conv_bn_act: {kernel: 3, act: silu}}]}
  P4: {from: [C4, P5], post: [{conv_bn_act: {kernel: 3, act: relu}}, bn]}
outputs: [P4, P5]
"""


def test_each_norm_after_a_conv_folds_and_the_other_stays():
    neck = base_neck(UNITS)
    ctx, delta, count = run_pass(neck, "fold_norms", "inference")
    # two conv-BN units fold: their BN calls go, their convs are rebuilt on folded kernels;
    # the bare `bn` after P4's activation has no conv before it and stays
    assert count == 2
    assert delta == {"BatchNorm2d": -2, "fold_batch_norm": 2, "getitem": 4, "get_attr": 8}
    assert [n.target for n in ctx.graph.nodes if n.op == "call_module"] == ["P4.post1"]


def test_folded_outputs_equal_and_the_folded_kernel_is_the_formula():
    neck = base_neck(UNITS)
    fast = optimised_copy(neck, "inference").eval()
    inputs = neck.example_inputs(batch=2, image=64)
    assert_same_outputs(neck, fast, inputs)
    conv, bn = neck.P5.post0.conv, neck.P5.post0.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    expected = conv.weight * scale[:, None, None, None]
    torch.testing.assert_close(fast.derived_p5_bn_folded_weight, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(fast.derived_p5_bn_folded_bias, bn.bias - bn.running_mean * scale, rtol=1e-6, atol=1e-7)


def test_a_norm_without_running_statistics_does_not_fold():
    neck = base_neck(UNITS)
    neck.P5.post0.bn.track_running_stats = False
    neck.P5.post0.bn.running_mean = neck.P5.post0.bn.running_var = None
    _, delta, count = run_pass(neck, "fold_norms", "inference")
    assert count == 1 and delta["BatchNorm2d"] == -1
