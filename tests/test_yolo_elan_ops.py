"""The YOLOv9/YOLOv10 block ops against ultralytics 8.4's modules, recorded.

Each recording (tests/data/ultralytics_blocks/<case>.pt, made by record_elan.py there) holds one
ultralytics module's random weights, a batch of 2 at an odd map size and its eval-mode output.
The op under test is compiled into a one-node neck (a post op after an input, a resample op on the
edge to a node one level coarser), the recorded ``state_dict`` is loaded under the op's module
path, and the neck must give the recorded output, shape included, with the reference's parameters
and keys exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.ops import POST, RESAMPLE
from pyramidgraph.shape import FeatureShape

DATA = Path(__file__).resolve().parent / "data" / "ultralytics_blocks"
TOLERANCE = 1e-5

# case -> (op name, op parameters, kind). The ultralytics positional args after (c1, c2) map to
# the parameters as the YAML importer maps them; c1 is the input's width, c2 the node's.
CASES = {
    "rep_ncsp_elan4": ("rep_ncsp_elan4", {"hidden": 32, "block": 16, "blocks": 1}, "post"),
    "rep_ncsp_elan4_n2_relu": ("rep_ncsp_elan4", {"hidden": 24, "block": 16, "blocks": 2, "act": "relu"}, "post"),
    "elan1": ("elan1", {"hidden": 32, "block": 16}, "post"),
    "elan1_odd_hidden": ("elan1", {"hidden": 19, "block": 8}, "post"),
    "adown": ("adown", {}, "edge"),
    "aconv": ("aconv", {}, "edge"),
    "scdown": ("scdown", {"kernel": 3, "stride": 2}, "edge"),
    "scdown_k5": ("scdown", {"kernel": 5, "stride": 2}, "edge"),
    "c2f_cib": ("c2f_cib", {"blocks": 1, "shortcut": True, "lk": False}, "post"),
    "c2f_cib_lk_n2_relu": ("c2f_cib", {"blocks": 2, "shortcut": True, "lk": True, "act": "relu"}, "post"),
}

# What ultralytics' modules hold (sum of parameter numels, from the recordings' builds).
NUM_PARAMS = {
    "rep_ncsp_elan4": 11296,
    "rep_ncsp_elan4_n2_relu": 13568,
    "elan1": 7616,
    "elan1_odd_hidden": 2486,
    "adown": 3936,
    "aconv": 8720,
    "scdown": 2160,
    "scdown_k5": 1696,
    "c2f_cib": 8688,
    "c2f_cib_lk_n2_relu": 10112,
}

# Output (C, H, W) for the recorded input sizes: ADown and AConv give floor(side / 2) (15x13 -> 7x6),
# SCDown's 3x3 / 5x5 stride-2 conv ceil(side / 2) (15x13 -> 8x7, 13x11 -> 7x6).
OUT_SHAPES = {
    "rep_ncsp_elan4": (32, 15, 13),
    "rep_ncsp_elan4_n2_relu": (40, 9, 11),
    "elan1": (32, 15, 13),
    "elan1_odd_hidden": (24, 7, 9),
    "adown": (48, 7, 6),
    "aconv": (40, 7, 6),
    "scdown": (48, 8, 7),
    "scdown_k5": (32, 7, 6),
    "c2f_cib": (48, 15, 13),
    "c2f_cib_lk_n2_relu": (32, 11, 9),
}


def _spec(op: str, params: dict, kind: str, cin: int, cout: int) -> dict:
    item = {op: params}
    if kind == "post":
        node = {"channels": cout, "from": ["C3"], "post": [item]}
    else:
        node = {"level": 4, "channels": cout, "from": [{"from": "C3", "down": item}]}
    return {
        "pyramidgraph": 1,
        "inputs": {"C3": {"level": 3, "channels": cin}},
        "defaults": {"fuse": "concat", "resample": {"project": "none"}},
        "nodes": {"N": node},
        "outputs": ["N"],
    }


def _compile(case: str) -> tuple[pyramidgraph.PyramidNeck, dict, str]:
    recorded = torch.load(DATA / f"{case}.pt", weights_only=False)
    op, params, kind = CASES[case]
    _batch, cin, height, width = recorded["input"].shape
    cout = recorded["output"].shape[1]
    neck = pyramidgraph.compile(_spec(op, params, kind, cin, cout), image=(8 * height, 8 * width))
    prefix = "N.post0." if kind == "post" else "N.from_C3."
    return neck, recorded, prefix


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_ultralytics(case):
    neck, recorded, prefix = _compile(case)
    mapped = {prefix + key: value for key, value in recorded["state_dict"].items()}
    assert set(neck.state_dict()) == set(mapped)
    neck.load_state_dict(mapped, strict=True)
    neck.eval()
    with torch.no_grad():
        (ours,) = neck([recorded["input"]])
    reference = recorded["output"]
    assert tuple(ours.shape) == tuple(reference.shape) == (2, *OUT_SHAPES[case])
    error = (ours - reference).abs().max().item()
    assert error <= TOLERANCE, f"{case}: max abs error {error:.3g}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_parameter_count_and_inferred_shape(case):
    neck, recorded, _prefix = _compile(case)
    assert recorded["num_params"] == NUM_PARAMS[case]
    assert sum(p.numel() for p in neck.parameters()) == NUM_PARAMS[case]
    (_name, shape), = neck.info.outputs
    channels, height, width = OUT_SHAPES[case]
    assert shape == FeatureShape(channels, 4 if CASES[case][2] == "edge" else 3, (height, width))


@pytest.mark.parametrize("case", sorted(CASES))
def test_weight_estimate_counts_the_reference_state(case):
    """The validation-time estimate is exact for these blocks: parameters and BN buffers."""
    recorded = torch.load(DATA / f"{case}.pt", weights_only=False)
    op, params, kind = CASES[case]
    registry = POST if kind == "post" else RESAMPLE
    cin, cout = recorded["input"].shape[1], recorded["output"].shape[1]
    instance = registry.make({op: params})
    level = 4 if kind == "edge" else 3
    estimate = instance.weight_estimate([FeatureShape(cin, 3)], FeatureShape(cout, level))
    assert estimate == sum(v.numel() for v in recorded["state_dict"].values())


def test_rep_act_stays_silu_when_act_changes():
    """RepConv's SiLU is its own: with act relu and rep_act relu too, the recorded output (built
    with Conv.default_act = ReLU, RepConv keeping SiLU) is no longer matched."""
    case = "rep_ncsp_elan4_n2_relu"
    recorded = torch.load(DATA / f"{case}.pt", weights_only=False)
    op, params, kind = CASES[case]
    spec = _spec(op, dict(params, rep_act="relu"), kind, recorded["input"].shape[1], recorded["output"].shape[1])
    neck = pyramidgraph.compile(spec)
    neck.load_state_dict({"N.post0." + k: v for k, v in recorded["state_dict"].items()})
    neck.eval()
    with torch.no_grad():
        (ours,) = neck([recorded["input"]])
    assert (ours - recorded["output"]).abs().max().item() > 1e-2


def test_adown_output_is_one_short_of_the_backbone_on_odd_maps():
    """15x13 at level 3 -> 7x6 through ADown, while a level-4 input of a 120x104 image is 15x13
    halved up (8x7): ultralytics' sizes, so a concat of the two does not line up."""
    spec = _spec("adown", {}, "edge", 32, 48)
    spec["inputs"]["C4"] = {"level": 4, "channels": 16}
    spec["nodes"]["N"]["from"].append("C4")
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec, image=(120, 104))
    assert "inputs of 'N' do not line up: 'C3' gives 7x6, 'C4' gives 8x7" in str(info.value)


