"""mmdetection's FPG (Feature Pyramid Grids) reproduced by specs/fpg.yaml.

Fixtures: the shared ``mmdet_fpg`` (3 bottom-up pathways) and the cases recorded here with
/work/shared/peers/make_fixtures.py (tests/interop/fixtures/mmdet_fpg_*.pt; their configs are
fixtures/fpg_cases.json): bottom-up and top-down pathways mixed, with both same-pathway
transitions built in each (one idle), across_up, nearest and bilinear interpolation_conv, BN and
GN, all six ConvModule orders, leaky relu / swish / sigmoid / no activation; RetinaNet's
start_level 1 with extra convs; end_level; per-level inter_channels; irregular skips (top-down
ones at the middle level); no pathway at all. The paper's 9-pathway config, at width 4, is
tests/interop/data/mmdet_fpg_paper9_tiny.packed.pt (its state_dict packed into one tensor by
pack_fixture.py beside it, to stay small).
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from recorded import load_case, shared_cases, shared_index

import pyramidgraph
from pyramidgraph.compiler import validate
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.ops import POST, RESAMPLE

HERE = Path(__file__).resolve().parent
INDEX = shared_index()
PACKED = HERE / "data" / "mmdet_fpg_paper9_tiny.packed.pt"
CASES = shared_cases(["mmdet_fpg"]) + [pytest.param(p, id=p.name.split(".")[0]) for p in sorted((HERE / "fixtures").glob("mmdet_fpg_*.pt")) + [PACKED]]
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _unpack(path: Path) -> dict:
    spec = importlib.util.spec_from_file_location("pack_fixture", HERE / "data" / "pack_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.unpack(torch.load(path, weights_only=False))


def _load(path: Path) -> dict:
    return _unpack(path) if path.name.endswith(".packed.pt") else load_case(path)


def close(ours: torch.Tensor, ref: torch.Tensor) -> bool:
    return ours.shape == ref.shape and (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def reference_params(case: dict) -> int:
    if case["id"] in INDEX:
        return INDEX[case["id"]]["num_params"]
    return sum(v.numel() for k, v in case["state_dict"].items() if not k.endswith(BUFFERS))


@pytest.mark.parametrize("path", CASES)
def test_fixture_is_reproduced(path: Path):
    case = _load(path)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == reference_params(case)
    with torch.no_grad():
        outputs = neck(tuple(case["inputs"]))
    assert isinstance(outputs, list) and len(outputs) == len(case["outputs"])  # FPG.forward returns a list
    for index, (ours, ref) in enumerate(zip(outputs, case["outputs"])):
        assert close(ours, ref), f"output {index}: max error {(ours - ref).abs().max().item() if ours.shape == ref.shape else (ours.shape, ref.shape)}"


def paper_config(**changes) -> dict:
    """configs/fpg/faster-rcnn_r50_fpg_crop640-50e_coco.py's neck."""
    norm = {"type": "BN", "requires_grad": True}
    act_first = {"norm_cfg": norm, "inplace": False, "order": ["act", "conv", "norm"]}
    neck = {
        "type": "FPG",
        "in_channels": [256, 512, 1024, 2048],
        "out_channels": 256,
        "inter_channels": 256,
        "num_outs": 5,
        "stack_times": 9,
        "paths": ["bu"] * 9,
        "same_down_trans": None,
        "same_up_trans": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1, **act_first},
        "across_lateral_trans": {"type": "conv", "kernel_size": 1, **act_first},
        "across_down_trans": {"type": "interpolation_conv", "mode": "nearest", "kernel_size": 3, **act_first},
        "across_up_trans": None,
        "across_skip_trans": {"type": "conv", "kernel_size": 1, **act_first},
        "output_trans": {"type": "last_conv", "kernel_size": 3, "order": ["act", "conv", "norm"], "inplace": False},
        "norm_cfg": norm,
        "skip_inds": [[0, 1, 2, 3], [0, 1, 2], [0, 1], [0], []],
    }
    neck.update(changes)
    return {"strides": [4, 8, 16, 32], "necks": [neck]}


