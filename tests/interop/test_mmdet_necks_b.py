"""Five of mmdetection 3.3's necks: CSPNeXtPAFPN, YOLOV3Neck, SSDNeck, NASFCOS_FPN and FPN_DropBlock.

Parity with mmdetection is the recorded cases ``../shared/fixtures/necks/mmdet_*.pt`` (one per
neck) and, always here, ``tests/interop/fixtures/mmdet_{cspnext,yolov3,ssd,nasfcos,dropblock}_*.pt``
(other constructor arguments; ``test_fixtures.py`` runs them too). Without the recordings, the
new ops (``dropblock`` in training, ``l2norm``, ``csp`` with CSPNeXt blocks and channel
attention) and the YOLOv3 and SSD necks are checked against direct computations written here
with ``torch.nn.functional`` on the compiled neck's own randomised weights, at odd sizes; and
the converters' refusals are asserted word for word.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import LOCAL, SHARED, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.ops.regularise_layers import DropBlock2d

NECKS = SHARED / "necks"

RTMDET_BN = {"type": "BN", "momentum": 0.03, "eps": 0.001}
# The shared cases' configs (index.json) and parameter counts, so that conversion is checked without them.
RECORDED = {
    "mmdet_cspnext_pafpn": (
        {"type": "CSPNeXtPAFPN", "in_channels": [32, 64, 128], "out_channels": 32, "num_csp_blocks": 1, "expand_ratio": 0.5, "norm_cfg": RTMDET_BN, "act_cfg": {"type": "SiLU", "inplace": True}},
        [8, 16, 32],
        247_344,
    ),
    "mmdet_yolov3_neck": ({"type": "YOLOV3Neck", "num_scales": 3, "in_channels": [128, 64, 32], "out_channels": [64, 32, 16]}, [8, 16, 32], 231_296),
    "mmdet_ssd_neck": ({"type": "SSDNeck", "in_channels": [16, 32], "out_channels": [16, 32, 32, 16, 16, 16], "level_strides": [2, 2, 1, 1], "level_paddings": [1, 1, 0, 0], "l2_norm_scale": 20.0}, [8, 16], 9_224),
    "mmdet_nasfcos_fpn": ({"type": "NASFCOS_FPN", "in_channels": [16, 32, 64, 128], "out_channels": 32, "start_level": 1, "add_extra_convs": True, "num_outs": 5, "norm_cfg": {"type": "BN"}}, [4, 8, 16, 32], 138_944),
    "mmdet_fpn_dropblock": (
        {"type": "FPN_DropBlock", "in_channels": [16, 32, 64, 128], "out_channels": 32, "num_outs": 5, "plugin": {"type": "DropBlock", "drop_prob": 0.3, "block_size": 3, "warmup_iters": 0}},
        [4, 8, 16, 32],
        44_800,
    ),
}
SPEC = {"CSPNeXtPAFPN": "cspnext_pafpn", "YOLOV3Neck": "yolov3_neck", "SSDNeck": "ssd_neck", "NASFCOS_FPN": "nasfcos_fpn", "FPN_DropBlock": "fpn"}
LOCAL_CASES = sorted(p.stem for kind in ("cspnext", "yolov3", "ssd", "nasfcos", "dropblock") for p in LOCAL.glob(f"mmdet_{kind}_*.pt"))


def _config(name: str) -> dict:
    neck, strides, _ = RECORDED[name]
    return {"strides": strides, "necks": [neck]}


def _parity(case: dict) -> None:
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple)
    assert [o.shape for o in outputs] == [r.shape for r in case["outputs"]]
    for ours, ref in zip(outputs, case["outputs"], strict=True):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_from_reference_reproduces_the_shared_recorded_case(name):
    case = load_case(NECKS / f"{name}.pt")
    assert case["config"] == _config(name)
    _parity(case)
    assert case["num_params"] == RECORDED[name][2]


def test_the_local_recordings_cover_every_neck():
    assert len(LOCAL_CASES) == len(json.loads((LOCAL / "mmdet_b_cases.json").read_text())) == 9
    kinds = {load_case(LOCAL / f"{name}.pt")["config"]["necks"][0]["type"] for name in LOCAL_CASES}
    assert kinds == set(SPEC)


@pytest.mark.parametrize("name", LOCAL_CASES)
def test_from_reference_reproduces_the_local_recorded_case(name):
    _parity(load_case(LOCAL / f"{name}.pt"))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_recorded_configs_convert_without_the_recording(name):
    config = _config(name)
    plan = conversion("mmdet", config)
    assert plan.spec == SPEC[config["necks"][0]["type"]]
    neck = from_reference("mmdet", config)
    assert sum(p.numel() for p in neck.parameters()) == RECORDED[name][2]


def test_the_key_maps_name_mmdetections_modules():
    cases = {name: conversion("mmdet", _config(name)).key_map.prefixes for name in RECORDED}
    assert cases["mmdet_yolov3_neck"]["detect1.conv5"] == "O5.post4" and cases["mmdet_yolov3_neck"]["conv2"] == "U4.post0" and cases["mmdet_yolov3_neck"]["detect3.conv1"] == "O3.post0"
    assert cases["mmdet_ssd_neck"]["l2_norm"] == "N3.post0" and cases["mmdet_ssd_neck"]["extra_layers.0.1"] == "X0.from_H0" and cases["mmdet_ssd_neck"]["extra_layers.3.1"] == "X3.post0"
    assert cases["mmdet_nasfcos_fpn"]["fpn.c36.input2_conv"] == "c36_in2.post0" and cases["mmdet_nasfcos_fpn"]["extra_downsamples.1"] == "P7.from_P6"
    assert cases["mmdet_cspnext_pafpn"]["bottom_up_blocks.1"] == "pafpn.B5.post0" and cases["mmdet_cspnext_pafpn"]["downsamples.0"] == "pafpn.D4.from_B3"
    assert cases["mmdet_fpn_dropblock"]["fpn_convs.3.conv"] == "P5.post0"


# -- weights and the direct computations ------------------------------------------------------


def _unit(sd, p, x, *, stride=1, padding=0, groups=1, eps=1e-3, act=F.silu):
    """mmcv ConvModule ``p``: conv (its bias if any), BN ``p.bn`` if there, activation."""
    y = F.conv2d(x, sd[f"{p}.conv.weight"], sd.get(f"{p}.conv.bias"), stride, padding, 1, groups)
    if f"{p}.bn.weight" in sd:
        y = F.batch_norm(y, sd[f"{p}.bn.running_mean"], sd[f"{p}.bn.running_var"], sd[f"{p}.bn.weight"], sd[f"{p}.bn.bias"], False, 0.0, eps)
    return act(y) if act else y


def _dw_unit(sd, p, x, kernel, **kw):
    """mmcv DepthwiseSeparableConvModule ``p``: depthwise ``kernel`` unit, then pointwise 1x1 unit."""
    y = _unit(sd, f"{p}.depthwise_conv", x, padding=kernel // 2, groups=x.shape[1], **kw)
    return _unit(sd, f"{p}.pointwise_conv", y, **kw)


def _direct_dropblock(x, drop_prob, block, factor=1.0):
    """mmdetection's DropBlock.forward in training, written out (same random draws)."""
    n, c, h, w = x.shape
    gamma = drop_prob * h * w / ((h - block + 1) * (w - block + 1)) / block**2 * factor
    mask = torch.bernoulli(torch.full((n, c, h - block + 1, w - block + 1), gamma))
    mask = 1 - F.max_pool2d(F.pad(mask, [block // 2] * 4, value=0), (block, block), stride=(1, 1), padding=block // 2)
    return x * mask * mask.numel() / (1e-6 + mask.sum())


@pytest.mark.parametrize("block", [3, 5])
def test_dropblock_in_training_is_mmdetections_computation_under_one_seed(block):
    x = torch.randn(2, 3, 11, 13)
    layer = DropBlock2d(0.3, block).train()
    torch.manual_seed(7)
    ours = layer(x)
    torch.manual_seed(7)
    direct = _direct_dropblock(x, 0.3, block)
    torch.testing.assert_close(ours, direct, rtol=0, atol=0)
    assert (ours == 0).any() and (ours != 0).any()
    assert layer.eval()(x) is x  # the identity in eval mode


def test_dropblock_drops_whole_blocks_at_the_expected_rate():
    layer = DropBlock2d(0.2, 3).train()
    torch.manual_seed(0)
    out = layer(torch.ones(64, 8, 24, 24))
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - 0.2) < 0.03  # gamma is chosen so that about drop_prob of the map is dropped
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, kept[0].item()))  # one rescale factor, numel / kept
    assert abs(kept[0].item() - 1 / (1 - dropped)) < 1e-4


