"""CenterNet's neck with DCNv2 (mmdetection's ``CTResNetNeck(use_dcn=True)``, its default) as the
``ct_resnet_neck`` spec with ``use_dcn: true``: the recorded cases reproduce (recorded by
tests/interop/data/record_ct_resnet_dcn.py, offset convs randomised), the DCN stages match a
direct computation with integer offsets written here with plain convolutions, ``use_dcn:
false`` converts as before, and what still cannot be built is refused with the reason."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recorded import LOCAL, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

# id: (config, reference parameter count, output (channels, height, width))
RECORDED = {
    "mmdet_ct_resnet_dcn_3stages_odd": (
        {"strides": [32], "necks": [{"type": "CTResNetNeck", "in_channels": 16, "num_deconv_filters": [8, 8, 4], "num_deconv_kernels": [4, 4, 4], "use_dcn": True}]},
        12_257,
        (4, 56, 40),
    ),
    "mmdet_ct_resnet_dcn_2stages_default": (
        {"strides": [16], "necks": [{"type": "CTResNetNeck", "in_channels": 24, "num_deconv_filters": [16, 8], "num_deconv_kernels": [4, 4]}]},
        19_598,
        (8, 16, 24),
    ),
}


def _close(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape
    error = (ours - ref).abs().max().item()
    assert error <= 1e-4 * max(1.0, ref.abs().max().item()), error
    return error


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_recorded_dcn_cases_are_reproduced(name):
    config, count, shape = RECORDED[name]
    case = load_case(LOCAL / f"{name}.pt")
    assert case["config"] == config and case["num_params"] == count
    assert any(k.endswith("conv.conv_offset.weight") and v.abs().sum() > 0 for k, v in case["state_dict"].items())  # offsets randomised, not the zero init
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == count
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple) and len(outputs) == 1
    assert tuple(outputs[0].shape) == (2, *shape)
    _close(outputs[0], case["outputs"][0])


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_recordings_exercise_the_offsets(name):
    """With the offset convs' weights zeroed (offsets and mask from the bias alone) the output is
    far from the recording: a mistake in the offset layout would show in the parity test."""
    config, _, _ = RECORDED[name]
    case = load_case(LOCAL / f"{name}.pt")
    flat = {k: torch.zeros_like(v) if k.endswith("conv_offset.weight") else v for k, v in case["state_dict"].items()}
    neck = from_reference("mmdet", config, flat).eval()
    with torch.no_grad():
        error = (neck(case["inputs"])[0] - case["outputs"][0]).abs().max().item()
    assert error > 20 * 1e-4 * max(1.0, case["outputs"][0].abs().max().item())


def test_the_key_maps_follow_mmcvs_names():
    dcn = conversion("mmdet", RECORDED["mmdet_ct_resnet_dcn_2stages_default"][0])
    assert dcn.params == {"filters": [16, 8], "kernels": [4, 4], "use_dcn": True, "level": 4}
    assert dcn.key_map.prefixes == {
        "deconv_layers.0.conv": "S0.post0",
        "deconv_layers.0.bn": "S0.post1",
        "deconv_layers.0.conv_offset": "S0.post0.conv_offset",
        "deconv_layers.1.conv": "U0.from_S0.via0.deconv",
        "deconv_layers.1.bn": "U0.post0",
        "deconv_layers.2.conv": "S1.post0",
        "deconv_layers.2.bn": "S1.post1",
        "deconv_layers.2.conv_offset": "S1.post0.conv_offset",
        "deconv_layers.3.conv": "U1.from_S1.via0.deconv",
        "deconv_layers.3.bn": "U1.post0",
    }
    neck = from_reference("mmdet", RECORDED["mmdet_ct_resnet_dcn_2stages_default"][0])
    assert {k: tuple(v.shape) for k, v in neck.state_dict().items() if k.startswith("S0.")} == {
        "S0.post0.weight": (16, 24, 3, 3),  # no bias: ConvModule's bias 'auto' before a BN
        "S0.post0.conv_offset.weight": (27, 24, 3, 3),
        "S0.post0.conv_offset.bias": (27,),
        "S0.post1.weight": (16,),
        "S0.post1.bias": (16,),
        "S0.post1.running_mean": (16,),
        "S0.post1.running_var": (16,),
        "S0.post1.num_batches_tracked": (),
    }


def test_checkpoints_from_before_mmcvs_version_2_names_load():
    """mmcv's ModulatedDeformConv2dPack renames ``<conv>_offset`` to ``<conv>.conv_offset`` when it
    loads a checkpoint written before its version 2; the converter reads both."""
    config, _, _ = RECORDED["mmdet_ct_resnet_dcn_2stages_default"]
    case = load_case(LOCAL / "mmdet_ct_resnet_dcn_2stages_default.pt")
    old = {k.replace(".conv.conv_offset.", ".conv_offset."): v for k, v in case["state_dict"].items()}
    assert "deconv_layers.2.conv_offset.bias" in old
    neck = from_reference("mmdet", config, old).eval()
    with torch.no_grad():
        _close(neck(case["inputs"])[0], case["outputs"][0])


# -- the spec against a direct computation ----------------------------------------------------


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` read at ``(r + dy, c + dx)``, zero outside."""
    pad = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    return F.pad(x, (pad, pad, pad, pad))[:, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def _bn(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, 1e-5)


def test_the_dcn_stages_match_a_direct_computation_with_integer_offsets():
    """Offset conv weights zero and its bias integer offsets (a different one per tap, y then x as
    mmcv's layout) and mask logits: each tap of the 3x3 DCN is then a 1x1 conv of the input read
    at the tap's shifted position, times the tap's mask (sigmoid of its logit)."""
    neck = pyramidgraph.compile("ct_resnet_neck", [12], filters=[8, 6], kernels=[4, 4], use_dcn=True, level=4)
    torch.manual_seed(0)
    offsets = {}
    with torch.no_grad():
        for name, tensor in neck.state_dict().items():
            if name.endswith("conv_offset.weight"):
                tensor.zero_()
            elif name.endswith("conv_offset.bias"):
                steps = torch.randint(-2, 3, (18,)).float()
                tensor.copy_(torch.cat([steps, torch.randn(9)]))
                offsets[name.split(".")[0]] = steps.int().reshape(9, 2).tolist()
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_(0, 0.3)
    neck.eval()
    sd = neck.state_dict()
    x = torch.randn(2, 12, 5, 7)
    y = x
    for i in range(2):
        weight, masks = sd[f"S{i}.post0.weight"], torch.sigmoid(sd[f"S{i}.post0.conv_offset.bias"][18:])
        dcn = sum(masks[t] * F.conv2d(_shifted(y, t // 3 - 1 + dy, t % 3 - 1 + dx), weight[:, :, t // 3 : t // 3 + 1, t % 3 : t % 3 + 1]) for t, (dy, dx) in enumerate(offsets[f"S{i}"]))
        y = F.relu(_bn(sd, f"S{i}.post1", dcn))
        y = F.relu(_bn(sd, f"U{i}.post0", F.conv_transpose2d(y, sd[f"U{i}.from_S{i}.via0.deconv.weight"], None, 2, 1)))
    assert any(dy or dx for steps in offsets.values() for dy, dx in steps)
    assert "S0.post0.bias" not in sd
    with torch.no_grad():
        (out,) = neck([x])
    assert tuple(y.shape) == (2, 6, 20, 28)
    _close(out, y)


def test_the_spec_defaults_and_its_example():
    """The example is the paper's (ResNet-18 C5, DCN); compiled for given widths without naming
    use_dcn the spec keeps the plain 3x3 conv and its old state_dict names."""
    example = pyramidgraph.compile("ct_resnet_neck")
    assert tuple(example.state_dict()["S0.post0.conv_offset.weight"].shape) == (27, 512, 3, 3)
    assert sum(p.numel() for p in example.parameters()) == 3_144_145
    plain = pyramidgraph.compile("ct_resnet_neck", [512])
    assert not [k for k in plain.state_dict() if "offset" in k]
    assert tuple(plain.state_dict()["S0.post0.conv.weight"].shape) == (256, 512, 3, 3)


# -- the paper's configuration, both ways -----------------------------------------------------

R18 = {"type": "CTResNetNeck", "in_channels": 512, "num_deconv_filters": [256, 128, 64], "num_deconv_kernels": [4, 4, 4]}


def test_the_centernet_r18_counts():
    """mmdetection 3.3's CTResNetNeck(512, (256, 128, 64), (4, 4, 4)) instantiated and counted:
    3,144,145 with use_dcn=True (centernet_r18-dcnv2_8xb16-crop512-140e_coco, the reference's
    default), 2,926,336 with use_dcn=False (centernet_r18_8xb16-crop512-140e_coco)."""
    assert sum(p.numel() for p in from_reference("mmdet", {"strides": [32], "necks": [R18]}).parameters()) == 3_144_145
    assert sum(p.numel() for p in from_reference("mmdet", {"strides": [32], "necks": [{**R18, "use_dcn": True}]}).parameters()) == 3_144_145
    assert sum(p.numel() for p in from_reference("mmdet", {"strides": [32], "necks": [{**R18, "use_dcn": False}]}).parameters()) == 2_926_336
    assert pyramidgraph.neck_info("ct_resnet_neck", [512], params={"use_dcn": False}).params == 2_926_336
    assert pyramidgraph.neck_info("ct_resnet_neck", [512], params={"use_dcn": True}).params == 3_144_145


# -- use_dcn false, as before -----------------------------------------------------------------


def test_use_dcn_false_converts_as_before():
    case = load_case(LOCAL / "mmdet_ct_resnet_2stages_odd.pt")
    assert case["config"]["necks"][0]["use_dcn"] is False
    plain = conversion("mmdet", case["config"])
    assert plain.params["use_dcn"] is False
    assert plain.key_map.prefixes == {
        "deconv_layers.0": "S0.post0",
        "deconv_layers.1.conv": "U0.from_S0.via0.deconv",
        "deconv_layers.1.bn": "U0.post0",
        "deconv_layers.2": "S1.post0",
        "deconv_layers.3.conv": "U1.from_S1.via0.deconv",
        "deconv_layers.3.bn": "U1.post0",
    }
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 2_768  # 16*8*9 + 2*8 + 8*8*16 + 2*8 + 8*4*9 + 2*4 + 4*4*16 + 2*4
    assert [k for k in neck.state_dict() if k.startswith("S0.")] == [
        "S0.post0.conv.weight",
        "S0.post0.bn.weight",
        "S0.post0.bn.bias",
        "S0.post0.bn.running_mean",
        "S0.post0.bn.running_var",
        "S0.post0.bn.num_batches_tracked",
    ]
    with torch.no_grad():
        _close(neck(case["inputs"])[0], case["outputs"][0])


# -- refusals -----------------------------------------------------------------------------------

CT = {"type": "CTResNetNeck", "in_channels": 16, "num_deconv_filters": [8], "num_deconv_kernels": [4]}  # use_dcn: the default, True

REFUSALS = [
    ({**CT, "use_dcnv2": True}, None, "CTResNetNeck: unknown argument 'use_dcnv2'; did you mean 'use_dcn'? (CTResNetNeck takes: in_channels, init_cfg, num_deconv_filters, num_deconv_kernels, use_dcn)"),
    ({**CT, "use_dcn": "false"}, None, "CTResNetNeck: use_dcn must be true or false, got 'false' (the reference only tests it for truth, so a string such as 'false' means true there; write the bool)"),
    ({k: v for k, v in CT.items() if k != "num_deconv_kernels"}, None, "CTResNetNeck: 'num_deconv_kernels' is required (the reference's constructor has no default for it)"),
    ({**CT, "num_deconv_filters": 8}, None, "CTResNetNeck: num_deconv_filters must be a list with one entry per stage (the reference indexes it), got 8"),
    (
        {**CT, "num_deconv_kernels": [3]},
        None,
        "CTResNetNeck: num_deconv_kernels 3: with the reference's fixed stride 2 and padding 1 a transposed conv of kernel k gives 2 * size + k - 4, so only 4 makes the next pyramid level",
    ),
    ({**CT, "num_deconv_filters": [8, 4]}, None, "CTResNetNeck: num_deconv_filters (2) and num_deconv_kernels (1) must have the same length, as the reference asserts"),
    (
        {**CT, "num_deconv_filters": [], "num_deconv_kernels": []},
        None,
        "CTResNetNeck: num_deconv_filters is empty: the neck would return its input unchanged, which a spec with no node cannot express",
    ),
    ({**CT, "num_deconv_filters": [8, 8, 8], "num_deconv_kernels": [4, 4, 4]}, [4], "CTResNetNeck: 3 stages would go 3 levels finer than the input's level 2"),
    (CT, [16, 32], "CTResNetNeck: the reference reads only the last feature map (feature[-1]); give that one alone (strides [32]), not 2 ([16, 32])"),
]


@pytest.mark.parametrize("cfg,strides,message", REFUSALS, ids=[f"refusal{i}" for i in range(len(REFUSALS))])
def test_what_cannot_be_built_is_refused_with_the_reason(cfg, strides, message):
    with pytest.raises(pyramidgraph.SpecError) as err:
        conversion("mmdet", {"strides": strides or [], "necks": [cfg]})
    assert [issue.message for issue in err.value.issues] == [message]
