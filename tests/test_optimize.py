"""The optimize stage (pyramidgraph/optimization.py): levels and backends, the inference
program's choice of forward, its derived weights following the parameters (loads, optimiser
steps, dtype), copies and pickles, gradients of training-level optimisation, and every
bundled spec computing the same at every level. Each pass has its own file in tests/passes."""

from __future__ import annotations

import copy
import pickle
import sys
from pathlib import Path

import pytest
import torch
from speclib import small_args

import pyramidgraph
from pyramidgraph import SpecError

sys.path.insert(0, str(Path(__file__).parent / "passes"))
from fx_checker import assert_as_accurate, assert_same_gradients, assert_same_outputs, base_neck, optimised_copy  # noqa: E402

SPECS = sorted(pyramidgraph.bundled_specs())


def test_unknown_level_and_backend_are_spec_errors_with_a_suggestion():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("fpn", optimize="inferense", backend="compiled")
    assert [i.message for i in info.value.issues] == [
        "unknown backend 'compiled'; did you mean 'compile'?; the backends are eager, compile",
        "unknown optimize level 'inferense'; did you mean 'inference'?; the levels are none, train, inference",
    ]
    assert [i.path for i in info.value.issues] == ["backend", "optimize"]
    assert info.value.issues[0].file.endswith("fpn.yaml")


@pytest.mark.parametrize("spec", SPECS)
def test_every_bundled_spec_computes_the_same_at_every_level(spec):
    neck = base_neck(spec, **small_args(spec))
    inputs = neck.example_inputs(batch=2)
    for level in ("train", "inference"):
        fast = optimised_copy(neck, level).eval()
        assert list(fast.state_dict()) == list(neck.state_dict())
        assert_as_accurate(neck, fast, inputs)
    again = pyramidgraph.optimize(copy.deepcopy(fast), "inference")
    assert again.code == fast.code and again.inference_code == fast.inference_code  # from the spec's graph each time


def _calls(neck) -> list[str]:
    """Which forward ran: the inference program records itself."""
    seen: list[str] = []
    program = neck.__dict__["_inference"]
    forward = program.forward

    def recording(*args, **kwargs):
        seen.append("program")
        return forward(*args, **kwargs)

    program.forward = recording
    return seen


def test_the_program_runs_in_eval_mode_without_autograd_only():
    neck = pyramidgraph.compile("yolov8", optimize="inference")
    seen = _calls(neck)
    inputs = neck.example_inputs(image=128)
    neck.eval()
    with torch.no_grad():
        neck(inputs)
    with torch.inference_mode():
        neck(inputs)
    assert seen == ["program", "program"]
    out = neck(inputs)  # eval with gradients: the graph, so gradients reach the parameters
    out[0].sum().backward()
    assert neck.P4_td.post0.cv1.conv.weight.grad is not None
    neck.train()
    with torch.no_grad():
        neck(inputs)
    assert seen == ["program", "program"]


def test_checkpoints_load_strictly_by_spec_names_and_the_program_follows():
    reference = base_neck("bifpn", channels=16, cells=2)
    fast = pyramidgraph.compile("bifpn", channels=16, cells=2, optimize="inference").eval()
    assert set(fast.state_dict()) == set(reference.state_dict())
    fast.load_state_dict(reference.state_dict(), strict=True)
    inputs = reference.example_inputs(batch=2, image=128)
    assert_same_outputs(reference, fast, inputs)


def test_an_optimiser_step_refolds_before_the_next_evaluation():
    neck = base_neck("yolov8")
    fast = optimised_copy(neck, "inference")
    inputs = neck.example_inputs(image=128)
    for module in (neck, fast):
        module.train()
        optimiser = torch.optim.SGD(module.parameters(), lr=0.1)
        sum(o.square().mean() for o in module(inputs)).backward()
        optimiser.step()
        module.eval()
    assert_same_outputs(neck, fast, inputs)