def test_the_dropblock_warmup_counts_as_mmdetections_shared_module():
    """FPN_DropBlock runs one module at ``used - 1`` places; its counter is ``(forwards - 1) * places + position + 1``."""
    layer = DropBlock2d(0.3, 3, warmup_iters=10, shared_by=3, position=1).train()
    x = torch.randn(1, 2, 9, 9)
    layer(x)
    layer(x)
    assert layer.iteration() == 5  # the second forward's second call
    assert layer.gamma(9, 9) == pytest.approx(0.3 * 81 / 49 / 9 * 5 / 10)
    for _ in range(2):
        layer(x)
    assert layer.iteration() == 11 and layer.gamma(9, 9) == pytest.approx(0.3 * 81 / 49 / 9)


def test_fpn_dropblock_in_training_is_the_direct_computation():
    """The whole neck in training: dropblock on each top-down sum from the coarsest down, the
    dropped sum feeding the next finer level, under one seed."""
    plugin = {"type": "DropBlock", "drop_prob": 0.4, "block_size": 3, "warmup_iters": 4}
    config = {"strides": [4, 8, 16, 32], "necks": [{"type": "FPN_DropBlock", "in_channels": [4, 8, 8, 16], "out_channels": 8, "num_outs": 5, "plugin": plugin}]}
    neck = randomise(from_reference("mmdet", config)).train()
    sd = neck.state_dict()
    xs = [torch.randn(2, c, 27 // 2**i + 1, 35 // 2**i + 1) for i, c in enumerate([4, 8, 8, 16])]
    for forward in (1, 2):
        torch.manual_seed(11)
        ours = neck(xs)
        torch.manual_seed(11)
        laterals = [F.conv2d(x, sd[f"L{2 + i}.post0.weight"], sd[f"L{2 + i}.post0.bias"]) for i, x in enumerate(xs)]
        for place, i in enumerate(range(3, 0, -1)):
            summed = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            t = (forward - 1) * 3 + place + 1  # mmdetection's one counter
            laterals[i - 1] = _direct_dropblock(summed, 0.4, 3, min(1.0, t / 4))
        outs = [F.conv2d(lat, sd[f"P{2 + i}.post0.weight"], sd[f"P{2 + i}.post0.bias"], padding=1) for i, lat in enumerate(laterals)]
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        for o, d in zip(ours, outs, strict=True):
            torch.testing.assert_close(o, d, rtol=0, atol=1e-5)
    neck.eval()
    plain = pyramidgraph.compile("fpn", [4, 8, 8, 16], channels=8, init="xavier_uniform")
    plain.load_state_dict(sd)
    with torch.no_grad():
        for a, b in zip(neck(xs), plain(xs), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)  # eval: DropBlock is the identity


def test_the_fpn_spec_keeps_its_weights_with_dropblock():
    plain = pyramidgraph.compile("fpn", [8, 16, 32], channels=8)
    dropped = pyramidgraph.compile("fpn", [8, 16, 32], channels=8, dropblock=0.1)
    assert list(plain.state_dict()) == list(dropped.state_dict())
    assert pyramidgraph.neck_info("fpn", [256, 512, 1024, 2048], params={"dropblock": 0.3}).params == 3_344_384  # mmdetection 3.3's FPN_DropBlock(R50 -> 256, num_outs 5), instantiated
    with pytest.raises(pyramidgraph.SpecError, match=r"dropblock: block_size must be odd and positive \(blocks are centred\), got 4"):
        pyramidgraph.compile("fpn", [8, 16, 32], channels=8, dropblock=0.1, dropblock_size=4)


def test_the_ssd_neck_is_the_direct_computation():
    """L2Norm on the first input, 1x1 + 3x3 extra layers (stride 2 padding 1, then stride 1 padding 0), odd image."""
    neck = randomise(pyramidgraph.compile("ssd_neck", [6, 8], widths=[8, 6], strides=[2, 1], paddings=[1, 0], l2norm=10.0))
    sd = neck.state_dict()
    assert sd["N3.post0.weight"].shape == (6,)
    xs = [torch.randn(2, 6, 19, 23), torch.randn(2, 8, 10, 12)]
    with torch.no_grad():
        ours = neck(xs)
        x0 = xs[0]
        n3 = sd["N3.post0.weight"].view(1, -1, 1, 1) * x0 / (x0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        h0 = _unit(sd, "H0.post0", xs[1], act=F.relu)
        x_0 = _unit(sd, "X0.from_H0", h0, stride=2, padding=1, act=F.relu)
        x_1 = _unit(sd, "X1.post0", _unit(sd, "H1.post0", x_0, act=F.relu), act=F.relu)
    assert [tuple(o.shape) for o in ours] == [(2, 6, 19, 23), (2, 8, 10, 12), (2, 8, 5, 6), (2, 6, 3, 4)]
    for o, d in zip(ours, [n3, xs[1], x_0, x_1], strict=True):
        torch.testing.assert_close(o, d, rtol=0, atol=1e-5)
    fresh = pyramidgraph.compile("ssd_neck", [6, 8], l2norm=10.0)
    assert (fresh.state_dict()["N3.post0.weight"] == 10.0).all()  # the scale is the weight's initial value


def test_the_yolov3_neck_is_the_direct_computation():
    neck = randomise(pyramidgraph.compile("yolov3_neck", [4, 8, 16], widths=[4, 6, 8]))
    sd = neck.state_dict()
    xs = [torch.randn(2, 4, 12, 20), torch.randn(2, 8, 6, 10), torch.randn(2, 16, 3, 5)]
    unit = {"eps": 1e-5, "act": lambda y: F.leaky_relu(y, 0.1)}

    def block(p, x):
        for j in range(5):
            x = _unit(sd, f"{p}.post{j}", x, padding=j % 2, **unit)
        return x

    with torch.no_grad():
        ours = neck(xs)
        o5 = block("O5", xs[2])
        o4 = block("O4", torch.cat([F.interpolate(_unit(sd, "U5.post0", o5, **unit), scale_factor=2), xs[1]], 1))
        o3 = block("O3", torch.cat([F.interpolate(_unit(sd, "U4.post0", o4, **unit), scale_factor=2), xs[0]], 1))
    assert [tuple(o.shape) for o in ours] == [(2, 8, 3, 5), (2, 6, 6, 10), (2, 4, 12, 20)]  # coarsest first, as mmdetection
    assert sd["O4.post1.conv.weight"].shape == (12, 6, 3, 3) and sd["O4.post0.conv.weight"].shape == (6, 8 + 6, 1, 1)
    for o, d in zip(ours, [o5, o4, o3], strict=True):
        torch.testing.assert_close(o, d, rtol=0, atol=1e-5)


def _merge_resize(x, size):
    """mmcv's BaseMergeCell._resize: nearest up; zero padding to a multiple and max pooling down."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if tuple(x.shape[-2:]) < tuple(size):
        return F.interpolate(x, size=size, mode="nearest")
    h, w = x.shape[-2:]
    pad_h, pad_w = -(-h // size[0]) * size[0] - h, -(-w // size[1]) * size[1] - w
    x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
    kernel = (x.shape[-2] // size[0], x.shape[-1] // size[1])
    return F.max_pool2d(x, kernel, kernel)


def test_the_nasfcos_fpn_is_the_direct_computation():
    """mmdetection's NASFCOS_FPN.forward written out on the neck's own weights (BN in the cells'
    input convs), C2 fed and ignored, an odd image (25x39 at stride 4)."""
    neck = randomise(pyramidgraph.compile("nasfcos_fpn", [4, 6, 8, 10], channels=4))
    sd = neck.state_dict()
    xs = [torch.randn(2, c, -(-100 // s), -(-156 // s)) for c, s in zip([4, 6, 8, 10], [4, 8, 16, 32])]
    relu = {"eps": 1e-5, "act": F.relu}

    def out_conv(p, x):  # ConvModule order (norm, act, conv), groups = channels, no bias
        x = F.relu(F.batch_norm(x, sd[f"{p}.bn.running_mean"], sd[f"{p}.bn.running_var"], sd[f"{p}.bn.weight"], sd[f"{p}.bn.bias"], False, 0.0, 1e-5))
        return F.conv2d(x, sd[f"{p}.conv.weight"], None, groups=4)

    def cell(name, x1, x2, convs):
        x1 = _unit(sd, f"{name}_in1.post0", x1, padding=1, **relu) if 1 in convs else x1
        x2 = _unit(sd, f"{name}_in2.post0", x2, padding=1, **relu) if 2 in convs else x2
        size = max(tuple(x1.shape[-2:]), tuple(x2.shape[-2:]))
        return out_conv(f"{name}.post0", torch.cat([_merge_resize(x1, size), _merge_resize(x2, size)], 1))

    with torch.no_grad():
        ours = neck(xs)
        f = [_unit(sd, f"f{i}.post0", xs[1 + i], **relu) for i in range(3)]
        for name, (i, j), convs in [("c22_1", (2, 2), (1, 2)), ("c22_2", (2, 2), (1, 2)), ("c32", (3, 2), (1,)), ("c02", (0, 2), (1,)), ("c42", (4, 2), (1, 2)), ("c36", (3, 6), (1, 2)), ("c61", (6, 1), (1, 2))]:
            f.append(cell(name, f[i], f[j], convs))
        outs = []
        for idx, k in zip([9, 8, 7], [1, 2, 3]):
            summed = f[idx] + F.interpolate(f[5], size=f[idx].shape[-2:], mode="bilinear", align_corners=False)
            outs.append(F.interpolate(summed, size=xs[k].shape[-2:], mode="bilinear", align_corners=False))
        outs.append(F.conv2d(outs[-1], sd["P6.from_P5.conv.weight"], sd["P6.from_P5.conv.bias"], stride=2, padding=1))
        outs.append(F.conv2d(F.relu(outs[-1]), sd["P7.from_P6.conv.weight"], sd["P7.from_P6.conv.bias"], stride=2, padding=1))
    assert [tuple(o.shape) for o in ours] == [(2, 4, 13, 20), (2, 4, 7, 10), (2, 4, 4, 5), (2, 4, 2, 3), (2, 4, 1, 2)]
    for o, d in zip(ours, outs, strict=True):
        torch.testing.assert_close(o, d, rtol=0, atol=1e-5)


CSP = """
pyramidgraph: 1
inputs: {C3: {level: 3}}
defaults: {resample: {project: none}}
nodes:
  P3: {from: [C3], channels: 8, post: [{csp: {blocks: 2, shortcut: SHORTCUT, block: cspnext, expansion: 0.75, depthwise: true, attention: true}}]}
outputs: [P3]
"""


@pytest.mark.parametrize("shortcut", [False, True])
def test_csp_with_cspnext_blocks_and_channel_attention_is_the_direct_computation(shortcut):
    neck = randomise(pyramidgraph.compile(CSP.replace("SHORTCUT", str(shortcut).lower()), [6]))
    sd = {k.removeprefix("P3.post0."): v for k, v in neck.state_dict().items()}
    assert sd["attention.fc.weight"].shape == (12, 12, 1, 1) and sd["attention.fc.bias"].shape == (12,)
    assert sd["blocks.1.conv2.depthwise_conv.conv.weight"].shape == (6, 1, 5, 5)  # mid = int(8 * 0.75); 5x5 depthwise
    x = torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        (ours,) = neck([x])
        short = _unit(sd, "short_conv", x)
        main = _unit(sd, "main_conv", x)
        for i in range(2):
            z = _dw_unit(sd, f"blocks.{i}.conv1", main, 3)
            z = _dw_unit(sd, f"blocks.{i}.conv2", z, 5)
            main = z + main if shortcut else z
        joined = torch.cat([main, short], 1)
        joined = joined * F.hardsigmoid(F.conv2d(F.adaptive_avg_pool2d(joined, 1), sd["attention.fc.weight"], sd["attention.fc.bias"]))
        direct = _unit(sd, "final_conv", joined)
    torch.testing.assert_close(ours, direct, rtol=0, atol=1e-5)


def test_cspnext_pafpn_is_yolox_pafpn_with_cspnext_blocks_and_3x3_outputs():
    ours = pyramidgraph.compile("cspnext_pafpn", [8, 16, 32], out_channels=8, num_csp_blocks=1)
    keys = list(ours.state_dict())
    assert all(k.startswith("pafpn.") for k in keys)
    assert ours.state_dict()["pafpn.O3.post0.conv.weight"].shape == (8, 8, 3, 3)
    assert "pafpn.T4.post0.blocks.0.conv2.depthwise_conv.conv.weight" in keys and "pafpn.T4.post0.blocks.0.conv1.conv.weight" in keys
    yolox = pyramidgraph.compile("yolox_pafpn", [8, 16, 32], out_channels=8, num_csp_blocks=1)
    assert yolox.state_dict()["O3.post0.conv.weight"].shape == (8, 8, 1, 1)  # yolox_pafpn's defaults are unchanged


# -- refusals -----------------------------------------------------------------------------------


def _refused(neck: dict, strides: list[int]) -> str:
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion("mmdet", {"strides": strides, "necks": [neck]})
    return str(info.value)


def test_the_converters_refuse_what_they_cannot_express():
    csp = dict(RECORDED["mmdet_cspnext_pafpn"][0])
    assert "CSPNeXtPAFPN: unknown argument 'expand_ration'; did you mean 'expand_ratio'?" in _refused({**csp, "expand_ration": 0.5}, [8, 16, 32])
    assert "CSPNeXtPAFPN: norm_cfg type 'LN' is not supported (BN, SyncBN, GN or None)" in _refused({**csp, "norm_cfg": {"type": "LN"}}, [8, 16, 32])
    assert "CSPNeXtPAFPN: upsample_cfg {'scale_factor': 4} is not supported" in _refused({**csp, "upsample_cfg": {"scale_factor": 4}}, [8, 16, 32])
    yolo = dict(RECORDED["mmdet_yolov3_neck"][0])
    assert "YOLOV3Neck: num_scales 2 must equal the lengths of in_channels (3) and out_channels (3), and be >= 1" in _refused({**yolo, "num_scales": 2}, [8, 16, 32])
    assert "YOLOV3Neck: conv_cfg {'type': 'DCN'} is not supported (None: plain Conv2d)" in _refused({**yolo, "conv_cfg": {"type": "DCN"}}, [8, 16, 32])
    ssd = dict(RECORDED["mmdet_ssd_neck"][0])
    assert "SSDNeck: level_strides [2, 3, 1, 1]: only 1 (same level) and 2 (the next level) line up with pyramid levels" in _refused({**ssd, "level_strides": [2, 3, 1, 1]}, [8, 16])
    assert "SSDNeck: out_channels [16, 8, 32] must start with in_channels [16, 32] and add at least one extra layer" in _refused({**ssd, "out_channels": [16, 8, 32]}, [8, 16])
    assert "SSDNeck: 4 extra layers need as many level_strides and level_paddings, got 4 and 3" in _refused({**ssd, "level_paddings": [1, 1, 0]}, [8, 16])
    nas = dict(RECORDED["mmdet_nasfcos_fpn"][0])
    message = "NASFCOS_FPN: the searched cells read exactly three levels and mmdetection resizes the outputs to inputs[1..3], so start_level must be 1 with three inputs used"
    assert f"{message}; got start_level 0 with 4 used" in _refused({**nas, "start_level": 0}, [4, 8, 16, 32])
    dcn = {"type": "DCNv2", "deform_groups": 2}
    assert "NASFCOS_FPN: conv_cfg {'type': 'DCNv2', 'deform_groups': 2} is not supported (None or Conv2d: plain convs; the paper's DCNv2 is not modelled)" in _refused({**nas, "conv_cfg": dcn}, [4, 8, 16, 32])
    assert "NASFCOS_FPN: init_cfg must be None (mmdetection asserts it)" in _refused({**nas, "init_cfg": {"type": "Xavier"}}, [4, 8, 16, 32])
    drop = dict(RECORDED["mmdet_fpn_dropblock"][0])
    assert "FPN_DropBlock: plugin block_size must be an odd positive integer, got 4" in _refused({**drop, "plugin": {"type": "DropBlock", "drop_prob": 0.3, "block_size": 4}}, [4, 8, 16, 32])
    assert "FPN_DropBlock: plugin {'type': 'Dropout'} is not supported (a DropBlock config, or None)" in _refused({**drop, "plugin": {"type": "Dropout"}}, [4, 8, 16, 32])
    assert "FPN_DropBlock: unknown argument 'num_out'; did you mean 'num_outs'?" in _refused({**drop, "num_out": 5}, [4, 8, 16, 32])


def test_fpn_dropblock_without_a_plugin_is_fpn_and_the_default_plugin_is_mmdetections():
    drop = {k: v for k, v in RECORDED["mmdet_fpn_dropblock"][0].items() if k != "plugin"}
    plan = conversion("mmdet", {"strides": [4, 8, 16, 32], "necks": [drop]})  # FPN_DropBlock's default plugin
    assert (plan.params["dropblock"], plan.params["dropblock_size"], plan.params["dropblock_warmup"]) == (0.3, 3, 0)
    plan = conversion("mmdet", {"strides": [4, 8, 16, 32], "necks": [{**drop, "plugin": {"type": "DropBlock", "drop_prob": 0.1, "block_size": 5}}]})
    assert plan.params["dropblock_warmup"] == 2000  # DropBlock's own default
    plan = conversion("mmdet", {"strides": [4, 8, 16, 32], "necks": [{**drop, "plugin": None}]})
    assert "dropblock" not in plan.params and plan.params == conversion("mmdet", {"strides": [4, 8, 16, 32], "necks": [{**drop, "type": "FPN"}]}).params
