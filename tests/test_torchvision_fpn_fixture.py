"""The bundled fpn spec is torchvision's FPN: same weights, same numbers.

The full parity layer (every fixture, declarative key maps, `from_reference`) is its own
issue; this one check pins the core's numerics (lateral 1x1, nearest top-down by size, 3x3
output convs, max-pool P6) against a recording of torchvision itself.
"""

import torch
from recorded import SHARED, load_case

import pyramidgraph

FIXTURE = SHARED / "tv_fpn_maxpool.pt"


def test_fpn_spec_reproduces_torchvision_fpn_with_maxpool():
    case = load_case(FIXTURE)
    config = case["config"]
    assert config["extra_blocks"] == "LastLevelMaxPool"
    neck = pyramidgraph.compile("fpn", config["in_channels_list"], channels=config["out_channels"]).eval()
    state = {}
    for i, level in enumerate(range(2, 2 + len(config["in_channels_list"]))):
        for kind in ("weight", "bias"):
            state[f"L{level}.post0.{kind}"] = case["state_dict"][f"inner_blocks.{i}.0.{kind}"]
            state[f"P{level}.post0.{kind}"] = case["state_dict"][f"layer_blocks.{i}.0.{kind}"]
    neck.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in neck.parameters()) == 44800  # fixtures/index.json num_params
    with torch.no_grad():
        outputs = neck(dict(zip(neck.input_names, case["inputs"])))
    assert len(outputs) == len(case["outputs"]) == 5
    for ours, ref in zip(outputs, case["outputs"]):
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_keys_the_converter_does_not_model_are_refused_not_ignored():
    """A norm_layer, or a misspelt key, would otherwise be dropped and the numbers differ from torchvision's."""
    import pytest

    from pyramidgraph.interop import conversion

    base = {"in_channels_list": [8, 16], "out_channels": 8}
    with pytest.raises(pyramidgraph.SpecError, match="norm_layer 'BatchNorm2d' is not supported"):
        conversion("torchvision.FeaturePyramidNetwork", {**base, "norm_layer": "BatchNorm2d"})
    with pytest.raises(pyramidgraph.SpecError, match="unknown config key 'extra_block'; did you mean 'extra_blocks'"):
        conversion("torchvision.FeaturePyramidNetwork", {**base, "extra_block": "LastLevelMaxPool"})
    with pytest.raises(pyramidgraph.SpecError, match=r"in_channels_list widths must be positive integers \(torchvision refuses 0\)"):
        conversion("torchvision.FeaturePyramidNetwork", {**base, "in_channels_list": [8, 0]})
    assert conversion("torchvision.FeaturePyramidNetwork", {**base, "norm_layer": None}).spec == "fpn"
