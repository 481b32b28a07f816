"""A compiled neck is a GraphModule that torch.fx's own tools can take apart again (issue 9).

``torch.fx.symbolic_trace(neck)`` re-traces the generated forward: the calls that decide on sizes
in Python (the input check, TensorFlow "same" padding, NAS-FPN's merge resize) are declared with
``torch.fx.wrap`` in the generated code and stay one call each, and everything else, the
weighted sum's arithmetic included, is graph ops. ``torch.fx.experimental.optimization.fuse``
then folds every conv+BN pair in eval mode.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.fx
import torch.fx.experimental.optimization
from speclib import small_args, squares
from torch import nn

import pyramidgraph

SPECS = sorted(pyramidgraph.bundled_specs())


def _outputs(result) -> list[torch.Tensor]:
    return list(result.values()) if isinstance(result, dict) else list(result)


def _neck(spec: str) -> nn.Module:
    torch.manual_seed(0)
    neck = pyramidgraph.compile(spec, **({"channels": 64, "inter_channels": 64} if spec == "fpg" else small_args(spec)))
    for module in neck.modules():  # statistics away from 0/1, so that folding them is visible
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return neck.eval()


@pytest.mark.parametrize("spec", SPECS)
def test_symbolic_trace_and_fuse_give_the_necks_outputs(spec):
    neck = _neck(spec)
    x = neck.example_inputs(batch=1, image=squares(spec)[0])
    with torch.no_grad():
        expected = _outputs(neck(x))
        traced = torch.fx.symbolic_trace(neck)
        assert [n.op for n in traced.graph.nodes].count("call_module") == [n.op for n in neck.graph.nodes].count("call_module")
        assert all(torch.equal(a, b) for a, b in zip(_outputs(traced(x)), expected))
        fused = torch.fx.experimental.optimization.fuse(neck)
        batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in neck.modules())
        assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) <= batch_norms
        for a, b in zip(_outputs(fused(x)), expected):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fuse_folds_the_batch_norms_that_follow_convs():
    neck = _neck("yolov8")  # every conv of its C2f units is followed by a BN
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in neck.modules())
    assert batch_norms == sum(isinstance(m, nn.Conv2d) for m in neck.modules()) == 18
    fused = torch.fx.experimental.optimization.fuse(neck)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) == 0


def test_the_size_deciding_calls_stay_one_call_when_re_traced():
    neck = _neck("nasfpn")
    wrapped = {n.target.__name__ for n in neck.graph.nodes if n.meta.get("is_wrapped")}
    assert wrapped == {"check_inputs", "merge_resize"}
    traced = torch.fx.symbolic_trace(neck)
    assert sorted(n.target.__name__ for n in traced.graph.nodes if n.op == "call_function" and getattr(n.target, "fx_wrapped", False)) == sorted(
        n.target.__name__ for n in neck.graph.nodes if n.op == "call_function" and getattr(n.target, "fx_wrapped", False)
    )


def test_the_weighted_sum_is_graph_ops_on_its_weight():
    neck = pyramidgraph.compile("bifpn")
    fuse = [n for n in neck.graph.nodes if n.op == "get_attr"]
    assert len(fuse) == 3 * 8 and all(n.target.endswith(".fuse.weight") for n in fuse)
    assert not any(n.op == "call_module" and n.target.endswith(".fuse") for n in neck.graph.nodes)
    first = fuse[0]
    assert first.target == "cell0.P6_td.fuse.weight" and tuple(neck.get_parameter(first.target).shape) == (2,)
    users = [n.target for n in first.users]
    assert users == [torch.nn.functional.relu]
    assert sum(n.target is operator.mul for n in neck.graph.nodes) == sum(len(neck.get_parameter(n.target)) for n in fuse)
