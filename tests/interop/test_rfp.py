"""DetectoRS' Recursive Feature Pyramid: the bundled ``rfp`` spec and ``from_reference("mmdet.rfp")``.

Parity with mmdetection's ``RFP`` (and the ``DetectoRS_ResNet`` it owns) is the recorded case
``../shared/fixtures/necks/mmdet_rfp.pt`` (446,601 parameters). Without it, the ops and the neck
are checked against a direct computation written here with ``torch.nn.functional`` on the
neck's own weights (three steps, an odd image size), and the converter's refusals and the
shared-weight layout (one FPN, one ASPP, one gate conv, one ResNet per step) are asserted.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import SHARED, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

CASE = SHARED / "necks" / "mmdet_rfp.pt"

# The recorded case's config (index.json): ResNet-50 at base width 8, FPN width 32, ASPP 4 x 8.
CONFIG = {
    "strides": [1, 4, 8, 16, 32],
    "image_channels": 3,
    "necks": [
        {
            "type": "RFP",
            "in_channels": [32, 64, 128, 256],
            "out_channels": 32,
            "num_outs": 5,
            "rfp_steps": 2,
            "aspp_out_channels": 8,
            "aspp_dilations": [1, 3, 6, 1],
            "rfp_backbone": {
                "type": "DetectoRS_ResNet", "depth": 50, "base_channels": 8, "num_stages": 4, "out_indices": [0, 1, 2, 3], "frozen_stages": 1,
                "norm_cfg": {"type": "BN", "requires_grad": True}, "norm_eval": True, "rfp_inplanes": 32, "sac": None, "conv_cfg": None, "pretrained": None, "style": "pytorch",
            },
        }
    ],
}
SMALL = {"channels": 16, "base_channels": 4, "stem_channels": 6, "aspp_channels": 4, "stage_blocks": [2, 1, 2, 1]}
SMALL_IN = [3, 16, 32, 64, 128]


def test_from_reference_reproduces_the_recorded_rfp_case():
    case = load_case(CASE)
    assert case["config"] == CONFIG
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, list)  # RFP.forward returns its list x
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4), (2, 32, 2, 2), (2, 32, 1, 1)]
    for ours, ref in zip(outputs, case["outputs"], strict=True):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 446_601


def test_the_recorded_config_converts_without_the_recording():
    plan = conversion("mmdet.rfp", CONFIG)
    assert plan.spec == "rfp" and plan.in_channels == [3, 32, 64, 128, 256] and plan.return_type == "list"
    assert {k: plan.params[k] for k in ("steps", "channels", "base_channels", "stem_channels", "stage_blocks", "aspp_channels", "aspp_dilations", "extra", "extra_levels")} == {
        "steps": 2, "channels": 32, "base_channels": 8, "stem_channels": 8, "stage_blocks": [3, 4, 6, 3], "aspp_channels": 8, "aspp_dilations": [1, 3, 6, 1], "extra": "maxpool", "extra_levels": 1,
    }
    neck = from_reference("mmdet.rfp", CONFIG)
    assert sum(p.numel() for p in neck.parameters()) == 446_601
    prefixes = plan.key_map.prefixes
    assert prefixes["lateral_convs.0.conv"] == "fpn.L2.post0" and prefixes["fpn_convs.3.conv"] == "fpn.P5.post0"
    assert prefixes["rfp_aspp.aspp"].startswith("A3_0.") and prefixes["rfp_weight"] == "X2_1.fuse"
    assert prefixes["rfp_modules.0.conv1"].startswith("R0_stem.") and prefixes["rfp_modules.0.layer3"].startswith("R0_layer3.")


# -- the ops against a direct computation ---------------------------------------------------


def _bn(sd, p, x):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, 1e-5)


def _conv(sd, p, x, stride=1, padding=0, dilation=1):
    return F.conv2d(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"), stride, padding, dilation)


def _stage(sd, p, x, blocks, stride, feedback=None):
    """mmdet's ResLayer of DetectoRS Bottlenecks, style pytorch: rfp_conv of the feedback is added
    in block 0 after the residual add and before the final ReLU."""
    for b in range(blocks):
        s = stride if b == 0 else 1
        y = F.relu(_bn(sd, f"{p}.{b}.bn1", _conv(sd, f"{p}.{b}.conv1", x)))
        y = F.relu(_bn(sd, f"{p}.{b}.bn2", _conv(sd, f"{p}.{b}.conv2", y, s, 1)))
        y = _bn(sd, f"{p}.{b}.bn3", _conv(sd, f"{p}.{b}.conv3", y))
        identity = _bn(sd, f"{p}.0.downsample.1", _conv(sd, f"{p}.0.downsample.0", x, s)) if f"{p}.{b}.downsample.0.weight" in sd else x
        y = y + identity
        if b == 0 and feedback is not None:
            y = y + _conv(sd, f"{p}.0.rfp_conv", feedback)
        x = F.relu(y)
    return x


STAGE = """
pyramidgraph: 1
inputs: {C2: {level: 2}, F3: {level: 3}}
nodes:
  S: {from: [C2, F3], apply: {bottleneck_stage: {blocks: 3, planes: 4, stride: 2}}, level: 3}
  T: {from: [S], apply: {bottleneck_stage: {blocks: 2, planes: 4}}}
