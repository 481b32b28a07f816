"""mmdetection's NASFPN and BFP (Libra R-CNN) reproduced by specs/nasfpn.yaml and specs/bfp.yaml.

Fixtures: the shared ``mmdet_nasfpn`` and ``mmdet_fpn_bfp_nonlocal`` plus the cases recorded
here (tests/interop/fixtures/mmdet_{nasfpn,bfp,fpn_bfp}_*.pt: stack_times 0, 1, 3, start and
end levels, GN/BN/no norm, odd image sizes, refine None/'conv'/'non_local' at refine levels
0..3). Op-level data recorded from mmcv (tests/interop/data/mmcv_ops.pt, made by
make_mmcv_ops.py beside it) checks the ``nonlocal`` modes and the merge-cell resizing alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recorded import load_case, shared_cases, shared_index

import pyramidgraph
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.interop.mmdet import NECKS
from pyramidgraph.ops.gates import merge_resize

HERE = Path(__file__).resolve().parent
INDEX = shared_index()
CASES = shared_cases(["mmdet_nasfpn", "mmdet_fpn_bfp_nonlocal"]) + [
    pytest.param(p, id=p.stem) for p in sorted(p for pattern in ("mmdet_nasfpn_*.pt", "mmdet_bfp_*.pt", "mmdet_fpn_bfp_*.pt") for p in (HERE / "fixtures").glob(pattern))
]
OPS = torch.load(HERE / "data" / "mmcv_ops.pt", weights_only=False)


def close(ours: torch.Tensor, ref: torch.Tensor) -> bool:
    return ours.shape == ref.shape and (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("path", CASES)
def test_fixture_is_reproduced(path: Path):
    case = load_case(path)
    missing = [neck["type"] for neck in case["config"]["necks"] if neck["type"] not in NECKS]
    if missing:
        pytest.skip(f"no converter yet for {missing}")
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    expected_params = INDEX[case["id"]]["num_params"] if case["id"] in INDEX else case["num_params"]
    assert sum(p.numel() for p in neck.parameters()) == expected_params
    with torch.no_grad():
        outputs = neck(tuple(case["inputs"]))
    assert isinstance(outputs, tuple) and len(outputs) == len(case["outputs"])
    for index, (ours, ref) in enumerate(zip(outputs, case["outputs"])):
        assert close(ours, ref), f"output {index}: max error {(ours - ref).abs().max().item() if ours.shape == ref.shape else (ours.shape, ref.shape)}"


def test_nasfpn_accepts_any_image_size():
    """Merge cells resize at run time: one compiled neck serves divisible and odd sizes."""
    cfg = {"strides": [4, 8, 16, 32], "necks": [{"type": "NASFPN", "in_channels": [8, 8, 16, 16], "out_channels": 8, "num_outs": 5, "stack_times": 2, "start_level": 1}]}
    neck = from_reference("mmdet", cfg).eval()
    for side in (128, 100, 160):
        inputs = tuple(torch.randn(1, c, -(-side // s), -(-side // s)) for c, s in zip([8, 8, 16, 16], [4, 8, 16, 32]))
        with torch.no_grad():
            outputs = neck(inputs)
        p5 = -(-side // 32)
        assert [o.shape[-1] for o in outputs] == [-(-side // 8), -(-side // 16), p5, p5 // 2, p5 // 4]


def test_nasfpn_key_map_names_every_cell():
    plan = conversion("mmdet", {"strides": [8, 16, 32], "necks": [{"type": "NASFPN", "in_channels": [8, 8, 8], "out_channels": 8, "num_outs": 5, "stack_times": 2, "norm_cfg": {"type": "BN"}}]})
    assert plan.spec == "nasfpn" and plan.params["used"] == 3 and plan.params["norm"] == "bn"
    assert plan.key_map.prefixes["fpn_stages.1.gp_75_6.out_conv.conv"] == "stage1.P6_out.post1"
    assert plan.key_map.prefixes["fpn_stages.0.sum_43_3.out_conv.bn"] == "stage0.P3_out.post2"
    assert plan.key_map.prefixes["extra_downsamples.1.0.conv"] == "P7_conv.post0"
    assert not any("gp_43_5" in key or "gp_54_7" in key for key in plan.key_map.prefixes)  # no out_conv there


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_outs": 4}, "num_outs must be 5"),
        ({"start_level": 1, "end_level": 1}, "num_outs must be 1"),
        ({"norm_cfg": {"type": "LN"}}, "not supported"),
        ({"start_level": 3}, "not an input index"),
    ],
)
def test_nasfpn_rejects_configs_the_reference_cannot_run(change, message):
    neck = {"type": "NASFPN", "in_channels": [8, 8, 8], "out_channels": 8, "num_outs": 5, "stack_times": 1, **change}
    with pytest.raises(SpecError, match=message):
        conversion("mmdet", {"strides": [8, 16, 32], "necks": [neck]})


def test_nasfpn_ignores_add_extra_convs():
    """mmdet 2.x accepted add_extra_convs and never used it; the module does not change."""
    base = {"type": "NASFPN", "in_channels": [8, 8, 8], "out_channels": 8, "num_outs": 5, "stack_times": 1}
    plain = conversion("mmdet", {"strides": [8, 16, 32], "necks": [base]})
    extra = conversion("mmdet", {"strides": [8, 16, 32], "necks": [dict(base, add_extra_convs=True)]})
    assert plain.params == extra.params and plain.key_map.prefixes == extra.key_map.prefixes


@pytest.mark.parametrize("refine_level", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("refine", [None, "conv", "non_local"])
def test_bfp_builds_for_every_refine_level(refine, refine_level):
    cfg = {"strides": [4, 8, 16, 32, 64], "necks": [{"type": "BFP", "in_channels": 8, "num_levels": 5, "refine_level": refine_level, "refine_type": refine}]}
    neck = from_reference("mmdet", cfg).eval()
    inputs = tuple(torch.randn(1, 8, -(-90 // s), -(-70 // s)) for s in cfg["strides"])
    with torch.no_grad():
        outputs = neck(inputs)
    assert [o.shape for o in outputs] == [x.shape for x in inputs]


def test_bfp_without_refine_has_no_weights():
    plan = conversion("mmdet", {"strides": [8, 16, 32], "necks": [{"type": "BFP", "in_channels": 8, "num_levels": 3, "refine_level": 1}]})
    assert plan.key_map.prefixes == {}
    assert len(from_reference("mmdet", {"strides": [8, 16, 32], "necks": [{"type": "BFP", "in_channels": 8, "num_levels": 3, "refine_level": 1}]}).state_dict()) == 0


@pytest.mark.parametrize("change, message", [({"refine_level": 5}, "refine_level 5"), ({"refine_type": "attention"}, "refine_type"), ({"num_levels": 4}, "4 inputs but 5 strides")])
def test_bfp_rejects_bad_configs(change, message):
    neck = {"type": "BFP", "in_channels": 8, "num_levels": 5, **change}
    with pytest.raises(SpecError, match=message):
        conversion("mmdet", {"strides": [4, 8, 16, 32, 64], "necks": [neck]})


@pytest.mark.parametrize("index", range(len(OPS["nonlocal"])))
def test_nonlocal_op_matches_mmcv(index):
    case = OPS["nonlocal"][index]
    norm = case["norm_cfg"]
    params = {"reduction": case["reduction"], "use_scale": case["use_scale"], "mode": case["mode"]}
    if norm:
        params.update(norm=norm["type"].lower(), norm_groups=norm.get("num_groups", 32))
    x = case["x"]
    spec = {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"R": {"from": ["C3"], "post": [{"nonlocal": params}]}}, "outputs": ["R"]}
    neck = pyramidgraph.compile(spec, [x.shape[1]]).eval()
    renamed = {}
    for key, value in case["state_dict"].items():
        part, *rest = key.split(".")
        layer = rest[0]
        ours = "norm" if layer in ("bn", "gn") else part
        renamed[f"R.post0.{ours}.{rest[-1]}"] = value
    neck.load_state_dict(renamed, strict=True)
    with torch.no_grad():
        assert close(neck([x])[0], case["y"])


def _merge_neck(fuse):
    """Two inputs merged at a third input's size (the size reference, otherwise unused)."""
    spec = {
        "pyramidgraph": 1,
        "inputs": {"X1": {"level": 3}, "X2": {"level": 4}, "T": {"level": 5, "optional": True}},
        "nodes": {"M": {"level": 5, "from": ["X1", "X2"], "fuse": fuse, "resample": {"up": "merge_resize", "down": "merge_resize", "project": "none"}}},
        "outputs": ["M"],
    }
    return spec


