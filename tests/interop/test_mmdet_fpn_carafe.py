"""mmdetection's FPN_CARAFE: keys, parameter counts and forward, against the reference's rules.

mmcv's CARAFE op is a CUDA kernel with no CPU version (and the peers' mmcv-lite has no compiled
ops at all): the recorded ``carafe`` cases (``tests/interop/fixtures/mmdet_fpn_carafe_carafe_*``)
run mmdetection's and mmcv's Python with only that kernel replaced by a transcription of mmcv's
naive CUDA kernel. Independently of any recording, here a state_dict named exactly as
mmdetection names it (``lateral_convs.i.conv.weight``, ``upsample_modules.i.channel_compressor.weight``...)
must load strictly, the parameter count is computed by hand from the constructor arguments, and
the forward is compared with FPN_CARAFE's forward written out below with ``torch.nn.functional``
and the loop CARAFE of ``tests/test_carafe.py``. The other upsamplers (nearest, bilinear,
deconv, pixel_shuffle) are recorded from mmdetection as they are; ``test_fixtures.py`` checks
every recording.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from recorded import LOCAL
from test_carafe import carafe_loop

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

STRIDES = [4, 8, 16, 32]
CARAFE = {"type": "carafe", "up_kernel": 5, "up_group": 1, "encoder_kernel": 3, "encoder_dilation": 1}


def _config(**cfg) -> dict:
    strides = cfg.pop("strides", STRIDES)
    return {"strides": strides, "necks": [{"type": "FPN_CARAFE", **cfg}]}


def _layout(cfg: dict) -> tuple[int, int, int]:
    """(start, backbone_end, number of levels) as FPN_CARAFE's constructor computes them."""
    start, end, num_ins = cfg.get("start_level", 0), cfg.get("end_level", -1), len(cfg["in_channels"])
    backbone_end = num_ins if end in (-1, num_ins - 1) else end + 1
    return start, backbone_end, cfg["num_outs"]


def _conv_modules(cfg: dict) -> dict[str, tuple[int, int, int]]:
    """Every ConvModule: mmdet prefix -> (in, out, kernel)."""
    start, backbone_end, levels = _layout(cfg)
    out = cfg["out_channels"]
    modules = {}
    for i in range(levels):
        if i < backbone_end - start:
            modules[f"lateral_convs.{i}"] = (cfg["in_channels"][start + i], out, 1)
        else:
            modules[f"lateral_convs.{i}"] = (cfg["in_channels"][backbone_end - 1] if i == backbone_end - start else out, out, 3)
        modules[f"fpn_convs.{i}"] = (out, out, 3)
    return modules


def _upsampler_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """One upsample module's parameters, by name inside it, as mmcv builds them."""
    up, out = cfg.get("upsample_cfg", CARAFE), cfg["out_channels"]
    if up["type"] == "carafe":
        m = up.get("compressed_channels", 64)
        mask = up.get("up_kernel", 5) ** 2 * up.get("up_group", 1) * 4
        k = up.get("encoder_kernel", 3)
        return {"channel_compressor.weight": (m, out, 1, 1), "channel_compressor.bias": (m,), "content_encoder.weight": (mask, m, k, k), "content_encoder.bias": (mask,)}
    if up["type"] == "deconv":
        k = up["upsample_kernel"]
        return {"weight": (out, out, k, k), "bias": (out,)}  # ConvTranspose2d: (in, out, k, k)
    if up["type"] == "pixel_shuffle":
        k = up["upsample_kernel"]
        return {"upsample_conv.weight": (4 * out, out, k, k), "upsample_conv.bias": (4 * out,)}
    return {}


def hand_count(cfg: dict) -> int:
    """FPN_CARAFE's parameter count from its constructor arguments."""
    norm = cfg.get("norm_cfg")
    total = 0
    for cin, cout, k in _conv_modules(cfg).values():
        total += cin * cout * k * k + (cout if norm is None else 2 * cout)  # the conv's bias, or the norm's weight and bias
    per_upsampler = 0
    for shape in _upsampler_shapes(cfg).values():
        per_upsampler += torch.Size(shape).numel()
    return total + per_upsampler * (_layout(cfg)[2] - 1)