outputs: [S, T]
"""


def test_the_bottleneck_stage_with_feedback_is_the_direct_computation():
    neck = randomise(pyramidgraph.compile(STAGE, [8, 6]))
    sd = {k.replace(".op.", ".").replace(".apply.", "."): v for k, v in neck.state_dict().items()}  # the op's module under its node
    assert {k.split(".", 1)[1] for k in sd if k.startswith("S.0.")} >= {"0.rfp_conv.weight", "0.rfp_conv.bias", "0.downsample.0.weight", "0.downsample.1.running_var", "0.conv2.weight", "0.bn3.bias"}
    assert not any(".downsample." in k for k in sd if k.startswith("T."))  # stride 1 and 16 -> 16 channels: the identity is x
    assert not any("rfp_conv" in k for k in sd if not k.startswith("S.0."))
    c2, f3 = torch.randn(2, 8, 13, 9), torch.randn(2, 6, 7, 5)  # 13x9 -> 7x5 (ceil, padded 3x3 stride 2)
    with torch.no_grad():
        s, t = neck([c2, f3])
        direct_s = _stage(sd, "S", c2, 3, 2, f3)
        direct_t = _stage(sd, "T", direct_s, 2, 1)
    assert s.shape == (2, 16, 7, 5) and t.shape == (2, 16, 7, 5)
    torch.testing.assert_close(s, direct_s, rtol=0, atol=1e-5)
    torch.testing.assert_close(t, direct_t, rtol=0, atol=1e-5)
    without = _stage(sd, "S", c2, 3, 2)
    assert (s - without).abs().max() > 0.1  # the feedback is live


def test_the_feedback_must_be_at_the_stages_output_level_and_size():
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(STAGE.replace("F3: {level: 3}", "F3: {level: 4}"), [8, 6])
    assert info.value.issues[0].message == "bottleneck_stage: the feedback is at level 4, but the stage's output is at level 3; feed back a map of the output's level"
    neck = pyramidgraph.compile(STAGE, [8, 6])
    with pytest.raises(ValueError) as info:
        neck([torch.randn(1, 8, 13, 9), torch.randn(1, 6, 6, 5)])
    assert str(info.value).startswith("neck 'neck': input sizes fail at nodes.S: bottleneck_stage: the feedback (6x5) is added to the stage's output (7x5), so their sizes must be equal")


def _module_free(sd):
    """Our keys without the apply ops' own module part (``R0_layer1.op.0.conv1`` -> ``R0_layer1.0.conv1``)."""
    return {k.replace(".op.", ".").replace(".apply.", "."): v for k, v in sd.items()}


