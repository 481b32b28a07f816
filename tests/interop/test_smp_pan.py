"""The bundled ``pan_attention`` spec and ``from_reference("smp.PANDecoder")``.

Parity with segmentation-models-pytorch 0.6.0's ``PANDecoder`` is the recorded case
``../shared/fixtures/necks/smp_pan_decoder.pt`` (50,695 parameters, output stride 16) and the
repository's own recordings ``tests/interop/fixtures/smp_pan_*.pt`` (encoder depths 3, 4 and 5,
output strides 16 and 32, every interpolation mode; ``tests/interop/test_fixtures.py`` runs
them). Without them, the whole decoder is checked here against a direct computation (the
``fpa_directly`` / ``gau_directly`` of ``tests/test_attention_pooling.py``) at odd sizes in
both layouts, the converter's key map against smp's names written out here, and its refusals.
"""

from __future__ import annotations

import pytest
import torch
from recorded import SHARED, load_case
from test_attention_pooling import fpa_directly, gau_directly, randomised

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

CASE = SHARED / "necks" / "smp_pan_decoder.pt"
SOURCE = "smp.PANDecoder"


def test_from_reference_reproduces_the_recorded_smp_case():
    case = load_case(CASE)
    assert case["config"] == {"encoder_channels": [3, 16, 16, 32, 64, 128], "encoder_depth": 5, "decoder_channels": 32, "interpolation_mode": "bilinear", "strides": [4, 8, 16, 16]}
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple) and [tuple(o.shape) for o in outputs] == [(2, 32, 32, 32)]
    ref = case["outputs"][0]
    assert (outputs[0] - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 50_695


@pytest.mark.parametrize(
    "in_channels,expected",
    [
        ([256, 512, 1024, 2048], 751_495),  # ResNet-101 (the paper's backbone): smp PANDecoder([3, 64, 256, 512, 1024, 2048], 5, 32)
        ([64, 128, 256, 512], 190_855),  # resnet34, smp.PAN's default encoder: its decoder
    ],
)
def test_parameter_counts_are_smps(in_channels, expected):
    """Counted with segmentation-models-pytorch 0.6.0 in the peers environment."""
    neck = pyramidgraph.compile("pan_attention", in_channels)
    assert sum(p.numel() for p in neck.parameters()) == expected


def _decoder_directly(sd: dict, inputs: list[torch.Tensor]) -> torch.Tensor:
    """PANDecoder.forward on features[2:]: the FPA on the deepest, then a GAU per finer map."""
    top = 2 + len(inputs) - 1
    out = fpa_directly(sd, f"P{top}.post0", inputs[-1])
    for level in range(top - 1, 1, -1):
        out = gau_directly(sd, f"P{level}.op", inputs[level - 2], out)
    return out


# (input widths, image, input strides): the stride-16 layout repeats the last stride
LAYOUTS = {
    "d5_stride16_odd": ([6, 10, 12, 16], (136, 120), [4, 8, 16, 16]),
    "d5_stride32_odd": ([6, 10, 12, 16], (264, 296), [4, 8, 16, 32]),
    "d4_odd": ([6, 10, 12], (136, 152), [4, 8, 16]),
    "d3": ([6, 10], (72, 64), [4, 8]),
    "five_inputs": ([4, 6, 10, 12, 16], (520, 536), [4, 8, 16, 32, 64]),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_decoder_is_the_direct_computation(layout):
    widths, (height, width), strides = LAYOUTS[layout]
    neck = randomised(pyramidgraph.compile("pan_attention", widths, channels=8))
    torch.manual_seed(0)
    inputs = [torch.randn(2, c, -(-height // s), -(-width // s)) for c, s in zip(widths, strides)]
    with torch.no_grad():
        (ours,) = neck(inputs)
        direct = _decoder_directly(neck.state_dict(), inputs)
    assert ours.shape == (2, 8, -(-height // 4), -(-width // 4))
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def _smp_names(depth: int) -> dict[str, str]:
    """smp's module paths (``PANDecoder.state_dict``) -> the spec's, written out for depth 3..5."""
    top = depth  # features[2:] are C2 .. C<depth>
    names = {"fpa.branch1.1": "pooled", "fpa.mid.0": "mid", "fpa.down1.1": "down1", "fpa.down2.1": "down2", "fpa.down3.1": "down3.0", "fpa.down3.2": "down3.1", "fpa.conv2": "conv2", "fpa.conv1": "conv1"}
    table = {ref: f"P{top}.post0.{ours}" for ref, ours in names.items()}
    gaus = {3: {"gau1": "P2"}, 4: {"gau2": "P3", "gau1": "P2"}, 5: {"gau3": "P4", "gau2": "P3", "gau1": "P2"}}[depth]
    for gau, node in gaus.items():
        table[f"{gau}.conv2"] = f"{node}.op.conv"
        table[f"{gau}.conv1.1"] = f"{node}.op.gate"
    return table


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_a_checkpoint_under_smps_names_loads_into_the_same_neck(depth):
    config = {"encoder_channels": [3, 4, 6, 8, 12, 16][: depth + 1], "encoder_depth": depth, "decoder_channels": 8}
    plan = conversion(SOURCE, config)
    assert (plan.spec, plan.in_channels, plan.params, plan.return_type) == ("pan_attention", [6, 8, 12, 16][: depth - 1], {"channels": 8, "first_level": 2, "mode": "bilinear"}, "tuple")
    ours = randomised(pyramidgraph.compile("pan_attention", plan.in_channels, channels=8))
    table = _smp_names(depth)
    checkpoint = {}
    for ref, path in table.items():
        for leaf in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
            checkpoint[f"{ref}.{leaf}"] = ours.state_dict()[f"{path}.{leaf}"]
    assert len(checkpoint) == len(ours.state_dict()) == 7 * (8 + 2 * (depth - 2))  # 98 keys at depth 5, as the recorded case
    loaded = from_reference(SOURCE, config, checkpoint).eval()
    inputs = [torch.randn(2, c, -(-136 // s), -(-120 // s)) for c, s in zip(plan.in_channels, [4, 8, 16, 16])]
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs)[0], ours(inputs)[0], rtol=0, atol=0)


def test_every_interpolation_mode_and_the_input_strides():
    base = {"encoder_channels": [3, 4, 6, 8], "encoder_depth": 3, "decoder_channels": 8}
    for mode in ("nearest", "bilinear", "bicubic", "area", "nearest-exact"):
        assert conversion(SOURCE, {**base, "interpolation_mode": mode}).params["mode"] == mode
    assert conversion(SOURCE, {**base, "strides": [4, 8]}).in_channels == [6, 8]
    # PANDecoder never reads the strides; the finest sets the nodes' levels (stride 8: P3, P4)
    plan = conversion(SOURCE, {**base, "strides": [8, 16]})
    assert plan.params["first_level"] == 3 and plan.key_map.target("gau1.conv2.conv.weight") == "P3.op.conv.conv.weight"
    assert plan.key_map.target("fpa.mid.0.conv.weight") == "P4.post0.mid.conv.weight"


BASE = {"encoder_channels": [3, 16, 16, 32, 64, 128], "encoder_depth": 5, "decoder_channels": 32}


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"decoder_channel": 32},
            "unknown config key 'decoder_channel'; did you mean 'decoder_channels'? (PANDecoder takes: decoder_channels, encoder_channels, encoder_depth, interpolation_mode, strides)",
        ),
        ({"encoder_depth": 2, "encoder_channels": [3, 16, 16]}, "Encoder depth for PAN decoder cannot be less than 3, got 2 (smp's own refusal)"),
        ({"encoder_depth": "5"}, "encoder_depth must be an integer, 3 or more, not '5'"),
        ({"encoder_channels": [3, 16, 16, 32]}, "encoder_channels [3, 16, 16, 32]: at encoder_depth 5 PANDecoder's gau3 reads features[2:][2], and these give 2 maps (smp fails with an IndexError)"),
        (
            {"encoder_channels": [3, 16, 16, 32, 64]},
            "encoder_channels [3, 16, 16, 32, 64]: at encoder_depth 5 gau3 reads the deepest map, the FPA's input; the spec's GAUs read finer maps only (give encoder_depth + 1 widths)",
        ),
        ({"encoder_channels": [3, 16]}, "encoder_channels must list the encoder's widths (the image, stride 2 and the maps PANDecoder reads, as smp's encoder.out_channels), not [3, 16]"),
        ({"encoder_channels": [3, 16, 16, 32, 0, 128]}, "encoder_channels[4] must be a positive integer, not 0"),
        ({"decoder_channels": 0}, "decoder_channels must be a positive integer, not 0"),
        ({"interpolation_mode": "bilnear"}, "interpolation_mode 'bilnear' is not one of nearest, bilinear, bicubic, area, nearest-exact; did you mean 'bilinear'?"),
        ({"interpolation_mode": "trilinear"}, "interpolation_mode 'trilinear' is not one of nearest, bilinear, bicubic, area, nearest-exact; did you mean 'bilinear'?"),
        ({"upscale_mode": "nearest"}, "PANDecoder takes no upscale_mode (smp.PAN's deprecated name of the mode, which PAN passes on as interpolation_mode): give interpolation_mode"),
        ({"strides": [4, 8, 16, 8]}, "strides [4, 8, 16, 8] must not decrease: PANDecoder reads the encoder's maps finest first"),
        ({"strides": [4, 8, 16]}, "strides must list the 4 input strides (positive integers, one per map of encoder_channels[2:]), not [4, 8, 16]"),
        ({"strides": [6, 12, 24, 48]}, "strides[0] 6 must be a power of two: it sets the finest input's level"),
    ],
)
def test_configs_the_reference_refuses_or_the_spec_cannot_express_are_refused(change, message):
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, {**BASE, **change})
    assert info.value.issues[0].message == message


def test_maps_smp_never_reads_are_optional_inputs():
    """smp builds gau3 at encoder_depth 5 only: a depth-6 encoder's maps 2 and 3 (of features[2:])
    are skipped, and so are maps beyond encoder_depth + 1 widths."""
    deep = conversion(SOURCE, {"encoder_channels": [3, 4, 6, 8, 10, 12, 14], "encoder_depth": 6, "decoder_channels": 2})
    assert deep.params["gau_inputs"] == [1, 0] and deep.key_map.target("fpa.mid.0.conv.weight") == "P6.post0.mid.conv.weight"
    assert deep.key_map.target("gau2.conv2.conv.weight") == "P3.op.conv.conv.weight" and deep.key_map.target("gau3.conv2.conv.weight") is None
    neck = from_reference(SOURCE, {"encoder_channels": [3, 4, 6, 8, 10, 12, 14], "encoder_depth": 6, "decoder_channels": 2}).eval()
    inputs = [torch.randn(1, c, -(-136 // s), -(-136 // s)) for c, s in zip([6, 8, 10, 12, 14], [4, 8, 16, 16, 16])]
    with torch.no_grad():
        reference = neck(inputs)[0]
        changed = neck(inputs[:2] + [inputs[2] + 1, inputs[3] * 2, inputs[4]])[0]  # the unread maps change nothing
    torch.testing.assert_close(changed, reference, rtol=0, atol=0)
    assert "gau_inputs" not in conversion(SOURCE, BASE).params


def test_a_config_without_a_required_key_is_refused():
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, {"encoder_channels": [3, 4, 6, 8], "encoder_depth": 3})
    assert info.value.issues[0].message == "the config has no 'decoder_channels', which PANDecoder needs"
