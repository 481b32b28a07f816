"""The bundled ``giraffe_neck_v2`` spec: DAMO-YOLO's RepGFPN (Xu et al. 2022) as the authors' code computes it.

Parity with the authors' ``GiraffeNeckV2`` (tinyvision/DAMO-YOLO 319572e) is shown on recordings of
it: the shared ``../shared/fixtures/necks/damoyolo_giraffe_neck_v2.pt`` where it is beside the
checkout, and the repository's own ``tests/interop/fixtures/damoyolo_*.pt`` (recorded by
``tests/interop/data/record_damoyolo.py``): round-to-even block counts, hidden_ratio 0.75, silu,
the Nano models' depthwise blocks, a stage without blocks, lrelu, odd and shrinking widths,
non-square maps, strides 4-16. Parameter counts are the official module's, counted from the
released configs; the refusals are checked word for word.
"""

from __future__ import annotations

import pytest
import torch
from recorded import LOCAL, SHARED

import pyramidgraph
from pyramidgraph.interop import conversion, convert_state_dict, from_reference

SOURCE = "damoyolo.GiraffeNeckV2"
SHARED_CASE = SHARED / "necks" / "damoyolo_giraffe_neck_v2.pt"
RECORDED = {  # id: (file, the reference module's parameter count, output shapes)
    "damoyolo_banker_depth_hidden075_silu_nonsquare": (LOCAL / "damoyolo_banker_depth_hidden075_silu_nonsquare.pt", 142_477, [(2, 20, 8, 16), (2, 33, 4, 8), (2, 48, 2, 4)]),
    "damoyolo_nano_depthwise": (LOCAL / "damoyolo_nano_depthwise.pt", 51_696, [(2, 16, 16, 12), (2, 32, 8, 6), (2, 48, 4, 3)]),
    "damoyolo_no_blocks_lrelu_stride4": (LOCAL / "damoyolo_no_blocks_lrelu_stride4.pt", 35_479, [(2, 17, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4)]),
}
if SHARED_CASE.is_file():  # the shared recording (tinynasL20_T's settings at small widths) where ../shared is there
    RECORDED["damoyolo_giraffe_neck_v2"] = (SHARED_CASE, 283_456, [(2, 16, 16, 16), (2, 32, 8, 8), (2, 64, 4, 4)])

# The released configs' necks (configs/damoyolo_tinynasL*.py), built with the authors' module and counted in a scratch script.
RELEASED = {
    "T": ({"depth": 1.0, "hidden_ratio": 1.0, "in_channels": [96, 192, 384], "out_channels": [64, 128, 256], "act": "relu"}, 5_920_064),
    "M": ({"depth": 1.5, "hidden_ratio": 1.0, "in_channels": [128, 256, 512], "out_channels": [128, 256, 512], "act": "silu"}, 17_829_888),  # round(4.5) = 4 blocks
    "N": ({"depth": 0.5, "hidden_ratio": 0.5, "in_channels": [80, 112, 160], "out_channels": [64, 128, 256], "act": "silu", "depthwise": True}, 904_256),
}


def _load(name: str) -> dict:
    return torch.load(RECORDED[name][0], weights_only=False)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_from_reference_reproduces_the_recorded_case(name):
    case = _load(name)
    _path, num_params, shapes = RECORDED[name]
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple)  # the code returns (x5, x7, x6)
    assert [tuple(o.shape) for o in outputs] == shapes == [tuple(o.shape) for o in case["outputs"]]
    for ours, ref in zip(outputs, case["outputs"]):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == num_params


def test_the_block_count_is_rounded_half_to_even_as_the_code_does():
    case = _load("damoyolo_banker_depth_hidden075_silu_nonsquare")
    assert case["config"]["depth"] * 3 == 2.5
    reference = case["state_dict"]
    assert "merge_3.convs.1.conv1.conv.weight" in reference and not any(k.startswith("merge_3.convs.2.") for k in reference)  # 2 blocks, not 3
    keys = from_reference(SOURCE, case["config"]).state_dict()
    assert "P5_td.post0.convs.1.conv1.conv.weight" in keys and not any(k.startswith("P5_td.post0.convs.2.") for k in keys)


