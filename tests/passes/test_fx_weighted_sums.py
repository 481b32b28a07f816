"""passes/fx/weighted_sums.py and fold_scales.py: BiFPN's fusion ``sum_i w_i * x_i``. Each
``a + x * w`` becomes one ``addcmul``; in the inference program a weight applied to a 1x1
projection that nothing else reads is folded into the projection's kernel."""

from __future__ import annotations

import torch
from fx_checker import assert_same_gradients, assert_same_outputs, base_neck, optimised_copy, run_pass

# one BiFPN cell over P3-P5 inputs, levels 3-7: 8 weighted nodes of 19 inputs in all (the
# top-down P6, P5, P4 take 2 each; the outputs P3 and P7 take 2, P4-P6 take 3)
NODES, INPUTS = 8, 19


def test_every_weighted_input_after_the_first_is_one_addcmul():
    neck = base_neck("bifpn", channels=16, cells=1)
    ctx, delta, count = run_pass(neck, "weighted_sums", "train")
    assert count == INPUTS - NODES
    assert delta == {"addcmul": INPUTS - NODES, "add": -(INPUTS - NODES), "mul": -(INPUTS - NODES)}


def test_the_weights_of_the_five_lateral_projections_fold_into_them():
    # the first cell projects the backbone's maps with 1x1 conv-BNs read once each: P5 for P5_td
    # and P5_out, P4 for P4_td and P4_out, P3 for P3_out
    neck = base_neck("bifpn", channels=16, cells=1)
    _, delta, count = run_pass(neck, "fold_scales", "inference")
    assert count == 5 and delta["mul"] == -5 and delta["scale_conv"] == 5


def test_weighted_sums_keep_outputs_and_gradients():
    neck = base_neck("bifpn", channels=16, cells=1).train()
    fast = optimised_copy(neck, "train").train()
    inputs = neck.example_inputs(batch=2, image=256)
    assert_same_gradients(neck, fast, inputs)
    assert_same_outputs(neck.eval(), optimised_copy(neck, "inference").eval(), inputs)


def test_addcmul_is_the_sum_it_replaces():
    a, x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5), torch.tensor(0.3)
    torch.testing.assert_close(torch.addcmul(a, x, w), a + x * w)
