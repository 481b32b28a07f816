"""The bundled ``afpn`` spec: the Asymptotic Feature Pyramid Network (Yang et al. 2023) as the
authors' mmdetection neck computes it (gyyang23/AFPN at 0930b56).

Parity is against recordings of the authors' module: the shared case
``../shared/fixtures/necks/afpn.pt`` (when it is beside the checkout) and three of this
repository's own (``tests/interop/fixtures/afpn_*.pt``, recorded by
``tests/interop/data/record_afpn.py``): other widths, a non-square image where the x4/x8
downsampling convs' padding (BasicConv's ``if not pad``) shows, an image that is no multiple of
32, and the maps placed at strides 8..64. Parameter counts are the reference's, recorded.
"""

from __future__ import annotations

import functools
import operator

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import LOCAL, NECKS, load_case

import pyramidgraph
from pyramidgraph.errors import NeckInputError
from pyramidgraph.interop import conversion, from_reference


def _reproduce(case: dict) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(tuple(case["inputs"]))
    assert isinstance(outputs, tuple)
    return neck, list(outputs)


@functools.cache
def _own(name: str) -> tuple[dict, torch.nn.Module, list[torch.Tensor]]:
    """One of the repository's recordings, its neck (with the recorded weights) and our outputs,
    built once for the tests that read it (they must leave the neck as they found it)."""
    case = load_case(LOCAL / f"{name}.pt")
    return (case, *_reproduce(case))


def _assert_matches(outputs: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    assert len(outputs) == len(reference)
    for index, (ours, ref) in enumerate(zip(outputs, reference)):
        assert ours.shape == ref.shape, f"output {index}"
        error = (ours - ref).abs().max().item()
        assert error <= 1e-4 * max(1.0, ref.abs().max().item()), f"output {index}: max error {error}"


def test_the_shared_recording_is_reproduced():
    case = load_case(NECKS / "afpn.pt")  # skipped only where ../shared is not beside the checkout
    neck, outputs = _reproduce(case)
    assert [tuple(o.shape) for o in outputs] == [(2, 48, 24, 24), (2, 48, 12, 12), (2, 48, 6, 6), (2, 48, 3, 3), (2, 48, 2, 2)]
    _assert_matches(outputs, case["outputs"])
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 721_397


# case: (reference parameter count, recorded; output shapes, batch 2)
OWN = {
    "afpn_narrow_96x160": (49_105, [(16, 24, 40), (16, 12, 20), (16, 6, 10), (16, 3, 5), (16, 2, 3)]),
    "afpn_uneven_62x158": (97_788, [(24, 16, 40), (24, 8, 20), (24, 4, 10), (24, 2, 5), (24, 1, 3)]),
    "afpn_strides8_128x192": (12_868, [(8, 16, 24), (8, 8, 12), (8, 4, 6), (8, 2, 3), (8, 1, 2)]),
}


@pytest.mark.parametrize("name", sorted(OWN))
def test_the_repositorys_recordings_are_reproduced(name):
    case, neck, outputs = _own(name)
    num_params, shapes = OWN[name]
    assert [tuple(o.shape) for o in outputs] == [(2, *shape) for shape in shapes]
    _assert_matches(outputs, case["outputs"])
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == num_params


def test_the_strides_place_the_maps_in_the_pyramid():
    _case, neck, _outputs = _own("afpn_strides8_128x192")
    assert neck.output_names == ["P3", "P4", "P5", "P6", "P7"]
    assert neck.strides == [8, 16, 32, 64, 128]


def test_the_recording_shows_the_padding_of_the_x4_downsampling():
    """BasicConv takes the pad 0 it is given for "unset": the x4 conv pads 1. Padded 0 instead,
    the maps keep their sizes (24x40 -> 6x10 either way) but the recorded numbers no longer match."""
    case, neck, _outputs = _own("afpn_narrow_96x160")
    conv = neck.get_submodule("S2_4.from_S1_2.via0.conv")
    assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (4, 4), (1, 1))
    conv.padding = (0, 0)
    try:
        with torch.no_grad():
            outputs = neck(tuple(case["inputs"]))
    finally:
        conv.padding = (1, 1)
    assert [o.shape for o in outputs] == [o.shape for o in case["outputs"]]
    assert max((ours - ref).abs().max().item() for ours, ref in zip(outputs, case["outputs"])) > 0.05  # 0.126 at P3