def test_an_odd_width_is_split_unevenly_and_the_reversed_block_maps_by_the_codes_names():
    case = _load("damoyolo_banker_depth_hidden075_silu_nonsquare")  # out_channels[1] = 33: conv1 16, conv2 17, hidden int(17 * 0.75) = 12
    ours = convert_state_dict(SOURCE, case["config"], case["state_dict"])
    assert ours["P4_out.post0.conv1.conv.weight"].shape == (16, 40 + 20, 1, 1)
    assert ours["P4_out.post0.conv2.conv.weight"].shape == (17, 60, 1, 1)
    assert ours["P4_out.post0.convs.0.conv2.rbr_dense.conv.weight"].shape == (12, 17, 3, 3)  # the RepVGG unit runs first
    assert ours["P4_out.post0.convs.0.conv2.rbr_1x1.bn.running_var"].shape == (12,)
    assert ours["P4_out.post0.convs.0.conv1.conv.weight"].shape == (17, 12, 3, 3)
    assert ours["P4_out.post0.conv3.conv.weight"].shape == (33, 16 + 2 * 17, 1, 1)
    assert torch.equal(ours["C4_down.from_C4.bn.running_mean"], case["state_dict"]["bu_conv13.bn.running_mean"])
    assert torch.equal(ours["P5_out.post0.convs.1.conv2.rbr_dense.conv.weight"], case["state_dict"]["merge_6.convs.1.conv2.rbr_dense.conv.weight"])


def test_a_stage_without_blocks_holds_the_unused_conv2():
    case = _load("damoyolo_no_blocks_lrelu_stride4")
    assert round(3 * case["config"]["depth"]) == 0
    assert "merge_5.conv2.conv.weight" in case["state_dict"]
    neck = from_reference(SOURCE, case["config"], case["state_dict"])
    assert neck.state_dict()["P3_out.post0.conv2.conv.weight"].shape == (9, 16 + 32, 1, 1)  # cat(C3, up(x4))
    assert neck.state_dict()["P3_out.post0.conv3.conv.weight"].shape == (17, 8, 1, 1)  # conv3 reads conv1 alone
    called = {n.target for n in neck.graph.nodes if n.op == "call_module"}
    assert "P3_out.post0.conv1.conv" in called and "P3_out.post0.conv2.conv" not in called


def test_the_depthwise_units_map_onto_the_codes_depthwise_conv_and_mobile_blocks():
    case = _load("damoyolo_nano_depthwise")
    ours = convert_state_dict(SOURCE, case["config"], case["state_dict"])
    assert torch.equal(ours["C3_down.from_C3.depthwise_conv.conv.weight"], case["state_dict"]["bu_conv24.depthwise.weight"])
    assert torch.equal(ours["C3_down.from_C3.pointwise_conv.bn.bias"], case["state_dict"]["bu_conv24.pwnorm.bias"])
    # out 16: mid 8, MobileV3Block hidden make_divisible(ceil(3 * 8)) = 24; the depthwise conv is 5x5
    assert ours["P3_out.post0.convs.1.conv.conv.0.weight"].shape == (24, 8, 1, 1)
    assert ours["P3_out.post0.convs.1.conv.conv.3.weight"].shape == (24, 1, 5, 5)
    assert ours["P3_out.post0.convs.1.conv.conv.7.running_mean"].shape == (8,)


@pytest.mark.parametrize("model", sorted(RELEASED))
def test_the_released_configs_have_the_reference_modules_parameter_count(model):
    config, count = RELEASED[model]
    plan = conversion(SOURCE, {"name": "GiraffeNeckV2", "spp": False, "block_name": "BasicBlock_3x3_Reverse", **config})
    assert (plan.spec, plan.in_channels) == ("giraffe_neck_v2", config["in_channels"])
    assert pyramidgraph.neck_info(plan.spec, plan.in_channels, params=plan.params).params == count


def test_damoyolo_s_converts_to_the_spec_defaults_and_its_example():
    plan = conversion(SOURCE, {"depth": 1.0, "hidden_ratio": 0.75, "in_channels": [128, 256, 512], "out_channels": [128, 256, 512], "act": "relu", "spp": False, "block_name": "BasicBlock_3x3_Reverse"})
    assert plan.params == {"depth": 1.0, "hidden_ratio": 0.75, "out3": 128, "out4": 256, "out5": 512, "act": "relu", "slope": 0.1, "depthwise": False, "first_level": 3}
    assert plan.return_type == "tuple"
    assert pyramidgraph.neck_info("giraffe_neck_v2").params == 11_902_656  # the example is DAMO-YOLO-S's neck


BASE = {"block_name": "BasicBlock_3x3_Reverse"}