@pytest.mark.parametrize("index", range(len(OPS["merge_cells"])))
def test_merge_cells_match_mmcv(index):
    case = OPS["merge_cells"][index]
    fuse = "sum" if case["cell"] == "sum" else {"gate": {"gate": "last", "pool": "avg"}}
    spec = _merge_neck(fuse)
    spec["nodes"]["M"]["resample"]["up"] = spec["nodes"]["M"]["resample"]["down"] = {"merge_resize": {"mode": case["mode"]}}
    neck = pyramidgraph.compile(spec, [2, 2, 2])
    target = torch.zeros(1, 2, *case["out_size"])
    with torch.no_grad():
        assert close(neck([case["x1"], case["x2"], target])[0], case["y"])


def test_merge_resize_pads_with_zeros_before_pooling():
    x = -torch.ones(1, 1, 5, 5)  # all negative: a zero from the padding wins the max
    y = merge_resize(x, torch.Size((2, 2)))
    assert y.shape[-2:] == (2, 2) and y.max().item() == 0.0


def test_gate_first_max_is_the_tensorflow_global_attention():
    """TF's global_attention(feat0, feat1) = feat0 + feat1 * sigmoid(reduce_max(feat0))."""
    spec = _merge_neck({"gate": {"gate": "first", "pool": "max"}})
    neck = pyramidgraph.compile(spec, [4, 4, 4])
    feat0, feat1 = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    with torch.no_grad():
        ours = neck([feat0, feat1, torch.zeros(2, 4, 3, 3)])[0]
    expected = feat0 + feat1 * torch.sigmoid(feat0.amax(dim=(2, 3), keepdim=True))
    assert close(ours, expected)


def test_gate_takes_two_inputs():
    spec = {
        "pyramidgraph": 1,
        "inputs": {"A": {"level": 3}, "B": {"level": 4}, "C": {"level": 5}},
        "nodes": {"M": {"level": 3, "from": ["A", "B", "C"], "fuse": "gate"}},
        "outputs": ["M"],
    }
    with pytest.raises(SpecError, match="exactly two inputs"):
        pyramidgraph.compile(spec, [4, 4, 4])


@pytest.mark.parametrize("name", ["nasfpn", "bfp"])
def test_bundled_spec_compiles_with_no_arguments(name):
    neck = pyramidgraph.compile(name).eval()
    with torch.no_grad():
        outputs = neck(neck.example_inputs(image=128))
    assert len(outputs) == 5