def test_the_downsampling_convs_have_kernel_equal_to_stride_and_the_padding_bug():
    _case, neck, _outputs = _own("afpn_narrow_96x160")
    found = {}
    for name, module in neck.named_modules():
        if isinstance(module, torch.nn.Conv2d) and module.stride != (1, 1):
            found[name] = (module.kernel_size[0], module.stride[0], module.padding[0], module.bias is None)
    assert found == {
        "S1_3.from_R2.via0.conv": (2, 2, 0, True),
        "S2_3.from_S1_2.via0.conv": (2, 2, 0, True),
        "S2_4.from_S1_2.via0.conv": (4, 4, 1, True),
        "S2_4.from_S1_3.via0.conv": (2, 2, 0, True),
        "S3_3.from_S2_2.via0.conv": (2, 2, 0, True),
        "S3_4.from_S2_2.via0.conv": (4, 4, 1, True),
        "S3_4.from_S2_3.via0.conv": (2, 2, 0, True),
        "S3_5.from_S2_2.via0.conv": (8, 8, 3, True),
        "S3_5.from_S2_3.via0.conv": (4, 4, 1, True),
        "S3_5.from_S2_4.via0.conv": (2, 2, 0, True),
    }


def test_the_upsampling_is_bilinear_by_scale_and_the_fusions_softmax_over_the_inputs():
    _case, neck, _outputs = _own("afpn_narrow_96x160")
    calls = [n for n in neck.graph.nodes if n.op == "call_function"]
    interpolations = [n for n in calls if n.target is F.interpolate]
    assert sorted(n.kwargs["scale_factor"] for n in interpolations) == [2.0] * 6 + [4.0] * 3 + [8.0]
    assert {n.kwargs["mode"] for n in interpolations} == {"bilinear"}
    assert all("align_corners" not in n.kwargs and "size" not in n.kwargs for n in interpolations)
    softmax = [n for n in calls if n.target is torch.softmax]
    assert len(softmax) == 2 + 3 + 4 and all(n.args[1] == 1 for n in softmax)
    pools = [n for n in calls if n.target is F.max_pool2d]
    assert [n.args[1:] for n in pools] == [(1, 2, 0)]


def test_the_key_map_covers_the_reference_checkpoint_exactly():
    case, neck, _outputs = _own("afpn_narrow_96x160")
    plan = conversion(case["source"], case["config"])
    converted = plan.key_map.convert(case["state_dict"], neck.state_dict(), case["source"])
    assert len(converted) == len(case["state_dict"]) == len(neck.state_dict()) == 942
    assert plan.key_map.target("body.0.asff_scalezero1.weight_level_1.conv.weight") == "S1_2.fuse.weight_level_0.conv.weight"
    assert plan.key_map.target("body.0.asff_scalethree3.weight_level_0.bn.bias") == "S3_5.fuse.weight_level_0.bn.bias"
    assert plan.key_map.target("body.0.upsample_scalethree3_8.upsample.0.conv.weight") == "S3_2.from_R5.via0.conv.weight"
    assert plan.key_map.target("body.0.blocks_scaletwo4.3.conv2.bias") == "S3_4.post1.3.conv2.bias"
    assert plan.key_map.target("conv33.bn.running_var") == "P5.post0.bn.running_var"


@pytest.mark.parametrize(
    "config,message",
    [
        ({"in_channels": [32, 64, 128]}, "AFPN fuses exactly four maps (C2..C5, finest first): in_channels must list 4 widths, got 3"),
        ({"in_channels": 256}, "in_channels must be a list of the four input widths, not 256"),
        ({"in_channels": [32, 4, 128, 256]}, "in_channels[1] must be an integer of at least 8 (the reference works at in_channels // 8), not 4"),
        ({"in_channels": [32, 64, 128.0, 256]}, "in_channels[2] must be an integer of at least 8 (the reference works at in_channels // 8), not 128.0"),
        ({"out_channels": 0}, "out_channels must be a positive integer, not 0"),
        ({"num_outs": 5}, "unknown config key 'num_outs' (AFPN takes: in_channels, out_channels, strides)"),
        ({"out_chanels": 8}, "unknown config key 'out_chanels'; did you mean 'out_channels'? (AFPN takes: in_channels, out_channels, strides)"),
        ({"strides": [4, 8, 16]}, "strides must be the four inputs' strides, finest first ([4, 8, 16, 32]), not [4, 8, 16]"),
        (
            {"strides": [4, 8, 16, 64]},
            "strides [4, 8, 16, 64]: AFPN resamples between its maps by exact factors of 2, 4 and 8, so the strides must be powers of two, each twice the one before ([4, 8, 16, 32])",
        ),
        (
            {"strides": [3, 6, 12, 24]},
            "strides [3, 6, 12, 24]: AFPN resamples between its maps by exact factors of 2, 4 and 8, so the strides must be powers of two, each twice the one before ([4, 8, 16, 32])",
        ),
    ],
)
def test_configs_the_reference_cannot_take_are_refused(config, message):
    with pytest.raises(pyramidgraph.SpecError) as error:
        conversion("afpn.AFPN", config)
    assert str(error.value) == f"afpn.AFPN: config: {message}"


def test_widths_past_the_fourth_are_ignored_as_the_reference_ignores_them():
    """The reference reads in_channels[0..3] only: a fifth width builds (and runs) there, so it is no reason to refuse."""
    plan = conversion("afpn.AFPN", {"in_channels": [32, 64, 128, 256, 512]})
    assert plan.in_channels == [32, 64, 128, 256]


