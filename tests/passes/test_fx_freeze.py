"""passes/fx/freeze.py: the inference program's weight arithmetic runs once, into derived
buffers outside the ``state_dict``; its forward reads no parameter it folded."""

from __future__ import annotations

import torch
from fx_checker import base_neck, optimised_copy, run_pass

from pyramidgraph.passes.fx import PassContext


def test_every_weight_computation_read_by_a_map_becomes_one_buffer():
    neck = base_neck("yolov8")
    ctx, _, count = run_pass(neck, "freeze", "inference")
    derived = [n for n in ctx.graph.find_nodes(op="get_attr") if n.target.startswith("derived_")]
    assert count == len(derived) == 36  # 18 conv-BN units: a kernel and a bias each
    weights = [n for n in ctx.graph.nodes if n.op != "get_attr" and PassContext(ctx.graph, neck, "inference").is_weight(n)]
    assert weights == []  # nothing computed from parameters alone is left in the forward
    program, names = ctx.products["weight_program"]
    assert len(names) == 36 and not program.find_nodes(op="placeholder")


def test_derived_buffers_stay_out_of_the_checkpoint_and_follow_the_parameters():
    neck = base_neck("yolov8")
    fast = optimised_copy(neck, "inference").eval()
    assert list(fast.state_dict()) == list(neck.state_dict())
    derived = {name for name, _ in fast.named_buffers() if name.startswith("derived_")}
    assert len(derived) == 36
    folded_bns = {n.target for n in fast.__dict__["_inference"].weight_graph.find_nodes(op="get_attr")}
    read = {n.target for n in fast.__dict__["_inference"].graph.find_nodes(op="get_attr")}
    assert read.isdisjoint(folded_bns)
    inputs = neck.example_inputs(image=128)
    with torch.no_grad():
        before = fast(inputs)[0].clone()
        fast.P4_td.post0.cv2.bn.bias.add_(1.0)  # a parameter changes in place: the next call refolds
        after = fast(inputs)[0]
        neck.P4_td.post0.cv2.bn.bias.add_(1.0)
        torch.testing.assert_close(after, neck(inputs)[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)