@pytest.mark.parametrize(
    ("op", "params", "kind", "cin", "cout", "image", "message"),
    [
        ("adown", {}, "edge", 32, 47, (120, 104), "nodes.N: input 'C3': adown splits its output in two halves, so its output width must be even, got 47"),
        ("adown", {}, "edge", 31, 48, (120, 104), "nodes.N: input 'C3': adown splits its input in two halves, so its input width must be even, got 31"),
        ("aconv", {}, "edge", 32, 48, (8, 8), "nodes.N: input 'C3': aconv: its 2x2 average pool needs a map of at least 2x2, got 1x1; use a larger input"),
        ("rep_ncsp_elan4", {"hidden": 32, "block": 1}, "post", 32, 32, None, "rep_ncsp_elan4: block (c4) must be at least 2, got 1 (each RepCSP's hidden width is c4 // 2)"),
        ("elan1", {"hidden": 1}, "post", 32, 32, None, "elan1: hidden (c3) must be at least 2, got 1 (cv1's output is split in two halves)"),
    ],
)
def test_bad_parameters_are_refused(op, params, kind, cin, cout, image, message):
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec(op, params, kind, cin, cout), image=image)
    assert message in str(info.value)


def test_adown_refuses_an_edge_that_does_not_go_down():
    spec = _spec("adown", {}, "edge", 32, 48)
    spec["nodes"]["N"] = {"level": 3, "channels": 48, "from": [{"from": "C3", "via": ["adown"]}]}
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec)
    assert "adown halves the map (one level down), but this edge goes from level 3 to level 3; use it on an edge to a coarser node" in str(info.value)


def test_scdown_after_a_fusion_keeps_the_level():
    spec = _spec("scdown", {"kernel": 3}, "post", 32, 48)
    neck = pyramidgraph.compile(spec, image=(120, 104))
    assert neck.info.outputs[0][1] == FeatureShape(48, 3, (15, 13))
    assert tuple(neck.get_submodule("N.post0.cv2.conv").weight.shape) == (48, 1, 3, 3)
    spec = _spec("scdown", {"kernel": 3, "stride": 2}, "post", 32, 48)
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec)
    assert "scdown after a fusion keeps the node's level: stride must be 1, not 2; stride on an edge instead" in str(info.value)
