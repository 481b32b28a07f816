"""pyramidgraph.ops.yolo_csp: each op, alone in a one-node spec and loaded with an ultralytics 8.4
module's randomised state_dict, computes the module's recorded output (tests/data/ultralytics_blocks,
recorded by record_csp.py there) with the same state_dict keys and parameter count; bad widths,
kernels, groups and heads are spec errors that say what to change."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.ops import POST, RESAMPLE
from pyramidgraph.shape import FeatureShape

DATA = Path(__file__).resolve().parent / "data" / "ultralytics_blocks"

# recorded case -> (the op as a spec writes it, where it sits). The op's fields are the module's
# positional args after (c1, c2) in the contract's order; widths come from the recorded tensors.
POST_CASE, EDGE_CASE = "post", "edge"
CASES: dict[str, tuple[dict, str]] = {
    "c3_shortcut": ({"c3": {"blocks": 2, "shortcut": True}}, POST_CASE),
    "c3_plain_groups": ({"c3": {"blocks": 2, "shortcut": False, "groups": 2}}, POST_CASE),
    "c3k2_bottleneck": ({"c3k2": {"blocks": 2, "c3k": False}}, POST_CASE),
    "c3k2_c3k": ({"c3k2": {"blocks": 2, "c3k": True, "groups": 2}}, POST_CASE),
    "c3k2_attn": ({"c3k2": {"blocks": 1, "attn": True}}, POST_CASE),
    "c3k2_attn_two_heads": ({"c3k2": {"blocks": 1, "expansion": 2.0, "attn": True, "shortcut": False}}, POST_CASE),
    "c2_shortcut": ({"c2": {"blocks": 2, "shortcut": True}}, POST_CASE),
    "c2_plain": ({"c2": {"blocks": 1, "shortcut": False, "groups": 2}}, POST_CASE),
    "bottleneck_shortcut": ({"bottleneck": {"shortcut": True}}, POST_CASE),
    "bottleneck_wider_no_add": ({"bottleneck": {"shortcut": True, "groups": 2, "kernels": [1, 3], "expansion": 0.75}}, POST_CASE),
    "spp": ({"spp": {"kernels": [5, 9, 13]}}, POST_CASE),
    "sppf_legacy": ({"sppf": {"kernel": 5}}, POST_CASE),
    "sppf_yolo26": ({"sppf": {"kernel": 5, "repeats": 3, "shortcut": True, "cv1_act": False}}, POST_CASE),
    "ghost_conv": ({"ghost_conv": {"kernel": 3, "stride": 1}}, POST_CASE),
    "ghost_conv_stride2": ({"ghost_conv": {"kernel": 3, "groups": 2}}, EDGE_CASE),
    "c3ghost": ({"c3ghost": {"blocks": 2}}, POST_CASE),
}

# max |ours - ultralytics| per case, filled in by the parity test (printed with -s at the end)
ERRORS: dict[str, float] = {}


def _spec(op: dict, where: str, cin: int, cout: int) -> dict:
    """A one-node neck: input C3 -> node N running ``op`` (after the input, or on the edge from
    C3 down to level 4), with no projection in between."""
    node = {"from": ["C3"], "channels": cout, "post": [op]} if where == POST_CASE else {"level": 4, "from": [{"from": "C3", "down": op}], "channels": cout}
    return {
        "pyramidgraph": 1,
        "name": "one_block",
        "inputs": {"C3": {"level": 3, "channels": cin}},
        "defaults": {"resample": {"project": "none"}},
        "nodes": {"N": node},
        "outputs": ["N"],
    }


def _load(case: str) -> dict:
    return torch.load(DATA / f"{case}.pt", weights_only=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_block_matches_ultralytics(case):
    recorded = _load(case)
    op, where = CASES[case]
    x, expected = recorded["input"], recorded["output"]
    neck = pyramidgraph.compile(_spec(op, where, x.shape[1], expected.shape[1]))
    prefix = "N.post0." if where == POST_CASE else "N.from_C3."
    assert sorted(k.removeprefix(prefix) for k in neck.state_dict()) == sorted(recorded["state_dict"])
    neck.load_state_dict({prefix + k: v for k, v in recorded["state_dict"].items()}, strict=True)
    neck.eval()
    with torch.no_grad():
        (y,) = neck([x])
    assert tuple(y.shape) == tuple(expected.shape)
    error = (y - expected).abs().max().item()
    ERRORS[case] = error
    assert error <= 1e-5, f"{case}: max abs error {error:.3g}"
    assert sum(p.numel() for p in neck.parameters()) == recorded["num_params"]


def test_output_shapes_are_the_recorded_ones():
    """The recorded shapes themselves, so that a re-recording that changed a case shows."""
    shapes = {case: (tuple(_load(case)["input"].shape), tuple(_load(case)["output"].shape)) for case in ("c3k2_attn_two_heads", "sppf_yolo26", "ghost_conv_stride2", "c3ghost")}
    assert shapes == {
        "c3k2_attn_two_heads": ((2, 32, 5, 4), (2, 64, 5, 4)),
        "sppf_yolo26": ((2, 32, 7, 10), (2, 32, 7, 10)),
        "ghost_conv_stride2": ((2, 32, 9, 12), (2, 48, 5, 6)),
        "c3ghost": ((2, 32, 7, 10), (2, 48, 7, 10)),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_weight_estimate_counts_the_reference_state_dict(case):
    """``weight_estimate`` is exact for these blocks: every parameter and buffer (BN statistics
    and ``num_batches_tracked`` included) of the ultralytics module's state_dict."""
    recorded = _load(case)
    item, where = CASES[case]
    registry = POST if where == POST_CASE else RESAMPLE
    op = registry.make(item)
    cin, cout = recorded["input"].shape[1], recorded["output"].shape[1]
    estimate = op.weight_estimate([FeatureShape(cin, 3)], FeatureShape(cout, 3 if where == POST_CASE else 4))
    assert estimate == sum(v.numel() for v in recorded["state_dict"].values())


