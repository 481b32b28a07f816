"""efficientdet-pytorch's BiFpn reproduced by specs/bifpn.yaml (pyramidgraph/interop/effdet.py).

Fixtures: the shared ``effdet_bifpn`` (efficientdet_d0: symmetric padding) and
``effdet_tf_bifpn`` (tf_efficientdet_d0: TF-same pools, redundant biases), and the cases recorded
here with /work/shared/peers/make_fixtures.py (tests/interop/fixtures/effdet_*.pt, configs in
fixtures/effdet_cases.json): a tf_ model on odd image sizes; efficientdet_d1 with 3 cells; full
3x3 convs with 1x1 top levels (resdet50); softmax weights with conv->bn->act and unnormalised
projections; unweighted sums (tf lite, d7x with 6 levels); 5 inputs and 4 inputs from level 2;
2 levels; bilinear, nearest, average (both paddings) downsampling; bicubic upsampling;
leaky_relu, relu6, hard_swish. Full-size models (d0-d7, tf_d0-d7x...) are checked by parameter
and state_dict counts recorded from effdet 0.4.1 and by a formula derived independently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recorded import load_case, shared_cases, shared_index

import pyramidgraph
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.interop.effdet import DEFAULT_CONFIG, MODEL_CONFIGS, effdet_config

HERE = Path(__file__).resolve().parent
INDEX = shared_index()
LOCAL_CASES = sorted((HERE / "fixtures").glob("effdet_*.pt"))
CASES = shared_cases(["effdet_bifpn", "effdet_tf_bifpn"]) + [pytest.param(p, id=p.stem) for p in LOCAL_CASES]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
SOURCE = "effdet.BiFpn"


def close(ours: torch.Tensor, ref: torch.Tensor) -> bool:
    return ours.shape == ref.shape and (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def reference_params(case: dict) -> int:
    if case["id"] in INDEX:
        return INDEX[case["id"]]["num_params"]
    return sum(v.numel() for k, v in case["state_dict"].items() if not k.endswith(BUFFERS))


def test_every_recorded_case_is_tested():
    assert len(LOCAL_CASES) >= 15 and len(CASES) >= 17
    recorded = {case["id"] for case in json.loads((HERE / "fixtures" / "effdet_cases.json").read_text())}
    assert recorded == {p.stem for p in (HERE / "fixtures").glob("effdet_*.pt")}


@pytest.mark.parametrize("path", CASES)
def test_fixture_is_reproduced(path: Path):
    case = load_case(path)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == reference_params(case)
    assert len(neck.state_dict()) == len(case["state_dict"])
    with torch.no_grad():
        outputs = neck(list(case["inputs"]))
    assert isinstance(outputs, list) and len(outputs) == len(case["outputs"])  # BiFpn.forward returns a list, finest first
    for index, (ours, ref) in enumerate(zip(outputs, case["outputs"])):
        assert close(ours, ref), f"output {index}: max error {(ours - ref).abs().max().item() if ours.shape == ref.shape else (ours.shape, ref.shape)}"


# -- the model table -------------------------------------------------------------------------

# BiFpn built by effdet 0.4.1 for each model with its backbone's feature_info (timm, no weights):
# (backbone widths at strides 8, 16, 32; parameters; state_dict entries).
RECORDED = {
    "efficientdet_d0": ([40, 112, 320], 194361, 228),
    "efficientdet_d1": ([40, 112, 320], 387628, 292),
    "efficientdet_d2": ([48, 120, 352], 703007, 356),
    "efficientdet_d3": ([48, 136, 384], 1550834, 420),
    "efficientdet_d4": ([56, 160, 448], 3349829, 546),
    "efficientdet_d5": ([64, 176, 512], 5405893, 546),
    "tf_efficientdet_d0": ([40, 112, 320], 196281, 258),
    "tf_efficientdet_d1": ([40, 112, 320], 390972, 330),
    "tf_efficientdet_d2": ([48, 120, 352], 708159, 402),
    "tf_efficientdet_d3": ([48, 136, 384], 1559474, 474),
    "tf_efficientdet_d4": ([56, 160, 448], 3349829, 546),
    "tf_efficientdet_d5": ([64, 176, 512], 5405893, 546),
    "tf_efficientdet_d6": ([72, 200, 576], 10583808, 554),
    "tf_efficientdet_d7": ([72, 200, 576], 10583808, 554),
    "tf_efficientdet_d7x": ([80, 224, 640], 13112064, 682),
    "tf_efficientdet_lite0": ([40, 112, 320], 196224, 234),
    "tf_efficientdet_lite3x": ([48, 136, 384], 2333200, 426),
    "efficientdetv2_dt": ([48, 128, 208], 798815, 344),
    "resdet50": ([512, 1024, 2048], 3002988, 260),
    "cspresdet50": ([256, 512, 1024], 2620012, 260),
    "mobiledetv3_large": ([40, 112, 960], 317241, 228),
    "efficientdet_es": ([48, 144, 192], 1189785, 204),
}


def formula_params(name: str, widths: list[int]) -> int:
    """BiFpn's parameter count, derived from the paper's layout rather than from the spec.

    A cell has 2 (L - 1) nodes (L levels), each with a 3x3 conv block (separable: depthwise 9C
    plus pointwise C*C; else 9C*C; a bias C with redundant_bias before BN unless conv-bn-act;
    BN 2C) and one fusion weight per input (top-down nodes 2 inputs, bottom-up 3 but 2 at the
    top: 5L - 6 in all; none for bifpn_sum). In the first cell, every node reading a backbone
    level of width w != C projects it itself (the finest level is read by 1 node, others by 2)
    with w*C, a bias unless BN without redundant bias, and BN 2C with apply_resample_bn; the
    first extra level projects the last input once more.
    """
    c = effdet_config(name)
    C, L, cells = c["fpn_channels"], c["max_level"] - c["min_level"] + 1, c["fpn_cell_repeats"]
    pre_act = not c["conv_bn_relu_pattern"]
    conv = (9 * C + C * C if c["separable_conv"] else 9 * C * C) + (C if c["redundant_bias"] and pre_act else 0) + 2 * C
    weights = 0 if c["fpn_name"] == "bifpn_sum" else 5 * L - 6

    def projection(w: int) -> int:
        if w == C:
            return 0
        return w * C + (C if not c["apply_resample_bn"] or c["redundant_bias"] else 0) + (2 * C if c["apply_resample_bn"] else 0)

    projections = sum((1 if i == 0 else 2) * projection(w) for i, w in enumerate(widths))
    extra = projection(widths[-1]) if len(widths) < L else 0
    return cells * (2 * (L - 1) * conv + weights) + projections + extra


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_full_size_parameter_counts(name: str):
    widths, params, entries = RECORDED[name]
    assert formula_params(name, widths) == params
    neck = from_reference(SOURCE, {"base_config": name, "in_channels": widths, "reductions": [8, 16, 32], "overrides": {}})
    assert sum(p.numel() for p in neck.parameters()) == params
    assert len(neck.state_dict()) == entries
    levels = range(3, effdet_config(name)["max_level"] + 1)
    image = effdet_config(name)["image_size"]
    assert [s.size for _, s in neck.info.outputs] == [(-(-image[0] // 2**level), -(-image[1] // 2**level)) for level in levels]
    shapes = list(neck.output_shapes.values())
    assert [s.stride for s in shapes] == [2**level for level in levels]
    assert {s.channels for s in shapes} == {effdet_config(name)["fpn_channels"]}


def test_config_table_values():
    assert len(MODEL_CONFIGS) == 47
    d0 = effdet_config("efficientdet_d0")
    assert (d0["pad_type"], d0["redundant_bias"], d0["fpn_channels"], d0["fpn_cell_repeats"], d0["image_size"]) == ("", False, 64, 3, (512, 512))
    assert effdet_config("tf_efficientdet_d7x")["num_levels"] == 6
    assert effdet_config("tf_efficientdet_d0", {"max_level": 8})["num_levels"] == 5  # overrides do not recompute it
    assert effdet_config("efficientdet_d4")["pad_type"] == DEFAULT_CONFIG["pad_type"] == "same"


def test_conversion_parameters():
    config = {"base_config": "tf_efficientdet_d6", "in_channels": [8, 16, 32], "reductions": [8, 16, 32], "overrides": {"image_size": [100, 76]}}
    params = conversion(SOURCE, config).params
    assert params == {
        "channels": 384, "cells": 8, "first_level": 3, "max_level": 7, "fusion": "sum", "act": "silu", "order": "act_conv_bn",
        "separable": True, "conv_bias": True, "bn_eps": 1e-3, "bn_momentum": 0.01, "resample_bn": True, "resample_bias": True,
        "down": "max", "up": "nearest", "padding": "same", "layout": "bifpn",
    }
    assert conversion(SOURCE, config).image == (100, 76)
    plain = conversion(SOURCE, dict(config, base_config="resdet50", overrides={"conv_bn_relu_pattern": True, "redundant_bias": True})).params
    assert (plain["order"], plain["conv_bias"], plain["separable"], plain["act"], plain["padding"]) == ("conv_bn_act", False, False, "relu", "symmetric")


def test_tf_image_output_shapes_odd():
    config = {"base_config": "tf_efficientdet_d2", "in_channels": [48, 120, 352], "reductions": [8, 16, 32], "overrides": {"image_size": [500, 333]}}
    neck = from_reference(SOURCE, config)
    assert [(s.channels, s.level, *s.size) for _, s in neck.info.outputs] == [(112, 3, 63, 42), (112, 4, 32, 21), (112, 5, 16, 11), (112, 6, 8, 6), (112, 7, 4, 3)]


# -- what is refused ---------------------------------------------------------------------------


def base(**overrides) -> dict:
    return {"base_config": "efficientdet_d0", "in_channels": [8, 16, 32], "reductions": [8, 16, 32], "overrides": {"fpn_channels": 8, "image_size": [128, 128], **overrides}}


@pytest.mark.parametrize(
    "config, message",
    [
        (base(fpn_name="pan_max"), "fpn_name 'pan_max' is not one of effdet's layouts the bifpn spec reproduces: bifpn_fa, bifpn_attn, bifpn_sum, pan_fa, pan_sum, qufpn_fa, qufpn_sum"),
        (base(fpn_config={"nodes": []}), "custom fpn_config is not supported"),
        (base(max_level=8), "num_levels is 5 but min_level 3 .. max_level 8 is 6 levels"),
        (dict(base(), reductions=[4, 8, 16]), "the reductions must be [8, 16, 32]"),
        (dict(base(), in_channels=[8] * 6, reductions=[2**i for i in range(3, 9)]), "6 inputs with 6 reductions for 5 levels"),
        (base(act_type="prelu"), "act_type 'prelu' is not supported"),
        (base(pad_type="valid"), "pad_type 'valid' is not supported"),
        (base(downsample_type="trilinear"), "downsample_type 'trilinear' is not supported"),
        (base(downsample_type="area"), "downsample_type 'area' is not supported"),
        (base(upsample_type="area"), "upsample_type 'area' is not supported"),
        (base(norm_kwargs={"eps": 1e-3, "affine": False}), "norm_kwargs ['affine'] are not supported"),
        (base(image_size=[256, 64]), "halves one side only"),
        (base(image_size=[64, 64], downsample_type="avg"), "average pooling would divide it by 9"),
        (dict(base(), base_config="efficientdet_d9"), "unknown base_config 'efficientdet_d9'"),
    ],
)
def test_unsupported_configs_are_refused(config: dict, message: str):
    with pytest.raises(SpecError) as info:
        from_reference(SOURCE, config)
    assert message in str(info.value)


@pytest.mark.parametrize(("name", "layout", "nodes"), [("cspresdext50pan", "pan", 2 * 5), ("cspdarkdet53m", "qufpn", 4 * 4 + 5), ("efficientdet_q1", "qufpn", 4 * 4 + 5)])
def test_pan_and_quad_layouts_convert(name: str, layout: str, nodes: int):
    """effdet runs its pan_* and qufpn_* layouts (tests/sweeps/effdet_bifpn.py compares them):
    a PAN cell has a top-down and a bottom-up node per level, a quad cell four paths of L - 1
    nodes (the third and fourth start from the inputs) and L sums."""
    config = {"base_config": name, "in_channels": [8, 16, 32], "reductions": [8, 16, 32], "overrides": {"fpn_channels": 8, "image_size": [128, 128], "fpn_cell_repeats": 1}}
    plan = conversion(SOURCE, config)
    assert plan.params["layout"] == layout
    neck = from_reference(SOURCE, config)
    assert len({key.split(".")[1] for key in neck.state_dict() if key.startswith("cell0.")}) == nodes


def test_image_64_max_pooling_of_1x1_levels_is_accepted():
    # levels 6 and 7 are both 1x1: effdet does not pool, a max pool of a 1x1 map changes nothing
    assert len(from_reference(SOURCE, base(image_size=[64, 64])).output_shapes) == 5


def test_state_dict_must_fit_exactly():
    case = load_case(LOCAL_CASES[0])
    state = dict(case["state_dict"])
    state.pop(next(k for k in state if k.endswith("edge_weights")))
    with pytest.raises(SpecError, match="gets no value from the reference"):
        from_reference(case["source"], case["config"], state)
    state = dict(case["state_dict"], **{"cell.0.fnode.0.combine.bogus": torch.zeros(1)})
    with pytest.raises(SpecError, match="bogus"):
        from_reference(case["source"], case["config"], state)


# -- the spec on its own -----------------------------------------------------------------------


def test_bundled_example_is_efficientdet_d0():
    neck = pyramidgraph.compile("bifpn")
    assert sum(p.numel() for p in neck.parameters()) == RECORDED["efficientdet_d0"][1]
    # the spec's defaults are what efficientdet_d0 converts to, so its example computes D0's BiFPN
    d0 = conversion(SOURCE, {"base_config": "efficientdet_d0", "in_channels": [40, 112, 320], "reductions": [8, 16, 32], "overrides": {}})
    assert (d0.in_channels, d0.image) == (neck.in_channels, neck.info.image)
    assert {name: neck.info.params[name] for name in d0.params} == d0.params


@pytest.mark.parametrize(
    "down, padding",
    [("max", "symmetric"), ("avg", "symmetric"), ("max", "same"), ("avg", "same"), ("nearest", "symmetric"), ("bilinear", "symmetric"), ("bicubic", "symmetric"), ("area", "symmetric")],
)
def test_spec_downsampling_makes_ceil_sizes(down: str, padding: str):
    neck = pyramidgraph.compile("bifpn", [8, 16, 32], image=(100, 76), channels=8, cells=1, down=down, padding=padding).eval()
    with torch.no_grad():
        outputs = neck(neck.example_inputs(image=(100, 76)))
    assert [tuple(o.shape[-2:]) for o in outputs] == [(13, 10), (7, 5), (4, 3), (2, 2), (1, 1)]


def test_spec_rejects_a_bad_order_and_padding_listing_the_allowed_values():
    path = pyramidgraph.bundled_specs()["bifpn"]
    lines = path.read_text().splitlines()
    for name, value, message in [
        ("order", "bn_conv_act", "parameter 'order' cannot be 'bn_conv_act'; allowed: 'act_conv_bn', 'conv_bn_act'; did you mean 'conv_bn_act'?"),
        ("padding", "valid", "parameter 'padding' cannot be 'valid'; allowed: 'symmetric', 'same'"),
    ]:
        with pytest.raises(SpecError) as caught:
            pyramidgraph.compile("bifpn", **{name: value})
        (issue,) = caught.value.issues
        line = next(i for i, text in enumerate(lines, 1) if text.startswith(f"  {name}: "))
        assert (issue.file, issue.line, issue.col, issue.path, issue.message) == (str(path), line, len(name) + 5, f"params.{name}", message)
