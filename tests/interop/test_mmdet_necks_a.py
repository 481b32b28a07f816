"""Five of mmdetection 3.3's necks: HRFPN, ChannelMapper, SSH, DilatedEncoder and CTResNetNeck.

Parity with mmdetection is the recorded cases ``../shared/fixtures/necks/mmdet_<neck>.pt`` (and
the repository's own ``tests/interop/fixtures/mmdet_<neck>_*.pt``, which ``test_fixtures.py``
runs). Without the shared ones, each bundled spec is checked against a direct computation
written here with ``torch.nn.functional`` on the compiled neck's own (randomised) weights at odd
sizes, the recorded configs are converted and counted, and every refusal's message is asserted.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import SHARED, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

NECKS = SHARED / "necks"

# The shared cases' configs (necks/index.json) and parameter counts.
RECORDED = {
    "mmdet_hrfpn": ({"strides": [4, 8, 16, 32], "necks": [{"type": "HRFPN", "in_channels": [16, 32, 64, 128], "out_channels": 32, "num_outs": 5}]}, 53_952, [(32, 16, 16), (32, 8, 8), (32, 4, 4), (32, 2, 2), (32, 1, 1)]),
    "mmdet_channel_mapper": (
        {"strides": [8, 16, 32], "necks": [{"type": "ChannelMapper", "in_channels": [32, 64, 128], "kernel_size": 1, "out_channels": 32, "act_cfg": None, "norm_cfg": {"type": "GN", "num_groups": 8}, "num_outs": 4}]},
        44_288,
        [(32, 8, 8), (32, 4, 4), (32, 2, 2), (32, 1, 1)],
    ),
    "mmdet_ssh": ({"strides": [4, 8, 16, 32], "necks": [{"type": "SSH", "num_scales": 4, "in_channels": [16, 32, 64, 128], "out_channels": [32, 32, 32, 32]}]}, 59_136, [(32, 16, 16), (32, 8, 8), (32, 4, 4), (32, 2, 2)]),
    "mmdet_dilated_encoder": (
        {"strides": [32], "necks": [{"type": "DilatedEncoder", "in_channels": 128, "out_channels": 32, "block_mid_channels": 16, "num_residual_blocks": 4, "block_dilations": [2, 4, 6, 8]}]},
        27_328,
        [(32, 8, 8)],
    ),
    "mmdet_ct_resnet_neck": ({"strides": [32], "necks": [{"type": "CTResNetNeck", "in_channels": 128, "num_deconv_filters": [64, 32, 16], "num_deconv_kernels": [4, 4, 4], "use_dcn": False}]}, 183_232, [(16, 32, 32)]),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_from_reference_reproduces_the_recorded_case(name):
    config, count, shapes = RECORDED[name]
    case = load_case(NECKS / f"{name}.pt")
    assert case["config"] == config and case["num_params"] == count
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple)
    assert [tuple(o.shape) for o in outputs] == [(2, *s) for s in shapes]
    for ours, ref in zip(outputs, case["outputs"], strict=True):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == count


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_recorded_configs_convert_and_count_without_the_recording(name):
    config, count, shapes = RECORDED[name]
    neck = from_reference("mmdet", config)
    assert sum(p.numel() for p in neck.parameters()) == count
    assert [(s.channels, s.stride) for s in neck.output_shapes.values()] == [(c, config["strides"][0] * 2**i if name != "mmdet_ct_resnet_neck" else 4) for i, (c, _, _) in enumerate(shapes)]


def test_the_key_maps_follow_the_reference_names():
    def prefixes(name):
        return conversion("mmdet", RECORDED[name][0]).key_map.prefixes

    hrfpn = {"reduction_conv": "R.post0", "fpn_convs.0": "P2.from_R.via0", "fpn_convs.1": "P3.from_S3.via0", "fpn_convs.2": "P4.from_S4.via0"}
    assert prefixes("mmdet_hrfpn") == {**hrfpn, "fpn_convs.3": "P5.from_S5.via0", "fpn_convs.4": "P6.from_S6.via0"}
    assert prefixes("mmdet_channel_mapper") == {"convs.0": "P3.post0", "convs.1": "P4.post0", "convs.2": "P5.post0", "extra_convs.0": "P6.from_C5.via0"}
    ssh = prefixes("mmdet_ssh")
    assert len(ssh) == 20 and ssh["ssh_module0.conv3x3"] == "A2.post0" and ssh["ssh_module3.context_module.conv7x7_3"] == "F7_5.post0"
    dilated = prefixes("mmdet_dilated_encoder")
    assert dilated["lateral_norm"] == "L.post0.bn" and dilated["dilated_encoder_blocks.3.conv2"] == "E3.conv2.post0" and len(dilated) == 16
    assert prefixes("mmdet_ct_resnet_neck")["deconv_layers.5.conv"] == "U2.from_S2.via0.deconv"


# -- the specs against a direct computation -------------------------------------------------


def _randomised(neck, seed: int = 0):
    return randomise(neck, seed)


def _inputs(widths, sizes, seed=1):
    torch.manual_seed(seed)
    return [torch.randn(2, c, h, w) for c, (h, w) in zip(widths, sizes)]


def _conv(sd, p, x, stride=1, padding=0, dilation=1):
    return F.conv2d(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"), stride, padding, dilation)


def _bn(sd, p, x, eps=1e-5):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, eps)


def _gn(sd, p, x, groups):
    return F.group_norm(x, groups, sd[f"{p}.weight"], sd[f"{p}.bias"], 1e-5)


def _close(ours, expected):
    assert [o.shape for o in ours] == [e.shape for e in expected]
    for o, e in zip(ours, expected, strict=True):
        torch.testing.assert_close(o, e, rtol=1e-4, atol=1e-4)


def test_hrfpn_max_pooling_and_strided_output_convs_match_a_direct_computation():
    neck = _randomised(pyramidgraph.compile("hrfpn", [4, 8, 12], channels=8, first_level=3, num_outs=4, pooling="max", stride=2))
    sd = neck.state_dict()
    xs = _inputs([4, 8, 12], [(12, 20), (6, 10), (3, 5)])
    cat = torch.cat([xs[0]] + [F.interpolate(x, scale_factor=2**i, mode="bilinear") for i, x in enumerate(xs[1:], 1)], 1)
    r = _conv(sd, "R.post0.conv", cat)
    pooled = [r] + [F.max_pool2d(r, 2**i, 2**i) for i in range(1, 4)]
    sources = ["R", "S4", "S5", "S6"]
    expected = [_conv(sd, f"P{4 + i}.from_{sources[i]}.via0.conv", p, 2, 1) for i, p in enumerate(pooled)]
    with torch.no_grad():
        _close(neck(xs), expected)
    assert [tuple(o.shape[-2:]) for o in expected] == [(6, 10), (3, 5), (2, 3), (1, 1)]


def test_channel_mapper_with_bn_relu_and_two_extra_levels_matches_a_direct_computation():
    neck = _randomised(pyramidgraph.compile("channel_mapper", [4, 8, 8], channels=8, kernel=3, norm="bn", act="relu", extra_levels=2))
    sd = neck.state_dict()
    assert "P3.post0.conv.bias" not in sd  # bias 'auto': none before a norm
    xs = _inputs([4, 8, 8], [(13, 19), (7, 10), (4, 5)])
    expected = [F.relu(_bn(sd, f"P{3 + i}.post0.bn", _conv(sd, f"P{3 + i}.post0.conv", x, 1, 1))) for i, x in enumerate(xs)]
    p6 = F.relu(_bn(sd, "P6.from_C5.via0.bn", _conv(sd, "P6.from_C5.via0.conv", xs[-1], 2, 1)))
    p7 = F.relu(_bn(sd, "P7.from_P6.via0.bn", _conv(sd, "P7.from_P6.via0.conv", p6, 2, 1)))
    with torch.no_grad():
        _close(neck(xs), expected + [p6, p7])
    assert tuple(p7.shape[-2:]) == (1, 2)


def test_ssh_with_gn_and_a_width_per_level_matches_a_direct_computation():
    neck = _randomised(pyramidgraph.compile("ssh", [4, 8], widths=[8, 16], norm="gn", norm_groups=2))
    sd = neck.state_dict()
    xs = _inputs([4, 8], [(13, 19), (7, 10)])

    def unit(p, x, relu):
        y = _gn(sd, f"{p}.post0.gn", _conv(sd, f"{p}.post0.conv", x, 1, 1), 2)
        return F.relu(y) if relu else y

    expected = []
    for level, x in zip((3, 4), xs):
        b = unit(f"B{level}", x, True)
        expected.append(F.relu(torch.cat([unit(f"A{level}", x, False), unit(f"F5_{level}", b, False), unit(f"F7_{level}", unit(f"D{level}", b, True), False)], 1)))
    with torch.no_grad():
        _close(neck(xs), expected)
    assert [o.shape[1] for o in expected] == [8, 16]


def test_dilated_encoder_matches_a_direct_computation():
    neck = _randomised(pyramidgraph.compile("dilated_encoder", [12], channels=8, mid=4, blocks=2, dilations=[3, 5]))
    sd = neck.state_dict()
    (x,) = _inputs([12], [(7, 10)])
    y = _bn(sd, "F.post0.bn", _conv(sd, "F.post0.conv", _bn(sd, "L.post0.bn", _conv(sd, "L.post0.conv", x)), 1, 1))
    for k, d in enumerate((3, 5)):
        z = F.relu(_bn(sd, f"E{k}.conv1.post0.bn", _conv(sd, f"E{k}.conv1.post0.conv", y)))
        z = F.relu(_bn(sd, f"E{k}.conv2.post0.bn", _conv(sd, f"E{k}.conv2.post0.conv", z, 1, d, d)))
        y = y + F.relu(_bn(sd, f"E{k}.conv3.post0.bn", _conv(sd, f"E{k}.conv3.post0.conv", z)))
    with torch.no_grad():
        _close(neck([x]), [y])


def test_dilated_encoder_without_blocks_is_the_projector():
    neck = _randomised(pyramidgraph.compile("dilated_encoder", [12], channels=8, blocks=0))
    sd = neck.state_dict()
    assert not any(k.startswith("E") for k in sd)
    (x,) = _inputs([12], [(5, 6)])
    y = _bn(sd, "F.post0.bn", _conv(sd, "F.post0.conv", _bn(sd, "L.post0.bn", _conv(sd, "L.post0.conv", x)), 1, 1))
    with torch.no_grad():
        _close(neck([x]), [y])


def test_ct_resnet_neck_matches_a_direct_computation():
    neck = _randomised(pyramidgraph.compile("ct_resnet_neck", [12], filters=[8, 4], kernels=[4, 4], level=4))
    sd = neck.state_dict()
    (x,) = _inputs([12], [(4, 5)])
    y = x
    for i in range(2):
        y = F.relu(_bn(sd, f"S{i}.post0.bn", _conv(sd, f"S{i}.post0.conv", y, 1, 1)))
        y = F.relu(_bn(sd, f"U{i}.post0", F.conv_transpose2d(y, sd[f"U{i}.from_S{i}.via0.deconv.weight"], None, 2, 1)))
    with torch.no_grad():
        _close(neck([x]), [y])
    assert tuple(y.shape) == (2, 4, 16, 20)


# -- refusals -------------------------------------------------------------------------------


def _neck(cfg, strides=None):
    return {"strides": strides or [], "necks": [cfg]}


HRFPN = {"type": "HRFPN", "in_channels": [8, 16], "out_channels": 8}
MAPPER = {"type": "ChannelMapper", "in_channels": [8, 16], "out_channels": 8}
SSH = {"type": "SSH", "num_scales": 2, "in_channels": [8, 16], "out_channels": [8, 8]}
DILATED = {"type": "DilatedEncoder", "in_channels": 16, "out_channels": 8, "block_mid_channels": 4, "num_residual_blocks": 2, "block_dilations": [2, 4]}
CT = {"type": "CTResNetNeck", "in_channels": 16, "num_deconv_filters": [8], "num_deconv_kernels": [4], "use_dcn": False}

REFUSALS = [
    ({**HRFPN, "pooling": "MAX"}, None, "HRFPN: unknown argument 'pooling'; did you mean 'pooling_type'? (HRFPN takes: conv_cfg, in_channels, init_cfg, norm_cfg, num_outs, out_channels, pooling_type, stride, with_cp)"),
    ({**HRFPN, "stride": 3}, None, "HRFPN: stride 3 is not supported: the output convs' stride must be 1, 2, 4 or 8 so that each output stays a pyramid level"),
    ({**HRFPN, "conv_cfg": {"type": "DCNv2"}}, None, "HRFPN: conv_cfg {'type': 'DCNv2'} is not supported (None: plain Conv2d)"),
    ({**HRFPN, "in_channels": 8}, None, "HRFPN: in_channels must be a non-empty list (the reference asserts a list), got 8"),
    (HRFPN, [8, 32], "HRFPN: strides must be consecutive powers of two, got [8, 32]"),
    ({**MAPPER, "kernel_size": [3, 3]}, None, "ChannelMapper: kernel_size must be a positive integer (the reference pads by (kernel_size - 1) // 2), got [3, 3]"),
    ({**MAPPER, "norm_cfg": {"type": "LN"}}, None, "ChannelMapper: norm_cfg type 'LN' is not supported (BN, SyncBN, GN or None)"),
    ({**MAPPER, "act_cfg": {"type": "PReLU"}}, None, "ChannelMapper: act_cfg type 'PReLU' is not supported (ReLU, ReLU6, SiLU, Swish, GELU, Sigmoid, Tanh, HSwish, LeakyReLU, ELU, HSigmoid or None)"),
    ({**MAPPER, "in_channels": (8, 16)}, None, "ChannelMapper: in_channels must be a list (the reference asserts it), got (8, 16)"),
    (
        {**MAPPER, "num_out": 3},
        None,
        "ChannelMapper: unknown argument 'num_out'; did you mean 'num_outs'? (ChannelMapper takes: act_cfg, bias, conv_cfg, in_channels, init_cfg, kernel_size, norm_cfg, num_outs, out_channels)",
    ),
    ({**SSH, "num_scales": 3}, None, "SSH: num_scales (3), in_channels (2 widths) and out_channels (2 widths) must agree, as the reference asserts"),
    ({**SSH, "out_channels": [8, 10]}, None, "SSH: out_channels must be multiples of 4 (a half and two quarters are concatenated), got 10"),
    ({**SSH, "norm_cfg": {"type": "GN"}}, None, "SSH: norm_cfg GN needs num_groups"),
    ({**DILATED, "norm_cfg": {"type": "BN"}}, None, "DilatedEncoder: unknown argument 'norm_cfg' (DilatedEncoder takes: block_dilations, block_mid_channels, in_channels, num_residual_blocks, out_channels)"),
    ({k: v for k, v in DILATED.items() if k != "block_dilations"}, None, "DilatedEncoder: 'block_dilations' is required (the reference's constructor has no default for it)"),
    ({**DILATED, "block_dilations": [2]}, None, "DilatedEncoder: block_dilations lists 1 dilations for 2 residual blocks (the reference reads block_dilations[i] for each)"),
    (DILATED, [16, 32], "DilatedEncoder: the reference reads only the last feature map (feature[-1]); give that one alone (strides [32]), not 2 ([16, 32])"),
    (
        {**CT, "num_deconv_kernels": [3]},
        None,
        "CTResNetNeck: num_deconv_kernels 3: with the reference's fixed stride 2 and padding 1 a transposed conv of kernel k gives 2 * size + k - 4, so only 4 makes the next pyramid level",
    ),
    ({**CT, "num_deconv_kernels": [4, 4]}, None, "CTResNetNeck: num_deconv_filters (1) and num_deconv_kernels (2) must have the same length, as the reference asserts"),
    ({**CT, "num_deconv_filters": [8, 8, 8], "num_deconv_kernels": [4, 4, 4]}, [4], "CTResNetNeck: 3 stages would go 3 levels finer than the input's level 2"),
]


@pytest.mark.parametrize("cfg,strides,message", REFUSALS, ids=[m.split(":")[0] + str(i) for i, (_, _, m) in enumerate(REFUSALS)])
def test_unsupported_arguments_are_refused_with_the_reason(cfg, strides, message):
    with pytest.raises(pyramidgraph.SpecError) as err:
        conversion("mmdet", _neck(cfg, strides))
    assert [issue.message for issue in err.value.issues] == [message]


def test_arguments_that_change_nothing_are_accepted():
    """HRFPN's norm_cfg is stored and never used by the reference, with_cp only saves memory,
    and any pooling_type but 'MAX' averages."""
    plain = from_reference("mmdet", _neck(HRFPN, [8, 16]))
    quirky = from_reference("mmdet", _neck({**HRFPN, "norm_cfg": {"type": "BN"}, "with_cp": True, "init_cfg": None}, [8, 16]))
    assert (
        list(plain.state_dict())
        == list(quirky.state_dict())
        == ["R.post0.conv.weight", "R.post0.conv.bias", "P3.from_R.via0.conv.weight", "P3.from_R.via0.conv.bias"] + [f"P{level}.from_S{level}.via0.conv.{leaf}" for level in range(4, 8) for leaf in ("weight", "bias")]
    )
    for pooling in ("max", "avg", None):  # the reference max-pools for 'MAX' exactly and averages for anything else
        assert conversion("mmdet", _neck({**HRFPN, "pooling_type": pooling})).params["pooling"] == "avg"
    assert conversion("mmdet", _neck({**HRFPN, "pooling_type": "MAX"})).params["pooling"] == "max"
    mapper = conversion("mmdet", _neck({**MAPPER, "num_outs": 1}))  # fewer outputs than inputs: the reference ignores num_outs
    assert mapper.params["extra_levels"] == 0


def test_the_specs_refuse_what_their_references_cannot_compute():
    with pytest.raises(pyramidgraph.SpecError) as err:  # HRFPN upsamples by 2**i: the maps must be exact multiples
        pyramidgraph.validate("hrfpn", [8, 16, 24], image=100)
    assert [i.message for i in err.value.issues] == [
        "inputs of 'R' do not line up: 'C2' gives 25x25, 'C3' gives 26x26, 'C4' gives 28x28; upsample by size (up: {op: upsample, by: size}) or choose an image size divisible by 16"
    ]
    with pytest.raises(pyramidgraph.SpecError) as err:  # SSH concatenates a half and two quarters
        pyramidgraph.compile("ssh", [8, 16], channels=6)
    assert [i.message for i in err.value.issues] == ["'O3' declares 6 channels but its ops give 5; add a conv to its post ops or set channels: 5 (also in O4)"]