def _rfp_directly(sd, inputs, steps, blocks, levels=5):
    """DetectoRS' RFP forward (mmdet's rfp.py and detectors_resnet.py), written on our keys."""
    image, feats = inputs[0], list(inputs[1:])

    def fpn(cs):
        lat = [_conv(sd, f"fpn.L{2 + i}.post0", c) for i, c in enumerate(cs)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        outs = [_conv(sd, f"fpn.P{2 + i}.post0", m, padding=1) for i, m in enumerate(lat)]
        while len(outs) < levels:
            outs.append(F.max_pool2d(outs[-1], 1, 2))
        return outs

    def aspp(x):
        pooled = F.adaptive_avg_pool2d(x, 1)
        branches = [F.relu(_conv(sd, f"A3_0.post0.{k}", pooled if k == 3 else x, padding=d if d > 1 else 0, dilation=d)) for k, d in enumerate((1, 3, 6, 1))]
        branches[-1] = branches[-1].expand_as(branches[-2])
        return torch.cat(branches, 1)

    x = fpn(feats)
    for s in range(steps - 1):
        feedback = [None] + [aspp(t) for t in x[1:4]]
        y = F.max_pool2d(F.relu(_bn(sd, f"R{s}_stem.bn1", _conv(sd, f"R{s}_stem.conv1", image, 2, 3))), 3, 2, 1)
        stages = []
        for i in range(4):
            y = _stage(sd, f"R{s}_layer{i + 1}", y, blocks[i], 1 if i == 0 else 2, feedback[i])
            stages.append(y)
        new = fpn(stages)
        blended = []
        for a, b in zip(new, x):
            w = torch.sigmoid(_conv(sd, "X2_1.fuse", a))
            blended.append(w * a + (1 - w) * b)
        x = blended
    return x


def test_three_steps_at_an_odd_image_size_are_the_direct_computation():
    image = (70, 45)
    neck = randomise(pyramidgraph.compile("rfp", SMALL_IN, steps=3, image=image, **SMALL))
    inferred = pyramidgraph.validate("rfp", SMALL_IN, steps=3, image=image, **SMALL)
    sizes = [(70, 45), (18, 12), (9, 6), (5, 3), (3, 2)]  # ceil(side / stride): image, C2..C5
    assert [shape.size for _, shape in inferred.ir.inputs] == sizes
    torch.manual_seed(2)
    inputs = [torch.randn(2, c, *size) for c, size in zip(SMALL_IN, sizes)]
    with torch.no_grad():
        ours = neck(inputs)
        direct = _rfp_directly(_module_free(neck.state_dict()), inputs, 3, SMALL["stage_blocks"])
    assert neck.output_names == ["P2", "P3", "P4", "P5", "P6"] and neck.strides == [4, 8, 16, 32, 64]
    assert [tuple(o.shape) for o in ours] == [(2, 16, 18, 12), (2, 16, 9, 6), (2, 16, 5, 3), (2, 16, 3, 2), (2, 16, 2, 1)]
    for a, b in zip(ours, direct, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


def test_the_weights_are_shared_as_mmdet_shares_them():
    neck = pyramidgraph.compile("rfp", SMALL_IN, steps=3, **SMALL)
    keys = list(neck.state_dict())
    assert {k.split(".")[0] for k in keys} == {"fpn", "A3_0", "X2_1", "R0_stem", "R1_stem"} | {f"R{s}_layer{i}" for s in (0, 1) for i in (1, 2, 3, 4)}
    assert sorted(k for k in keys if k.startswith("fpn.")) == sorted(f"fpn.{n}{level}.post0.{p}" for n in "LP" for level in (2, 3, 4, 5) for p in ("weight", "bias"))  # one FPN, no P6 conv
    assert sorted(k for k in keys if k.startswith("A3_0.")) == sorted(f"A3_0.post0.{b}.{p}" for b in range(4) for p in ("weight", "bias"))  # one ASPP
    assert [k for k in keys if k.startswith("X2_1.")] == ["X2_1.fuse.weight", "X2_1.fuse.bias"]  # one gate conv
    assert neck.state_dict()["X2_1.fuse.weight"].shape == (1, 16, 1, 1)
    rfp_convs = [k for k in keys if "rfp_conv.weight" in k]
    assert len(rfp_convs) == 6 and all(".0.rfp_conv." in k and "_layer1." not in k for k in rfp_convs)  # stages 2..4 of each ResNet
    fresh = pyramidgraph.compile("rfp", SMALL_IN, **SMALL).state_dict()
    assert all(fresh[k].abs().sum() == 0 for k in fresh if "rfp_conv" in k or k.startswith("X2_1."))  # mmdet zero-initialises them


# -- what the converter refuses -------------------------------------------------------------


def _with(change):
    config = copy.deepcopy(CONFIG)
    change(config["necks"][0], config["necks"][0]["rfp_backbone"], config)
    return config


REFUSED = [
    (lambda n, b, c: b.update(sac={"type": "SAC", "use_deform": True}), "rfp_backbone.sac {'type': 'SAC', 'use_deform': True}: switchable atrous convolution (SAC) is not supported; set sac None"),
    (
        lambda n, b, c: b.update(conv_cfg={"type": "ConvAWS"}),
        "rfp_backbone.conv_cfg {'type': 'ConvAWS'}: only plain convolutions (conv_cfg None) are supported, not weight-standardised ones (ConvAWS) or other conv layers",
    ),
    (lambda n, b, c: b.update(depth=18), "rfp_backbone.depth 18 is not supported; DetectoRS_ResNet has depths 50, 101, 152 (Bottleneck stages)"),
    (lambda n, b, c: b.update(style="caffe"), "rfp_backbone.style 'caffe': only style 'pytorch' (the stride on the 3x3 conv) is supported, not 'caffe' (the stride on the first 1x1 conv)"),
    (lambda n, b, c: b.update(deep_stem=True), "rfp_backbone.deep_stem True: only the 7x7 stem is supported (deep_stem False)"),
    (lambda n, b, c: b.update(type="ResNet"), "rfp_backbone.type 'ResNet' is not supported; RFP's backbone is DetectoRS_ResNet"),
    (lambda n, b, c: b.update(rfp_inplanes=64), "rfp_backbone.rfp_inplanes 64 must be the ASPP's width, len(aspp_dilations) * aspp_out_channels = 32"),
    (lambda n, b, c: n.update(rfp_steps=1), "rfp_steps 1 runs the FPN alone (the ASPP, rfp_weight and no ResNet are built, none used); convert it as an mmdet FPN, or set rfp_steps >= 2"),
    (lambda n, b, c: n.update(aspp_dilations=[1, 3, 6, 2]), "aspp_dilations [1, 3, 6, 2]: the last branch reads the global average pool, so its dilation must be 1 (mmdet asserts it)"),
    (lambda n, b, c: n.update(start_level=1), "RFP feeds the FPN's outputs 1..3 back into the ResNet's stages 2..4, so the FPN must use all of C2..C5 (start_level 0, end_level -1)"),
    (lambda n, b, c: n.update(in_channels=[32, 64, 128, 512]), "in_channels [32, 64, 128, 512] must be the rfp_backbone's stage widths [32, 64, 128, 256] (base_channels 8 * 4 * 2**i): the FPN runs on both"),
    (lambda n, b, c: n.update(norm_cfg={"type": "LN"}), "RFP's FPN: norm_cfg type 'LN' is not supported (BN, SyncBN, GN or None)"),
    (lambda n, b, c: n.update(sac=True), "RFP: unknown arguments ['sac']"),
    (lambda n, b, c: c.update(strides=[4, 8, 16, 32]), "strides must be [1, 4, 8, 16, 32] (the image, then C2..C5: the ResNet's stages line up with them), got [4, 8, 16, 32]"),
]


@pytest.mark.parametrize("change, message", REFUSED, ids=[m.split(" ")[0] for _, m in REFUSED])
def test_configs_the_spec_cannot_reproduce_are_refused_naming_the_key(change, message):
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion("mmdet.rfp", _with(change))
    assert [issue.format() for issue in info.value.issues] == [f"mmdet.rfp: config: {message}"]


def test_training_only_arguments_and_other_depths_convert():
    plan = conversion("mmdet.rfp", _with(lambda n, b, c: b.update(depth=101, frozen_stages=-1, norm_eval=False, with_cp=True, stage_with_sac=[False, True, True, True])))
    assert plan.params["stage_blocks"] == [3, 4, 23, 3]
    plan = conversion("mmdet.rfp", _with(lambda n, b, c: n.update(rfp_steps=3)))
    assert plan.params["steps"] == 3 and "rfp_modules.1.layer4" in plan.key_map.prefixes