def test_sppf_cv1_activation_is_what_parse_model_gives():
    """The legacy row's cv1 is activated, YOLO26's is linear: loading one's weights into the other
    form gives different numbers (the flag matters)."""
    recorded = _load("sppf_legacy")
    assert recorded["cv1_act"] is True and _load("sppf_yolo26")["cv1_act"] is False
    neck = pyramidgraph.compile(_spec({"sppf": {"cv1_act": False}}, POST_CASE, 32, 48))
    neck.load_state_dict({"N.post0." + k: v for k, v in recorded["state_dict"].items()})
    with torch.no_grad():
        (y,) = neck.eval()([recorded["input"]])
    assert (y - recorded["output"]).abs().max().item() > 1e-2


@pytest.mark.parametrize(
    ("op", "cin", "cout", "message"),
    [
        (
            {"c3k2": {"attn": True}}, 32, 400,
            "c3k2: attn splits the hidden width 200 into max(200 // 64, 1) = 3 heads, which does not divide it; choose a width or expansion that it divides",
        ),
        ({"c3": {"expansion": 0.1}}, 32, 8, "c3: the hidden width int(out * expansion) is 0; raise expansion or the width"),
        ({"c2": {"groups": 3}}, 32, 32, "c2 bottleneck: groups=3 must divide the widths of its grouped conv, got 16 -> 16"),
        ({"sppf": {"kernel": 4}}, 32, 32, "sppf: kernel must be odd (padding k // 2 keeps the map's size), got 4"),
        ({"spp": {"kernels": [0, 3]}}, 32, 32, "spp: kernels must be at least 1, got 0, 3"),
        (
            {"c3ghost": {"expansion": 0.25}}, 32, 24,
            "c3ghost: the hidden width int(out * expansion) must be a multiple of 4 (each GhostConv of a Ghost bottleneck halves it), got 6",
        ),
        ({"ghost_conv": {"kernel": 3}}, 32, 33, "ghost_conv: the width must be even (half from cv1, half from its cheap depthwise cv2), got 33"),
        ({"bottleneck": {"kernels": [3, 3, 3]}}, 32, 32, "bottleneck: kernels are the two convs' kernels, [cv1, cv2], not [3, 3, 3]"),
    ],
)
def test_bad_parameters_are_spec_errors(op, cin, cout, message):
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec(op, POST_CASE, cin, cout))
    assert [issue.message for issue in info.value.issues] == [message]


def test_ghost_conv_on_an_edge_needs_the_level_change_as_stride():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec({"ghost_conv": {"kernel": 3, "stride": 1}}, EDGE_CASE, 32, 48))
    assert [issue.message for issue in info.value.issues] == ["input 'C3' (32 channels at level 3) through [ghost3x3] gives 48 channels at level 3, but 'N' needs 48 at level 4"]


def test_zz_report_errors(capsys):
    """Print the parity figures (run with -s); runs last by name."""
    with capsys.disabled():
        for case, error in sorted(ERRORS.items()):
            print(f"  {case}: max abs error {error:.2e}")
