"""passes/fx/inplace_sums.py: FPN's top-down sums write into the lateral conv's output (read by
nothing else), in training too; a sum whose first addend is read elsewhere or is an input stays."""

from __future__ import annotations

from fx_checker import assert_same_gradients, assert_same_outputs, base_neck, optimised_copy, run_pass

CHAIN = """\
pyramidgraph: 1
name: chain
inputs:
  C4: {level: 4, channels: 8}
  C5: {level: 5, channels: 8}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [conv3x3]}
  P4: {from: [C4, P5]}
outputs: [P4, P5]
"""


def test_each_top_down_sum_writes_into_its_lateral():
    neck = base_neck("fpn", channels=16)
    ctx, delta, count = run_pass(neck, "inplace_sums", "train")
    assert count == 3 and delta == {"add": -3, "add_": 3}  # P4, P3, P2: lateral + upsampled


def test_a_sum_of_an_input_stays():
    # P4 = C4 + up(P5): C4 is the caller's map, never overwritten
    _, delta, count = run_pass(base_neck(CHAIN), "inplace_sums", "train")
    assert (count, delta) == (0, {})


def test_in_place_sums_keep_outputs_and_gradients():
    neck = base_neck("fpn", channels=16)
    inputs = neck.example_inputs(batch=2, image=128)
    assert_same_outputs(neck, optimised_copy(neck, "inference").eval(), inputs)
    assert_same_gradients(neck, optimised_copy(neck, "train"), inputs)
