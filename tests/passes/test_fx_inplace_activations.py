"""passes/fx/inplace_activations.py: an activation overwrites a fresh map read by it alone; in a
training graph only the activations autograd can differentiate in place (relu's family)."""

from __future__ import annotations

import torch
from fx_checker import assert_same_gradients, assert_same_outputs, base_neck, optimised_copy, run_pass

ACTS = """\
pyramidgraph: 1
name: acts
inputs:
  C4: {level: 4, channels: 8}
  C5: {level: 5, channels: 8}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [{conv_bn_act: {kernel: 3, act: silu}}]}
  P4: {from: [C4, P5], post: [relu, {conv_bn_act: {kernel: 3, act: relu}}]}
  Q4: {from: [C4], post: [relu]}
outputs: [P4, P5, Q4]
"""


def test_training_graph_overwrites_only_with_relu_and_never_an_input():
    neck = base_neck(ACTS)
    ctx, delta, count = run_pass(neck, "inplace_activations", "train")
    # P4's two relus (after its sum and after its BN) go in place; P5's silu (its backward
    # reads its input) and Q4's relu (its input is the caller's C4) do not
    assert count == 2 and delta == {"relu(inplace)": 2, "relu": -2}


def test_inference_program_overwrites_with_every_activation():
    neck = base_neck(ACTS)
    _, delta, count = run_pass(neck, "inplace_activations", "inference")
    assert count == 3 and delta == {"relu(inplace)": 2, "relu": -2, "silu(inplace)": 1, "silu": -1}


def test_in_place_keeps_outputs_gradients_and_the_callers_inputs():
    neck = base_neck(ACTS).train()
    fast = optimised_copy(neck, "train").train()
    inputs = neck.example_inputs(batch=2, image=64)
    kept = [x.clone() for x in inputs]
    assert_same_gradients(neck, fast, inputs)
    assert all(torch.equal(a, b) for a, b in zip(inputs, kept))
    assert_same_outputs(neck.eval(), optimised_copy(neck, "inference").eval(), inputs)
    assert all(torch.equal(a, b) for a, b in zip(inputs, kept))
