"""The ``a2c2f`` op: ultralytics 8.4's ``A2C2f`` (YOLO12), both inner kinds, against recorded modules.

The cases in ``data/ultralytics_blocks/a2c2f_*.pt`` were recorded from the real module by
``data/ultralytics_blocks/record_area.py`` (every parameter and buffer randomised, ``gamma``
included; BN eps 1e-3 as ultralytics sets it on a parsed model): C3k stages (YOLO12's head
form, and two stages with groups and no shortcut), attention over the whole map, four areas
with the ``gamma`` residual and ``mlp_ratio`` 1.2 on a square and a non-square map, and two
areas whose runs end in the middle of a row. Each is compiled as a one-node spec, loaded with
the recorded state_dict under the op's prefix and compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph.errors import NeckInputError, SpecError
from pyramidgraph.ops.area_attention import A2C2f, split_into_areas
from pyramidgraph.shape import FeatureShape

DATA = Path(__file__).resolve().parent / "data" / "ultralytics_blocks"
PREFIX = "P4.post0."

EXPECTED = {  # case: (output shape, ultralytics' parameter count), read from the recordings when they were made
    "c3k": ((2, 64, 12, 20), 16832),
    "c3k_two_blocks_no_shortcut": ((2, 64, 9, 7), 26816),
    "area1": ((2, 64, 12, 20), 26368),
    "area4_residual": ((2, 64, 16, 16), 23512),
    "area4_residual_non_square": ((2, 32, 12, 20), 38480),
    "area2_rows_split_mid_row": ((2, 64, 5, 6), 25856),
}


def _spec(width: int, **params) -> dict:
    return {
        "pyramidgraph": 1,
        "inputs": {"C4": {"level": 4}},
        "defaults": {"resample": {"project": "none"}},
        "nodes": {"P4": {"from": ["C4"], "channels": width, "post": [{"a2c2f": params}]}},
        "outputs": ["P4"],
    }


def _params(args: list) -> tuple[int, int, dict]:
    """A2C2f's positional arguments (c1, c2, n, a2, area, residual, mlp_ratio, e, g, shortcut) as the op's fields."""
    c1, c2, n, a2, area, residual, mlp_ratio, e, g, shortcut = args
    return c1, c2, {"blocks": n, "a2": a2, "area": area, "residual": residual, "mlp_ratio": mlp_ratio, "expansion": e, "groups": g, "shortcut": shortcut}


def _loaded(name: str):
    case = torch.load(DATA / f"a2c2f_{name}.pt", weights_only=False)
    c1, c2, params = _params(case["args"])
    neck = pyramidgraph.compile(_spec(c2, **params), [c1])
    neck.load_state_dict({PREFIX + key: value for key, value in case["state_dict"].items()})
    return neck.eval(), case


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_op_computes_what_ultralytics_a2c2f_computes(name):
    neck, case = _loaded(name)
    shape, num_params = EXPECTED[name]
    with torch.no_grad():
        (ours,) = neck([case["input"]])
    assert tuple(ours.shape) == tuple(case["output"].shape) == shape
    assert (ours - case["output"]).abs().max().item() <= 1e-5  # recorded: 0.0 for every case (the same calls in the same order)
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == num_params


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_state_dict_keys_are_ultralytics_under_the_ops_prefix(name):
    case = torch.load(DATA / f"a2c2f_{name}.pt", weights_only=False)
    c1, c2, params = _params(case["args"])
    neck = pyramidgraph.compile(_spec(c2, **params), [c1])
    ours = neck.state_dict()
    assert all(key.startswith(PREFIX) for key in ours)
    assert {key[len(PREFIX):] for key in ours} == set(case["state_dict"])
    assert {key: tuple(value.shape) for key, value in ours.items()} == {PREFIX + key: tuple(value.shape) for key, value in case["state_dict"].items()}


def test_gamma_is_a_parameter_directly_under_the_op_and_learns():
    neck, case = _loaded("area4_residual")
    gamma = dict(neck.named_parameters())["P4.post0.gamma"]
    assert tuple(gamma.shape) == (64,)
    torch.testing.assert_close(gamma.detach(), case["state_dict"]["gamma"], rtol=0, atol=0)
    neck.train()
    (y,) = neck([case["input"]])
    y.square().mean().backward()
    assert gamma.grad is not None and gamma.grad.abs().min().item() > 0  # every channel's scale gets a gradient
    assert neck.state_dict()["P4.post0.m.0.1.attn.qkv.conv.weight"].shape == (96, 32, 1, 1)  # c_ = 32: one head of 32, q|k|v


def test_without_residual_or_attention_there_is_no_gamma():
    for params in ({"a2": True, "residual": False}, {"a2": False, "residual": True}):
        neck = pyramidgraph.compile(_spec(64, **params), [64])
        assert not any(key.endswith("gamma") for key in neck.state_dict())


def test_a_fresh_block_starts_as_ultralytics_does():
    torch.manual_seed(0)
    neck = pyramidgraph.compile(_spec(64, area=4, residual=True), [64])
    state = neck.state_dict()
    assert torch.equal(state["P4.post0.gamma"], torch.full((64,), 0.01))
    qkv = state["P4.post0.m.0.0.attn.qkv.conv.weight"]  # ABlock's convs: truncated normal, std 0.02
    assert 0.018 < qkv.std().item() < 0.022 and abs(qkv.mean().item()) < 0.002
    assert state["P4.post0.cv1.conv.weight"].std().item() > 0.05  # cv1 keeps PyTorch's default (uniform, bound 1/sqrt(64))


def test_the_compiled_block_retraces_with_torch_fx_to_the_same_values():
    neck, case = _loaded("area4_residual_non_square")
    retraced = torch.fx.symbolic_trace(neck)
    with torch.no_grad():
        assert torch.equal(retraced([case["input"]])[0], neck([case["input"]])[0])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_weight_estimate_is_the_exact_count_of_parameters_and_buffers(name):
    case = torch.load(DATA / f"a2c2f_{name}.pt", weights_only=False)
    c1, c2, params = _params(case["args"])
    estimate = A2C2f(**params).weight_estimate([FeatureShape(c1, 4, None)], FeatureShape(c2, 4, None))
    assert estimate == sum(value.numel() for value in case["state_dict"].values())


def test_a_hidden_width_that_is_not_a_multiple_of_32_is_refused():
    with pytest.raises(SpecError) as caught:
        pyramidgraph.compile(_spec(48, a2=False), [32])
    assert str(caught.value) == (
        "<dict>: nodes.P4: a2c2f: the hidden width int(c2 * expansion) = int(48 * 0.5) = 24 must be a multiple of 32 "
        "(ultralytics' attention heads are 32 channels wide, and it asserts this for both a2 kinds); choose a width or expansion that gives one"
    )


def test_a_residual_between_different_widths_is_refused():
    with pytest.raises(SpecError) as caught:
        pyramidgraph.compile(_spec(64, residual=True), [32])
    assert str(caught.value) == (
        "<dict>: nodes.P4: a2c2f with residual adds its input to gamma * output, so the input's 32 channels must equal the output's 64; "
        "set residual: false or make the widths equal"
    )


def test_areas_that_do_not_divide_the_positions_are_refused_at_compile_time():
    with pytest.raises(SpecError) as caught:
        pyramidgraph.compile(_spec(64, area=4), [32], image=80)  # P4 is 5x5: 25 positions
    assert str(caught.value) == (
        "<dict>: nodes.P4: a2c2f: area attention cuts the map's 25 positions (H * W) into area=4 runs of equal length, "
        "so H * W must be a multiple of 4, not 5x5; choose another image size or area"
    )
    pyramidgraph.compile(_spec(64, area=4), [32], image=(80, 64))  # 5x4 = 20 positions: runs of 5, across rows, as in ultralytics
    pyramidgraph.compile(_spec(64, a2=False, area=4), [32], image=80)  # C3k stages ignore area


def test_areas_that_do_not_divide_the_positions_are_refused_when_called():
    neck = pyramidgraph.compile(_spec(64, area=4), [32]).eval()
    with torch.no_grad():
        assert tuple(neck([torch.randn(1, 32, 4, 5)])[0].shape) == (1, 64, 4, 5)
        with pytest.raises(NeckInputError, match=r"a2c2f: area attention cuts the map's 25 positions \(H \* W\) into area=4 runs"):
            neck([torch.randn(1, 32, 5, 5)])
    with pytest.raises(NeckInputError) as caught:
        split_into_areas(torch.zeros(1, 3, 30), 4)  # the call's own check, for sizes the input contract lets through
    assert str(caught.value) == "a2c2f: area attention cuts the map's 30 positions (H * W) into area=4 runs of equal length, so H * W must be a multiple of 4"
    assert tuple(split_into_areas(torch.arange(12.0).reshape(1, 1, 12), 3).shape) == (3, 1, 4)