@pytest.mark.parametrize(
    "config,message",
    [
        (
            {"spp": True},
            "spp=True is broken in the reference itself: CSPStage appends the SPP output to the maps it concatenates, so conv3 gets more channels than it "
            "was built for and the forward fails with a RuntimeError; use spp: false (every released config does)",
        ),
        (
            {"block_name": "BasicBlock"},
            "block_name 'BasicBlock': the reference's CSPStage builds only 'BasicBlock_3x3_Reverse' blocks and raises NotImplementedError for any other name (the constructor's default 'BasicBlock' too)",
        ),
        ({"act": "gelu"}, "act 'gelu' is not one of the reference's activations (relu, silu, swish, lrelu, hardsigmoid, identity); the reference raises AttributeError 'Unsupported act type: gelu'"),
        ({"depthh": 1.0}, "unknown config key 'depthh'; did you mean 'depth'? (GiraffeNeckV2 takes: act, block_name, depth, depthwise, hidden_ratio, in_channels, in_features, out_channels, spp, strides)"),
        ({"name": "GiraffeNeck"}, "name 'GiraffeNeck': this converter reproduces 'GiraffeNeckV2', the one neck DAMO-YOLO's build_neck knows"),
        ({"in_channels": [16, 32]}, "in_channels must be three positive widths (s8, s16, s32), not [16, 32]"),
        ({"strides": [8, 16, 64]}, "strides [8, 16, 64]: the neck joins its levels with stride-2 convs and x2 upsampling, so each stride must be twice the one before, powers of two ([8, 16, 32])"),
        ({"depthwise": 1}, "depthwise must be true or false, not 1"),
        ({"hidden_ratio": 0}, "hidden_ratio must be above 0, not 0"),
        ({"act": None}, "act None: every block's RepConv calls its activation, which is then None, so the reference's forward fails (TypeError); use 'identity' for no activation"),
        ({"out_channels": [256, 1, 1024]}, "merge_7 outputs 1 channel(s): its conv1 gets 1 // 2 = 0 channels, so the reference's forward fails; give it at least 2"),
        (
            {"in_channels": [16, 24, 32], "out_channels": [2, 24, 32], "hidden_ratio": 0.5},
            "hidden_ratio 0.5: the blocks of merge_5 (1 channels) get int(1 * 0.5) = 0 hidden channels, so the reference's forward fails",
        ),
    ],
    ids=lambda v: str(v)[:30],
)
def test_what_the_reference_cannot_do_is_refused_with_its_reason(config, message):
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, {**BASE, **config})
    assert info.value.issues[0].message == message


def test_a_missing_block_name_is_fine_when_no_block_is_built():
    """The constructor's default block_name ('BasicBlock') only fails once a block is built."""
    plan = conversion(SOURCE, {"depth": 0.1, "in_channels": [16, 24, 32], "out_channels": [16, 24, 32]})
    assert plan.params["act"] == "silu"  # the constructor's default
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, {"depth": 0.2, "in_channels": [16, 24, 32], "out_channels": [16, 24, 32]})
    assert info.value.issues[0].message.startswith("block_name 'BasicBlock': ")


def test_what_the_code_reads_only_in_blocks_is_free_without_blocks():
    """Without blocks (depth rounding 3 * depth to 0) the reference adds no SPP and no RepConv, so
    spp: true and act: null build and run there (tests/sweeps/damoyolo.py records both)."""
    for extra in ({"spp": True}, {"act": None}):
        plan = conversion(SOURCE, {**BASE, "depth": 0.0, "in_channels": [16, 24, 32], "out_channels": [16, 24, 32], **extra})
        assert plan.params["depth"] == 0.0


def test_bad_widths_in_the_spec_are_spec_errors():
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile("giraffe_neck_v2", [16, 24, 32], hidden_ratio=0.05)
    assert info.value.issues[0].message == "csp_stage: the blocks' hidden width int(16 * hidden_ratio 0.05) is 0; raise hidden_ratio or the width"
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile("giraffe_neck_v2", [16, 24, 32], image=(100, 140))
    assert info.value.issues[0].message.startswith("inputs of 'P4_td' do not line up: 'C4' gives 7x9, 'C3_down' gives 7x9, 'P5_td' gives 8x10;")
    neck = pyramidgraph.compile("giraffe_neck_v2", [16, 24, 32], image=(100, 140), upsample_by="size")
    with torch.no_grad():
        assert [tuple(o.shape) for o in neck(neck.example_inputs(batch=1))] == [(1, 16, 13, 18), (1, 24, 7, 9), (1, 32, 4, 5)]