# Parameter and state_dict counts of mmdetection 3.3's FPG built from configs/fpg/*.py.
@pytest.mark.parametrize(
    "changes, params, keys",
    [
        ({}, 41_616_640, 774),  # faster-rcnn_r50_fpg_crop640-50e_coco.py
        ({"out_channels": 128, "inter_channels": 128}, 10_666_624, 774),  # faster-rcnn_r50_fpg-chn128_crop640-50e_coco.py
        ({"start_level": 1, "add_extra_convs": True}, 42_731_008, 776),  # retinanet_r50_fpg_crop640_50e_coco.py
    ],
    ids=["faster", "chn128", "retinanet"],
)
def test_paper_configs_have_the_reference_size(changes, params, keys):
    neck = from_reference("mmdet", paper_config(**changes)).eval()
    assert sum(p.numel() for p in neck.parameters()) == params
    assert len(neck.state_dict()) == keys
    side = 128  # the coarsest level must be at least 1x1: the reference upsamples by scale
    with torch.no_grad():
        outputs = neck([torch.randn(1, c, side // s, side // s) for c, s in zip([256, 512, 1024, 2048], [4, 8, 16, 32])])
    finest = 4 if not changes.get("start_level") else 8
    assert [tuple(o.shape) for o in outputs] == [(1, changes.get("out_channels", 256), side // (finest * 2**j), side // (finest * 2**j)) for j in range(5)]


def test_paper_config_is_the_bundled_default():
    plan = conversion("mmdet", paper_config())
    assert plan.spec == "fpg" and plan.return_type == "list"

    defaults = validate("fpg").flat.params  # the declared defaults, evaluated

    def ops(registry, items):
        """The ops, with stride and padding left to the compiler filled in (stride 1 here; symmetric padding)."""
        if items is None:
            return None
        made = [registry.make(item) for item in items]
        return [
            replace(op, padding=(op.kernel - 1) // 2 * op.dilation if op.padding is None else op.padding, **({"stride": op.stride or 1} if hasattr(op, "stride") else {}))
            if hasattr(op, "order") else op
            for op in made
        ]

    for name in ("same_up", "same_down", "across_lateral", "across_down", "across_up", "across_skip"):
        assert ops(RESAMPLE, plan.params[name]) == ops(RESAMPLE, defaults[name]), name
    assert ops(POST, plan.params["output"]) == ops(POST, defaults["output"])
    assert plan.params["skip"] == defaults["skip"]
    assert plan.params["idle"] == [] and plan.params["stack_times"] == defaults["stack_times"]


def test_idle_transitions_hold_weights_and_compute_nothing():
    """Both same-pathway transitions are built in every pathway; each pathway calls one."""
    case = torch.load(HERE / "fixtures" / "mmdet_fpg_bu_td_across_up.pt", weights_only=False)
    plan = conversion(case["source"], case["config"])
    # pathway 0 is bottom-up: its same_down (interpolation_conv: the ConvModule is `.conv`) is idle
    assert plan.key_map.prefixes["fpn_transitions.0.1.same_down.conv"] == "path0.Q3.post0"
    assert plan.key_map.prefixes["fpn_transitions.0.1.same_up"] == "path0.Q3.from_Q2.via1"  # relu, then the conv
    # pathway 1 is top-down: its same_up is idle
    assert plan.key_map.prefixes["fpn_transitions.1.1.same_up"] == "path1.Q3.post0"
    assert plan.key_map.prefixes["fpn_transitions.1.1.same_down.conv"] == "path1.Q3.from_Q4.via1"
    neck = from_reference(case["source"], case["config"], case["state_dict"])
    called = {n.target for n in neck.graph.nodes if n.op == "call_module"}
    assert not any(".post0." in target and target.startswith(("path0.Q3", "path1.Q3")) for target in called)
    assert neck.get_submodule("path1.Q3.post0.conv").weight.shape == (4, 4, 3, 3)


def test_activation_first_is_shared_between_transitions():
    """ConvModule(order=('act', 'conv', 'norm')) is relu then conv_module: a map's relu is computed once."""
    cfg = paper_config(in_channels=[8, 8, 8, 8], out_channels=8, inter_channels=8, stack_times=2, paths=["bu", "bu"], skip_inds=[[], [], [], [], []])
    neck = from_reference("mmdet", cfg)
    code = neck.code
    # the skip transitions of both pathways read relu(L_l): once per level, not once per pathway
    assert code.count("relu(l4)") == 1
    assert sum(1 for n in neck.graph.nodes if n.op == "call_module" and n.target.endswith(".conv")) == 2 * (5 + 5 + 4 + 4) + 5  # lateral, skip, same_up, across_down; outputs


def test_transitions_become_via_lists():
    plan = conversion("mmdet", paper_config())
    assert plan.params["across_down"] == [
        {"upsample": {"by": "scale", "scale": 2, "mode": "nearest"}},
        {"act": {"fn": "relu"}},
        {"conv_module": {"kernel": 3, "padding": 1, "dilation": 1, "groups": 1, "norm": "bn", "order": "conv_norm_act", "bias": False, "norm_eps": 1e-5, "norm_momentum": 0.1, "act": None, "stride": 1}},
    ]
    assert "fpn_transitions.4.4.across_down.conv" not in plan.key_map.prefixes
    assert plan.key_map.prefixes["fpn_transitions.4.3.across_down.conv"] == "path4.Q5.from_P6.via2"
    assert plan.key_map.prefixes["fpn_transitions.8.0.across_skip"] == "path8.Q2.from_L2.via1"
    assert plan.key_map.prefixes["output_transition.4.conv_out"] == "O6.post1"
    assert not any(key.startswith("fpn_transitions.0.0.") for key in plan.key_map.prefixes)  # skipped: an empty ModuleDict


def test_conv_orders_other_than_act_first_stay_in_one_op():
    cfg = paper_config()
    cfg["necks"][0]["across_lateral_trans"] = {"type": "conv", "kernel_size": 1, "norm_cfg": {"type": "GN", "num_groups": 8}, "order": ["norm", "act", "conv"], "act_cfg": {"type": "LeakyReLU", "negative_slope": 0.1}}
    (op,) = conversion("mmdet", cfg).params["across_lateral"]
    assert op["conv_module"]["order"] == "norm_act_conv" and op["conv_module"]["act"] == "leaky_relu" and op["conv_module"]["slope"] == 0.1
    assert op["conv_module"]["norm"] == "gn" and op["conv_module"]["norm_groups"] == 8 and op["conv_module"]["bias"] is False  # bias='auto': none before a norm


def _with(**changes) -> dict:
    return paper_config(**{"in_channels": [8, 8, 8, 8], "out_channels": 8, "inter_channels": 8, **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stack_times": 2, "paths": ["bu", "td"], "skip_inds": [[1], [], [], [], [1]], "same_down_trans": {"type": "interpolation_conv"}}, "only the middle level"),
        ({"stack_times": 2, "paths": ["bu", "up"], "skip_inds": [[], [], [], [], []]}, "paths must list"),
        ({"across_lateral_trans": {"type": "conv", "kernel_size": 1, "order": ["act", "conv", "norm"]}}, "in place"),
        ({"across_skip_trans": {"type": "identity"}}, "'identity' is not supported"),
        ({"output_trans": {"type": "conv", "kernel_size": 3}}, "last_conv"),
        ({"skip_inds": None}, "skip_inds must list"),
        ({"skip_inds": [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [], [], [], []]}, "skip_inds[0] lists 10"),
        ({"inter_channels": [8, 8, 16, 16, 16]}, "built for inter_channels"),
        ({"across_lateral_trans": None}, "across_lateral_trans is None"),
        ({"output_trans": None}, "last_conv"),
        ({"same_up_trans": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1, "padding_mode": "reflect"}}, "padding_mode"),
        ({"norm_cfg": {"type": "BN"}, "foo": 1}, "unknown arguments"),
        ({"end_level": 2}, "num_outs must be 3"),
    ],
)
def test_unsupported_configs_are_rejected(changes, message):
    with pytest.raises(SpecError) as info:
        from_reference("mmdet", _with(**changes))
    assert message in str(info.value)


def test_top_down_skip_of_the_middle_level_and_zero_pathways_compile():
    cfg = _with(stack_times=2, paths=["td", "bu"], skip_inds=[[], [], [0, 1], [], []], same_down_trans={"type": "interpolation_conv", "kernel_size": 3, "act_cfg": None})
    neck = from_reference("mmdet", cfg).eval()
    outputs = neck([torch.randn(1, 8, 64 // s, 64 // s) for s in (4, 8, 16, 32)])
    assert [o.shape[-1] for o in outputs] == [16, 8, 4, 2, 1]
    plan = conversion("mmdet", cfg)
    assert len(plan.params["idle"][0][0]) == 0 and len(plan.params["idle"][0][1]) == 1  # td pathway: same_up idle above level 0
    assert len(plan.params["idle"][1][0]) == 1 and len(plan.params["idle"][1][4]) == 0  # bu pathway: same_down idle below the top


def test_lateral_transition_may_be_none_where_every_pathway_skips():
    """Nothing is built where every level is skipped: the outputs are the output convs of the laterals."""
    grid = from_reference("mmdet", _with(stack_times=2, paths=["bu", "bu"], across_lateral_trans=None, skip_inds=[[0, 1]] * 5)).eval()
    flat = from_reference("mmdet", _with(stack_times=0, paths=[], skip_inds=[[]] * 5)).eval()
    assert list(grid.state_dict()) == list(flat.state_dict())
    grid.load_state_dict(flat.state_dict())
    inputs = [torch.randn(1, 8, 32 // s, 32 // s) for s in (4, 8, 16, 32)]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(grid(inputs), flat(inputs)))


def test_config_is_not_modified():
    cfg = _with()
    before = copy.deepcopy(cfg)
    conversion("mmdet", cfg)
    assert cfg == before


def test_upsample_by_size_is_the_variant_for_images_not_divisible_by_64():
    """mmdetection's across_down upsamples by 2, also from P6 (stride 64): a 96x96 image (P6 2x2,
    P5 3x3) cannot line up; resizing to the finer map's size can."""
    from pyramidgraph.errors import NeckInputError

    exact = pyramidgraph.compile("fpg", [8, 16, 32, 64], channels=8)
    with pytest.raises(NeckInputError, match="expected image sides divisible by 64"):
        exact(exact.example_inputs(image=96))
    sized = pyramidgraph.compile("fpg", [8, 16, 32, 64], channels=8, upsample_by="size")
    assert [tuple(x.shape) for x in sized(sized.example_inputs(image=96))] == [(1, 8, 24, 24), (1, 8, 12, 12), (1, 8, 6, 6), (1, 8, 3, 3), (1, 8, 2, 2)]
    assert sum(p.numel() for p in sized.parameters()) == sum(p.numel() for p in exact.parameters())
