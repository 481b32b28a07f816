"""passes/fx/reparameterise.py: a RepVGG unit's two conv-BN branches (RT-DETR's RepC3 blocks
here) become one 3x3 conv once their norms are folded; the sum of convs of different inputs
or strides stays a sum."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fx_checker import assert_same_outputs, base_neck, optimised_copy, run_pass

REP = """\
pyramidgraph: 1
name: rep
inputs:
  C4: {level: 4, channels: 16}
  C5: {level: 5, channels: 16}
defaults: {channels: 16}
nodes:
  P5: {from: [C5], post: [{rep_c3: {blocks: 3}}]}
  P4: {from: [C4, P5], post: [conv3x3]}
outputs: [P4, P5]
"""


def test_each_rep_unit_becomes_one_conv():
    neck = base_neck(REP)
    ctx, delta, count = run_pass(neck, "reparameterise", "inference")
    assert count == 3  # one per block
    assert delta["conv2d"] == -3 and delta["add"] == -3 and delta["sum_kernels"] == 3
    merged = [n for n in ctx.graph.nodes if n.op == "call_function" and n.target is F.conv2d and n.meta["conv"]["kernel"] == (3, 3) and "rep" in n.name]
    assert len(merged) == 3 and all(n.args[4] == (1, 1) for n in merged)


def test_reparameterised_outputs_equal_the_two_branches():
    neck = base_neck(REP)
    fast = optimised_copy(neck, "inference").eval()
    assert_same_outputs(neck, fast, neck.example_inputs(batch=2, image=128))
    assert fast.info.pass_counts["inference.reparameterise"] == 3


def test_the_summed_kernel_is_the_centred_sum():
    from pyramidgraph.passes.fx.weight_math import sum_kernels

    a, b = torch.randn(4, 4, 3, 3), torch.randn(4, 4, 1, 1)
    weight, bias = sum_kernels(a, torch.ones(4), b, None)
    expected = a.clone()
    expected[:, :, 1, 1] += b[:, :, 0, 0]
    assert torch.equal(weight, expected) and torch.equal(bias, torch.ones(4))
    x = torch.randn(1, 4, 9, 9)
    torch.testing.assert_close(F.conv2d(x, weight, bias, padding=1), F.conv2d(x, a, torch.ones(4), padding=1) + F.conv2d(x, b))


def test_a_sum_of_convs_of_different_inputs_stays():
    spec = REP.replace("outputs: [P4, P5]", "  Q4: {from: [C4, P4], fuse: sum}\noutputs: [Q4, P5]")
    neck = base_neck(spec)
    _, delta, count = run_pass(neck, "reparameterise", "inference")
    assert count == 3 and delta["add"] == -3  # the three RepC3 units only: P4's and Q4's sums stay