def test_dtype_and_copies_keep_the_program_consistent():
    neck = base_neck("yolo11")
    fast = optimised_copy(neck, "inference")
    inputs = neck.example_inputs(image=128)
    double = copy.deepcopy(fast).double()
    with torch.no_grad():
        out = double([x.double() for x in inputs])
    assert all(o.dtype == torch.float64 for o in out)
    assert_same_outputs(neck, copy.deepcopy(fast), inputs)
    restored = pickle.loads(pickle.dumps(fast)).eval()
    assert restored.info.optimize == "inference" and restored.inference_code == fast.inference_code
    assert_same_outputs(neck, restored, inputs)


@pytest.mark.parametrize("spec, args", [("bifpn", {"channels": 16, "cells": 2}), ("yolo11", {}), ("rtdetr_hybrid_encoder", {}), ("pafpn", {"channels": 16})])
def test_training_level_optimisation_keeps_gradients(spec, args):
    neck = base_neck(spec, **args).train()
    fast = optimised_copy(neck, "train").train()
    inputs = neck.example_inputs(batch=4, image=256)
    assert_same_gradients(neck, fast, inputs)
    running = {k: v for k, v in neck.state_dict().items() if "running" in k}
    for key, value in fast.state_dict().items():
        if key in running:
            torch.testing.assert_close(value, running[key], rtol=1e-5, atol=1e-6)


def test_backend_compile_wraps_the_call_and_keeps_the_module():
    neck = pyramidgraph.compile("fpn", channels=16, optimize="inference", backend="compile")
    assert isinstance(neck, pyramidgraph.PyramidNeck)
    assert neck._compiled_call_impl is not None  # nn.Module.compile: torch.compile on the first call
    assert neck.info.rebuild["backend"] == "compile"
    assert "_orig_mod" not in "".join(neck.state_dict())


@pytest.mark.slow
def test_torch_compile_of_the_program_does_not_recompile_per_size():
    import torch._dynamo

    torch._dynamo.reset()
    neck = pyramidgraph.compile("fpn", channels=16, optimize="inference", backend="compile").eval()
    from torch._dynamo.utils import counters

    eager = pyramidgraph.compile("fpn", channels=16, optimize="inference").eval()
    eager.load_state_dict(neck.state_dict())
    counters.clear()
    with torch.no_grad():
        for image in (128, 160, 192, 224):
            inputs = neck.example_inputs(image=image)
            torch.testing.assert_close(neck(inputs)[0], eager(inputs)[0], rtol=1e-4, atol=1e-4)
    assert counters["stats"]["unique_graphs"] <= 2  # the first size, then one dynamic graph


def test_bfloat16_autocast_stays_within_two_percent():
    neck = base_neck("yolov8")
    fast = optimised_copy(neck, "inference")
    inputs = neck.example_inputs(batch=2, image=128)
    with torch.no_grad():
        exact = neck(inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = fast(inputs)
    for a, b in zip(exact, mixed):
        assert ((b.float() - a).abs().max() / a.abs().max()).item() < 0.02


def test_the_generated_code_has_no_python_loops_or_branches():
    neck = pyramidgraph.compile("bifpn", optimize="inference")
    for code in (neck.code, neck.inference_code):
        body = [line.strip() for line in code.splitlines()]
        assert not [line for line in body if line.startswith(("for ", "while ", "if ", "try:"))]
        assert not [line for line in body if "{" in line]  # no dict built per call


def test_a_node_cannot_take_the_name_of_a_derived_weight():
    spec = "pyramidgraph: 1\nname: clash\ninputs:\n  C4: {level: 4, channels: 8}\nnodes:\n  derived_p4: {from: [C4], post: [conv3x3]}\noutputs: [derived_p4]\n"
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec)
    assert [(i.line, i.path, i.message) for i in info.value.issues] == [
        (6, "nodes.derived_p4", "'derived_p4' starts with 'derived_', the names of the weights an optimised neck derives from its parameters; choose another name, such as 'p4_'")
    ]
