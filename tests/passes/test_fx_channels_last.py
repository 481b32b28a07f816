"""passes/fx/channels_last.py: the inputs are made channels-last where the neck unpacks them,
the kernels with the module, and the outputs come out channels-last with the same values."""

from __future__ import annotations

import torch
from fx_checker import assert_same_outputs, base_neck, optimised_copy, run_pass


def test_one_conversion_per_input():
    neck = base_neck("fpn", channels=16)
    _, delta, count = run_pass(neck, "channels_last", "train")
    assert count == 4 and delta == {"contiguous": 4}


def test_outputs_and_kernels_are_channels_last_and_equal():
    neck = base_neck("fpn", channels=16)
    fast = optimised_copy(neck, "train")
    inputs = neck.example_inputs(batch=2, image=128)
    assert_same_outputs(neck, fast, inputs)
    with torch.no_grad():
        outs = fast(inputs)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outs)
    assert all(x.is_contiguous() for x in inputs)  # the caller's maps are not converted in place
    kernels = [p for p in fast.parameters() if p.dim() == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    # optimize(..., "none") gives the plain layout back
    import pyramidgraph

    pyramidgraph.optimize(fast, "none")
    assert all(p.is_contiguous() for p in fast.parameters())
    with torch.no_grad():
        assert all(o.is_contiguous() for o in fast(inputs))