def mmdet_state_dict(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict with mmdetection's keys: ConvModules (``conv``, ``bn``/``gn``), then
    ``upsample_modules.i``, norm statistics randomised too."""
    g = torch.Generator().manual_seed(seed)
    norm = (cfg.get("norm_cfg") or {}).get("type")
    sd: dict[str, torch.Tensor] = {}
    for prefix, (cin, cout, k) in _conv_modules(cfg).items():
        sd[f"{prefix}.conv.weight"] = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
        if norm is None:
            sd[f"{prefix}.conv.bias"] = torch.randn(cout, generator=g) * 0.1
        elif norm == "BN":
            sd[f"{prefix}.bn.weight"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{prefix}.bn.bias"] = torch.randn(cout, generator=g) * 0.1
            sd[f"{prefix}.bn.running_mean"] = torch.randn(cout, generator=g) * 0.1
            sd[f"{prefix}.bn.running_var"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(7)
        else:
            sd[f"{prefix}.gn.weight"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{prefix}.gn.bias"] = torch.randn(cout, generator=g) * 0.1
    for i in range(_layout(cfg)[2] - 1):
        for name, shape in _upsampler_shapes(cfg).items():
            sd[f"upsample_modules.{i}.{name}"] = torch.randn(shape, generator=g) * 0.3
    return {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}


def direct(cfg: dict, sd: dict[str, torch.Tensor], inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """FPN_CARAFE's forward (eval mode) written out with torch.nn.functional."""
    norm_cfg, act_cfg = cfg.get("norm_cfg"), cfg.get("act_cfg")
    act_first = tuple(cfg.get("order", ("conv", "norm", "act")))[0] == "act"
    up = cfg.get("upsample_cfg", CARAFE)

    def act(x):
        if act_cfg is None:
            return x
        return F.leaky_relu(x, act_cfg.get("negative_slope", 0.01)) if act_cfg["type"] == "LeakyReLU" else F.relu(x)

    def conv_module(prefix, x, stride, padding):
        if act_first:
            x = act(x)
        x = F.conv2d(x, sd[f"{prefix}.conv.weight"], sd.get(f"{prefix}.conv.bias"), stride, padding)
        if norm_cfg and norm_cfg["type"] == "BN":
            x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, norm_cfg.get("eps", 1e-5))
        elif norm_cfg:
            x = F.group_norm(x, norm_cfg["num_groups"], sd[f"{prefix}.gn.weight"], sd[f"{prefix}.gn.bias"], norm_cfg.get("eps", 1e-5))
        return x if act_first else act(x)

    def upsample(i, x):
        p = f"upsample_modules.{i}"
        if up["type"] == "carafe":
            d, k = up.get("encoder_dilation", 1), up.get("encoder_kernel", 3)
            compressed = F.conv2d(x, sd[f"{p}.channel_compressor.weight"], sd[f"{p}.channel_compressor.bias"])
            logits = F.conv2d(compressed, sd[f"{p}.content_encoder.weight"], sd[f"{p}.content_encoder.bias"], padding=(k - 1) * d // 2, dilation=d)
            return carafe_loop(x, logits, up.get("up_kernel", 5), up.get("up_group", 1), 2)
        if up["type"] == "deconv":
            k = up["upsample_kernel"]
            return F.conv_transpose2d(x, sd[f"{p}.weight"], sd[f"{p}.bias"], stride=2, padding=(k - 1) // 2, output_padding=(k - 1) // 2)
        if up["type"] == "pixel_shuffle":
            k = up["upsample_kernel"]
            return F.pixel_shuffle(F.conv2d(x, sd[f"{p}.upsample_conv.weight"], sd[f"{p}.upsample_conv.bias"], padding=(k - 1) // 2), 2)
        return F.interpolate(x, scale_factor=2, mode=up["type"], **({"align_corners": False} if up["type"] == "bilinear" else {}))

    start, backbone_end, levels = _layout(cfg)
    laterals = []
    for i in range(levels):
        if i < backbone_end - start:
            laterals.append(conv_module(f"lateral_convs.{i}", inputs[start + i], 1, 0))
        else:  # the first extra level reads the last input, the next ones the previous extra lateral
            laterals.append(conv_module(f"lateral_convs.{i}", inputs[backbone_end - 1] if i == backbone_end - start else laterals[-1], 2, 1))
    for i in range(levels - 1, 0, -1):
        finer = laterals[i - 1]
        laterals[i - 1] = finer + upsample(i - 1, laterals[i])[:, :, : finer.shape[2], : finer.shape[3]]
    return [conv_module(f"fpn_convs.{i}", x, 1, 1) for i, x in enumerate(laterals)]


def _inputs(cfg: dict, strides: list[int], image: tuple[int, int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return [torch.randn(1, c, -(-image[0] // s), -(-image[1] // s), generator=g, dtype=torch.float64) for c, s in zip(cfg["in_channels"], strides)]


PAPER = {
    "in_channels": [256, 512, 1024, 2048],
    "out_channels": 256,
    "num_outs": 5,
    "start_level": 0,
    "end_level": -1,
    "norm_cfg": None,
    "act_cfg": None,
    "order": ["conv", "norm", "act"],
    "upsample_cfg": {**CARAFE, "compressed_channels": 64},
}


def test_the_paper_configuration_counts_as_by_hand():
    """configs/carafe/faster-rcnn_r50_fpn-carafe_1x_coco.py. By hand: laterals 256*3840 + 4*256 =
    984,064; the extra 3x3/2 conv on C5 2048*256*9 + 256 = 4,718,848; five 3x3 output convs
    5 * 590,080 = 2,950,400; four CARAFE modules, each a 1x1 compressor 256 -> 64 (16,448) and a
    3x3 encoder 64 -> 5*5*1*2*2 = 100 (57,700): 4 * 74,148 = 296,592."""
    assert hand_count(PAPER) == 984_064 + 4_718_848 + 2_950_400 + 4 * 74_148 == 8_949_904
    plan = conversion("mmdet", _config(**PAPER))
    assert pyramidgraph.neck_info(plan.spec, plan.in_channels, params=plan.params).params == 8_949_904
    assert pyramidgraph.neck_info("fpn_carafe", [256, 512, 1024, 2048]).params == 8_949_904
    # CARAFE's share of it: the four upsamplers are 3.3 % of the neck
    assert round(100 * 4 * 74_148 / 8_949_904, 1) == 3.3


CASES = {
    "carafe_groups_bn_act_first_start1": (
        {
            "in_channels": [4, 6, 8, 8],
            "out_channels": 4,
            "num_outs": 5,
            "start_level": 1,
            "norm_cfg": {"type": "BN"},
            "act_cfg": {"type": "ReLU"},
            "order": ["act", "conv", "norm"],
            "upsample_cfg": {"type": "carafe", "up_kernel": 3, "up_group": 2, "encoder_kernel": 3, "encoder_dilation": 2, "compressed_channels": 3},
        },
        (84, 60),
    ),
    "carafe_default_kernels_gn_leaky_end_level": (
        {
            "in_channels": [4, 6, 8, 8],
            "out_channels": 4,
            "num_outs": 3,
            "end_level": 2,
            "norm_cfg": {"type": "GN", "num_groups": 2},
            "act_cfg": {"type": "LeakyReLU", "negative_slope": 0.2},
            "upsample_cfg": {"type": "carafe", "compressed_channels": 2},
        },
        (52, 44),
    ),
    "carafe_three_inputs_one_extra": ({"in_channels": [6, 8, 8], "out_channels": 4, "num_outs": 4, "upsample_cfg": {"type": "carafe", "up_kernel": 3, "compressed_channels": 4}, "strides": [8, 16, 32]}, (100, 76)),
    "deconv4": ({"in_channels": [4, 6, 8, 8], "out_channels": 4, "num_outs": 5, "upsample_cfg": {"type": "deconv", "upsample_kernel": 4}}, (76, 100)),
    "deconv3_odd": ({"in_channels": [4, 6, 8, 8], "out_channels": 4, "num_outs": 5, "upsample_cfg": {"type": "deconv", "upsample_kernel": 3}}, (76, 92)),
    "pixel_shuffle3_bn": ({"in_channels": [4, 6, 8, 8], "out_channels": 4, "num_outs": 5, "norm_cfg": {"type": "BN"}, "upsample_cfg": {"type": "pixel_shuffle", "upsample_kernel": 3}}, (52, 52)),
    "bilinear": ({"in_channels": [4, 6, 8, 8], "out_channels": 4, "num_outs": 6, "upsample_cfg": {"type": "bilinear"}}, (100, 68)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_mmdet_keys_load_strictly_and_the_forward_is_fpn_carafes(name):
    cfg, image = CASES[name]
    cfg = dict(cfg)
    strides = cfg.pop("strides", STRIDES)
    sd = mmdet_state_dict(cfg)
    neck = from_reference("mmdet", _config(strides=strides, **cfg), {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}).double().eval()
    assert sum(p.numel() for p in neck.parameters()) == hand_count(cfg)
    inputs = _inputs(cfg, strides, image)
    with torch.no_grad():
        got = neck(inputs)
    expected = direct(cfg, sd, inputs)
    assert [tuple(y.shape) for y in got] == [tuple(y.shape) for y in expected]
    for ours, ref in zip(got, expected):
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)  # the weights went through float32


def test_the_key_map_names_each_mmdet_module():
    cfg, _ = CASES["carafe_groups_bn_act_first_start1"]
    prefixes = conversion("mmdet", _config(**cfg)).key_map.prefixes
    assert prefixes == {
        "lateral_convs.0": "L3.post0", "fpn_convs.0": "P3.post0", "upsample_modules.0": "P3_inner.from_P4_inner.via0",
        "lateral_convs.1": "L4.post0", "fpn_convs.1": "P4.post0", "upsample_modules.1": "P4_inner.from_P5_inner.via0",
        "lateral_convs.2": "L5.post0", "fpn_convs.2": "P5.post0", "upsample_modules.2": "P5_inner.from_P6_inner.via0",
        "lateral_convs.3": "L6.from_C5", "fpn_convs.3": "P6.post0", "upsample_modules.3": "P6_inner.from_P7_inner.via0",
        "lateral_convs.4": "L7.from_L6", "fpn_convs.4": "P7.post0",
    }  # fmt: skip


def test_a_missing_or_misshapen_key_is_named():
    cfg, _ = CASES["carafe_three_inputs_one_extra"]
    cfg = {k: v for k, v in cfg.items() if k != "strides"}
    sd = {k: v.float() for k, v in mmdet_state_dict(cfg).items()}
    del sd["upsample_modules.1.content_encoder.bias"]
    sd["upsample_modules.0.channel_compressor.weight"] = torch.zeros(5, 4, 1, 1)
    sd["upsample_modules.3.channel_compressor.weight"] = torch.zeros(4, 4, 1, 1)  # only three upsamplers
    with pytest.raises(pyramidgraph.SpecError) as err:
        from_reference("mmdet", _config(strides=[8, 16, 32], **cfg), sd)
    assert [issue.message for issue in err.value.issues] == [
        "'upsample_modules.0.channel_compressor.weight' has shape (5, 4, 1, 1) but 'P3_inner.from_P4_inner.via0.channel_compressor.weight' needs (4, 4, 1, 1)",
        "neck key 'P3_inner.from_P4_inner.via0.channel_compressor.weight' gets no value from the reference",
        "neck key 'P4_inner.from_P5_inner.via0.content_encoder.bias' gets no value from the reference",
        "reference key 'upsample_modules.3.channel_compressor.weight' has no counterpart",
    ]


def test_the_recordings_cover_every_upsampler():
    kinds = set()
    for path in LOCAL.glob("mmdet_fpn_carafe_*.pt"):
        case = torch.load(path, weights_only=False)
        (neck,) = case["config"]["necks"]
        assert neck["type"] == "FPN_CARAFE"
        kinds.add(neck["upsample_cfg"]["type"])
    assert kinds == {"nearest", "bilinear", "deconv", "pixel_shuffle", "carafe"}


BASE = {"in_channels": [4, 8, 8, 8], "out_channels": 8, "num_outs": 5}


@pytest.mark.parametrize(
    "changes,message",
    [
        (
            {"upsample_cfgs": {}},
            (
                "FPN_CARAFE: unknown argument 'upsample_cfgs'; did you mean 'upsample_cfg'? "
                "(FPN_CARAFE takes: act_cfg, end_level, in_channels, init_cfg, norm_cfg, num_outs, order, out_channels, start_level, upsample_cfg)"
            ),
        ),
        ({"init_cfg": {"type": "Xavier"}}, "FPN_CARAFE: init_cfg must be None (the reference asserts it, to keep its own init_weights)"),
        ({"order": ["norm", "conv", "act"]}, "FPN_CARAFE: order ('norm', 'conv', 'act') is not one the reference accepts: ('conv', 'norm', 'act') or ('act', 'conv', 'norm')"),
        ({"upsample_cfg": {"type": None}}, "FPN_CARAFE: upsample_cfg type None (no upsampling) is not supported: the reference still builds an upsampler per level and mmcv has no layer type None"),
        ({"upsample_cfg": {"type": "carafee"}}, "FPN_CARAFE: upsample_cfg type 'carafee' is not one the reference accepts; did you mean 'carafe'? (nearest, bilinear, deconv, pixel_shuffle, carafe)"),
        ({"upsample_cfg": {"type": "carafe", "up_kernel": 4}}, "FPN_CARAFE: upsample_cfg up_kernel must be odd (mmcv's carafe asserts it), got 4"),
        ({"upsample_cfg": {"type": "carafe", "up_group": 3}}, "FPN_CARAFE: upsample_cfg up_group 3 must divide out_channels 8 (mmcv's carafe asserts it)"),
        ({"upsample_cfg": {"type": "carafe", "up_kernel": 0}}, "FPN_CARAFE: upsample_cfg up_kernel must be a positive integer, got 0"),
        (
            {"upsample_cfg": {"type": "carafe", "encoder_kernel": 2}},
            "FPN_CARAFE: upsample_cfg encoder_kernel 2 with encoder_dilation 1: the content encoder's padding int((k - 1) * d / 2) shrinks the map, and mmcv's carafe refuses the mask",
        ),
        (
            {"upsample_cfg": {"type": "carafe", "scale_factor": 2}},
            "FPN_CARAFE: upsample_cfg key 'scale_factor': FPN_CARAFE sets it itself, and the extra levels' CARAFEPack then gets it twice (a TypeError in the reference); remove it",
        ),
        (
            {"upsample_cfg": {"type": "carafe", "kernel": 3}},
            "FPN_CARAFE: upsample_cfg key 'kernel' is not supported for type 'carafe': the reference passes it to the upsamplers between the inputs' levels but builds the extra levels' "
            "without it (supported: channels, compressed_channels, encoder_dilation, encoder_kernel, scale_factor, type, up_group, up_kernel)",
        ),
        ({"upsample_cfg": {"type": "deconv"}}, "FPN_CARAFE: upsample_cfg type 'deconv' needs upsample_kernel (the reference asserts it is there and > 0)"),
        (
            {"upsample_cfg": {"type": "deconv", "upsample_kernel": 1}},
            "FPN_CARAFE: upsample_cfg deconv upsample_kernel 1 is not supported: with padding and output_padding 0 each upsampled map is one row and column short of the finer map, "
            "so the reference's top-down sum fails; kernels 2, 3 and 4 are",
        ),
        (
            {"upsample_cfg": {"type": "deconv", "upsample_kernel": 5}},
            "FPN_CARAFE: upsample_cfg deconv upsample_kernel 5 is not supported: PyTorch refuses the reference's output_padding (k - 1) // 2, which is not smaller than the stride 2; kernels 2, 3 and 4 are",
        ),
        (
            {"upsample_cfg": {"type": "pixel_shuffle", "upsample_kernel": 2}},
            "FPN_CARAFE: upsample_cfg pixel_shuffle upsample_kernel 2: an even kernel with padding (k - 1) // 2 shrinks the map by one, so the reference's top-down sum fails; use an odd kernel",
        ),
        (
            {"upsample_cfg": {"type": "deconv", "upsample_kernel": 2, "bias": False}},
            "FPN_CARAFE: upsample_cfg key 'bias' is not supported for type 'deconv': the reference passes it to the upsamplers between the inputs' levels but builds the extra levels' "
            "without it (supported: type, upsample_kernel)",
        ),
        ({"norm_cfg": {"type": "LN"}}, "FPN_CARAFE: norm_cfg type 'LN' is not supported (BN, SyncBN, GN or None)"),
        ({"act_cfg": {"type": "PReLU"}}, "FPN_CARAFE: act_cfg type 'PReLU' is not supported (ReLU, ReLU6, SiLU, Swish, GELU, Sigmoid, Tanh, HSwish, LeakyReLU, ELU, HSigmoid or None)"),
        ({"end_level": 2}, "FPN_CARAFE: with end_level 2, num_outs must be 3, got 5"),
        ({"num_outs": 3}, "FPN_CARAFE: num_outs 3 is less than the 4 inputs used"),
        ({"in_channels": 8}, "FPN_CARAFE: in_channels must be a list (the reference asserts it), got 8"),
    ],
)
def test_configs_it_cannot_reproduce_are_refused_with_the_reason(changes, message):
    with pytest.raises(pyramidgraph.SpecError) as err:
        from_reference("mmdet", _config(**{**BASE, **changes}))
    assert [issue.message for issue in err.value.issues] == [message]


def test_keys_the_reference_overwrites_are_accepted_where_it_accepts_them():
    nearest = from_reference("mmdet", _config(**BASE, upsample_cfg={"type": "nearest", "mode": "bilinear", "scale_factor": 4}))
    plain = from_reference("mmdet", _config(**BASE, upsample_cfg={"type": "nearest"}))
    assert nearest.code == plain.code  # the reference sets mode and scale_factor itself
    no_extra = {**BASE, "num_outs": 4}
    neck = from_reference("mmdet", _config(**no_extra, upsample_cfg={"type": "carafe", "channels": 3, "scale_factor": 4, "compressed_channels": 4}))
    assert sum(p.numel() for p in neck.parameters()) == hand_count({**no_extra, "upsample_cfg": {"type": "carafe", "compressed_channels": 4}})
