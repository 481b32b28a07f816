"""mmdetection's FPN and PAFPN (``pyramidgraph/interop/mmdet_fpn.py``, specs ``fpn`` and ``pafpn``).

Parity with every recorded case (the shared fixtures and the ones recorded for this converter
in ``fixtures/``: every ``add_extra_convs`` mode, ``relu_before_extra_convs``, ``start_level``
and ``end_level``, ``upsample_cfg`` by size and by scale factor, nearest and bilinear, BN and
GN ConvModules, ``no_norm_on_lateral``, activations, odd image sizes), parameter counts
checked against mmdetection's for configurations too large to record, and the configs the
reference rejects rejected here too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recorded import load_case, shared_cases, shared_index

import pyramidgraph
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference

LOCAL = Path(__file__).resolve().parent / "fixtures"
SHARED_CASES = ["mmdet_fpn", "mmdet_fpn_retina_on_input", "mmdet_pafpn"]
LOCAL_CASES = [
    "mmdet_fpn_on_lateral",
    "mmdet_fpn_on_output_relu_odd",
    "mmdet_fpn_end_level",
    "mmdet_fpn_scale_factor",
    "mmdet_fpn_bilinear_odd",
    "mmdet_fpn_bn_extra_convs",
    "mmdet_fpn_gn_no_norm_on_lateral",
    "mmdet_pafpn_extra_convs_bn",
    "mmdet_pafpn_on_input",
    "mmdet_pafpn_on_lateral_gn",
    "mmdet_pafpn_end_level",
    "mmdet_fpn_start1_bfp",  # FPN ignoring C2, chained into BFP (Libra RetinaNet)
]
CASES = shared_cases(SHARED_CASES) + [pytest.param(LOCAL / f"{name}.pt", id=name) for name in LOCAL_CASES]


def _num_params(case: dict) -> int:
    if "num_params" in case:
        return case["num_params"]
    return shared_index()[case["id"]]["num_params"]


@pytest.mark.parametrize("path", CASES)
def test_reference_case_is_reproduced(path: Path):
    case = load_case(path)
    assert case["source"] == "mmdet" and case["config"]["necks"][0]["type"] in ("FPN", "PAFPN")
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == _num_params(case)
    with torch.no_grad():
        outputs = neck(list(case["inputs"]))
    assert isinstance(outputs, tuple)  # mmdet returns a tuple, finest first
    assert len(outputs) == len(case["outputs"])
    for index, (ours, ref) in enumerate(zip(outputs, case["outputs"])):
        assert ours.shape == ref.shape, f"output {index}"
        error = (ours - ref).abs().max().item()
        assert error <= 1e-4 * max(1.0, ref.abs().max().item()), f"output {index}: max error {error}"


def _convert(neck: dict, strides=(4, 8, 16, 32)):
    return conversion("mmdet", {"strides": list(strides), "necks": [neck]})


def _compile(neck: dict, strides=(4, 8, 16, 32), **kw):
    return from_reference("mmdet", {"strides": list(strides), "necks": [neck]}, **kw)


# Parameter counts of mmdetection 3.3's modules, built in the reference environment.
REFERENCE_COUNTS = [
    (dict(type="FPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5), 3_344_384),
    (dict(type="FPN", in_channels=[256, 512, 1024, 2048], out_channels=256, start_level=1, add_extra_convs="on_input", num_outs=5), 7_997_440),
    (dict(type="PAFPN", in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5), 6_884_864),
    (dict(type="FPN", in_channels=[8, 16, 32, 64, 128], out_channels=16, start_level=1, add_extra_convs="on_input", num_outs=6, norm_cfg=dict(type="BN")), 34_112),
    (
        dict(type="PAFPN", in_channels=[8, 16, 32, 64, 128], out_channels=16, start_level=1, end_level=3, num_outs=3, norm_cfg=dict(type="GN", num_groups=4), no_norm_on_lateral=True),
        18_192,
    ),
]


@pytest.mark.parametrize("neck,expected", REFERENCE_COUNTS, ids=["maskrcnn", "retinanet", "pafpn", "bn5", "pafpn_gn_end"])
def test_parameter_counts_equal_mmdetections(neck, expected):
    strides = [2 ** (2 + i) for i in range(len(neck["in_channels"]))]
    model = _compile(neck, strides)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_mmdet_defaults_are_the_bundled_specs_defaults():
    # A plain mmdet FPN / PAFPN (max-pooled extra level) is the spec with its default layout.
    for kind, spec in (("FPN", "fpn"), ("PAFPN", "pafpn")):
        plan = _convert(dict(type=kind, in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5))
        assert plan.spec == spec
        assert plan.params["extra"] == "maxpool" and plan.params["extra_levels"] == 1
        assert plan.params["init"] == "xavier_uniform"  # mmdet's init_cfg Xavier(uniform) on Conv2d
    assert sum(p.numel() for p in pyramidgraph.compile("fpn", [256, 512, 1024, 2048]).parameters()) == 3_344_384


def test_output_levels_and_ignored_inputs():
    # start_level 1 and end_level 2 of four inputs: C2 and C5 are accepted and ignored.
    neck = _compile(dict(type="FPN", in_channels=[8, 8, 16, 16], out_channels=8, start_level=1, end_level=2, num_outs=2))
    assert neck.output_names == ["P3", "P4"]
    assert neck.strides == [8, 16]
    inputs = neck.example_inputs(batch=1, image=(64, 64))
    assert len(inputs) == 4
    assert [tuple(o.shape) for o in neck(inputs)] == [(1, 8, 8, 8), (1, 8, 4, 4)]


def test_pafpn_extra_conv_on_lateral_reads_the_coarsest_lateral():
    plan = _convert(dict(type="PAFPN", in_channels=[8, 16, 16, 16], out_channels=8, add_extra_convs="on_lateral", relu_before_extra_convs=True, num_outs=7))
    assert plan.key_map.prefixes["fpn_convs.4.conv"] == "N6.from_L5.conv"
    assert plan.key_map.prefixes["fpn_convs.5.conv"] == "N7.from_N6_relu.conv"
    assert plan.key_map.prefixes["fpn_convs.6.conv"] == "N8.from_N7_relu.conv"
    neck = _compile(dict(type="PAFPN", in_channels=[8, 16, 16, 16], out_channels=8, add_extra_convs="on_lateral", relu_before_extra_convs=True, num_outs=7))
    outputs = neck(neck.example_inputs(batch=1, image=(100, 60)))
    assert [tuple(o.shape[-2:]) for o in outputs] == [(25, 15), (13, 8), (7, 4), (4, 2), (2, 1), (1, 1), (1, 1)]


def test_scale_factor_upsampling_needs_levels_twice_apart_as_in_mmdet():
    cfg = dict(type="FPN", in_channels=[8, 8, 16, 16], out_channels=8, upsample_cfg=dict(scale_factor=2), num_outs=4)
    plan = _convert(cfg)
    assert plan.params["upsample_by"] == "scale"
    neck = pyramidgraph.compile(plan.spec, plan.in_channels, params=plan.params, image=(96, 160))
    assert "scale_factor" in neck.code
    # 100 / 4 = 25 but 13 * 2 = 26: mmdetection's sum fails on this image, the spec says so up front.
    with pytest.raises(SpecError, match="do not line up"):
        pyramidgraph.validate(plan.spec, plan.in_channels, image=(100, 100), **plan.params)
    # by size (the default) the same image works
    plain = _convert(dict(cfg, upsample_cfg=dict(mode="nearest")))
    pyramidgraph.validate(plain.spec, plain.in_channels, image=(100, 100), **plain.params)


def test_fpn_chains_into_bfp():
    config = {
        "strides": [4, 8, 16, 32],
        "necks": [
            dict(type="FPN", in_channels=[8, 16, 16, 16], out_channels=8, start_level=1, add_extra_convs="on_output", num_outs=5),
            dict(type="BFP", in_channels=8, num_levels=5, refine_level=1, refine_type="conv"),
        ],
    }
    neck = from_reference("mmdet", config)
    outputs = neck(neck.example_inputs(batch=1, image=(64, 64)))
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2), (1, 8, 1, 1), (1, 8, 1, 1)]


def test_a_missing_checkpoint_key_is_named():
    case = torch.load(LOCAL / "mmdet_fpn_bn_extra_convs.pt", weights_only=False)
    state = dict(case["state_dict"])
    del state["fpn_convs.3.bn.running_var"]
    with pytest.raises(SpecError, match="P6.post0.running_var"):
        from_reference(case["source"], case["config"], state)


BAD = [
    (dict(add_extra_convs="on_top"), "add_extra_convs"),
    (dict(num_outs=3), "num_outs 3 is less"),
    (dict(end_level=2, num_outs=5), "num_outs must be 3"),
    (dict(start_level=4), "start_level 4"),
    (dict(upsample_cfg=dict(scale_factor=4)), "scale_factor"),
    (dict(upsample_cfg=dict(mode="nearest", align_corners=True)), "align_corners"),
    (dict(act_cfg=dict(type="PReLU")), "act_cfg"),
    (dict(conv_cfg=dict(type="DCNv2")), "conv_cfg"),
    (dict(norm_cfg=dict(type="LN")), "norm_cfg"),
    (dict(upsampling="nearest"), "unknown arguments"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_configs_mmdet_rejects_are_rejected(change, message):
    with pytest.raises(SpecError, match=message):
        _convert(dict(dict(type="FPN", in_channels=[8, 8, 16, 16], out_channels=8, num_outs=5), **change))


def test_pafpn_takes_no_upsample_cfg():
    with pytest.raises(SpecError, match="upsample_cfg"):
        _convert(dict(type="PAFPN", in_channels=[8, 8, 16, 16], out_channels=8, num_outs=5, upsample_cfg=dict(mode="nearest")))