def test_the_reference_defaults_are_the_papers_resnet50_configuration():
    plan = conversion("afpn.AFPN", {})
    assert plan.in_channels == [256, 512, 1024, 2048]
    assert plan.params == {"out_channels": 256, "first_level": 2}


@pytest.mark.parametrize("count", [3, 5])
def test_the_spec_takes_exactly_four_inputs(count):
    with pytest.raises(pyramidgraph.SpecError) as error:
        pyramidgraph.compile("afpn", [16 * 2**i for i in range(count)])
    assert str(error.value).split(": ", 1)[1] == (f"inputs: in_channels has {count} entries but the spec declares 4 inputs: C2 (level 2), C3 (level 3), C4 (level 4), C5 (level 5)")


def test_the_neck_refuses_maps_that_do_not_halve_exactly_and_takes_those_that_do():
    _case, neck, _outputs = _own("afpn_narrow_96x160")
    with torch.no_grad():
        outputs = neck(neck.example_inputs(batch=2, image=(94, 158)))  # 24x40 .. 3x5: each exactly twice the next
        assert [tuple(o.shape) for o in outputs] == [(2, 16, 24, 40), (2, 16, 12, 20), (2, 16, 6, 10), (2, 16, 3, 5), (2, 16, 2, 3)]
        with pytest.raises(NeckInputError) as error:
            neck(neck.example_inputs(batch=2, image=(100, 100)))  # 25, 13, 7, 4: the reference fails too
    assert str(error.value) == (
        "neck 'afpn': input sizes fail at nodes.S1_2: inputs of 'S1_2' do not line up: 'R2' gives 25x25, 'R3' gives 26x26 (and 1 more); "
        "expected image sides divisible by 32 (fixed-factor upsampling in S1_2.from_R3, S2_2.from_S1_3, ...): C2 a multiple of 8, "
        "each input exactly half the next finer; got C2 25x25, C3 13x13, C4 7x7, C5 4x4"
    )


# -- the basic_block op ------------------------------------------------------------------------


def _spec(post: list, channels: int = 8) -> dict:
    return {
        "pyramidgraph": 1,
        "inputs": {"C3": {"level": 3}},
        "defaults": {"resample": {"project": "none"}},
        "nodes": {"P3": {"from": ["C3"], "channels": channels, "post": post}},
        "outputs": ["P3"],
    }


def _block_directly(sd: dict, prefix: str, x: torch.Tensor, bias: bool) -> torch.Tensor:
    def conv_bn(y, conv, bn):
        y = F.conv2d(y, sd[f"{prefix}.{conv}.weight"], sd[f"{prefix}.{conv}.bias"] if bias else None, 1, 1)
        return F.batch_norm(y, sd[f"{prefix}.{bn}.running_mean"], sd[f"{prefix}.{bn}.running_var"], sd[f"{prefix}.{bn}.weight"], sd[f"{prefix}.{bn}.bias"], False, 0.0, 1e-5)

    return F.relu(conv_bn(F.relu(conv_bn(x, "conv1", "bn1")), "conv2", "bn2") + x)


@pytest.mark.parametrize("bias", [True, False])
def test_basic_blocks_are_the_residual_chain_computed_directly(bias):
    neck = randomise(pyramidgraph.compile(_spec([{"basic_block": {"blocks": 2, "bias": bias}}]), [8]), std=0.2)
    sd = neck.state_dict()
    weights = [k for k in sd if k.startswith("P3.post0.0.") and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    expected = ["conv1.weight", *(["conv1.bias"] if bias else []), "bn1.weight", "bn1.bias", "conv2.weight", *(["conv2.bias"] if bias else []), "bn2.weight", "bn2.bias"]
    assert sorted(weights) == sorted(f"P3.post0.0.{name}" for name in expected)
    assert sum(p.numel() for p in neck.parameters()) == 2 * 2 * (8 * 8 * 9 + (8 if bias else 0) + 16)
    x = torch.randn(2, 8, 6, 10)
    with torch.no_grad():
        (ours,) = neck([x])
        direct = _block_directly(sd, "P3.post0.1", _block_directly(sd, "P3.post0.0", x, bias), bias)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def test_basic_block_refuses_a_width_change_and_a_blockless_chain():
    with pytest.raises(pyramidgraph.SpecError) as error:
        pyramidgraph.validate(_spec(["basic_block"]), [16])
    assert str(error.value).endswith("nodes.P3: basic_block keeps its input's width (the shortcut is the identity), but it gets 16 channels in a node of 8; put a conv before it to reach the node's width")
    with pytest.raises(pyramidgraph.SpecError) as error:
        pyramidgraph.validate(_spec([{"basic_block": 0}]), [8])
    assert str(error.value).endswith("nodes.P3: basic_block: blocks must be between 1 and 64, got 0")


def test_the_shortcut_is_an_add_per_block():
    neck = pyramidgraph.compile(_spec([{"basic_block": 3}]), [8])
    adds = [n for n in neck.graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 3
