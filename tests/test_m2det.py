"""The bundled ``m2det`` spec: M2Det's MLFPN (Zhao et al. 2019) as the authors' code computes it.

Parity with the authors' modules is the two recorded cases ``../shared/fixtures/necks/m2det_mlfpn*.pt``
(and the repository's own ``tests/interop/fixtures/m2det_*.pt``, which ``test_fixtures.py`` runs).
The other modes (2 or 3 TUMs, 4 to 6 scales, smooth and SFAM on and off, odd and non-square
maps) are checked against a direct computation written here with ``torch.nn.functional`` on the
neck's own weights; the sharing of FFMv2 and of SFAM's convs, and the refusals, by name.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import LOCAL, SHARED, have_shared, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, convert_state_dict, from_reference

SOURCE = "m2det.MLFPN"
CASES = SHARED / "necks"
RECORDED = {  # id: (SFAM on, num_params of the reference module, shared modules counted once)
    "m2det_mlfpn": (True, 336_838),
    "m2det_mlfpn_nosfam": (False, 335_584),
}
SMALL = {"planes": 16, "num_levels": 2, "num_scales": 4, "smooth": True, "sfam": True, "shallow_in": 8, "deep_in": 16, "shallow_out": 8, "deep_out": 8}


@pytest.mark.skipif(not have_shared(), reason="../shared/fixtures/necks/m2det_mlfpn*.pt are beside the checkout in CI only")
@pytest.mark.parametrize("name", sorted(RECORDED))
def test_from_reference_reproduces_the_recorded_case(name):
    case = load_case(CASES / f"{name}.pt")
    sfam, num_params = RECORDED[name]
    assert case["config"]["sfam"] is sfam
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, list)  # the reference returns its list of sources
    assert [tuple(o.shape) for o in outputs] == [(2, 96, 36, 36), (2, 96, 18, 18), (2, 96, 9, 9), (2, 96, 5, 5), (2, 96, 3, 3), (2, 96, 1, 1)]
    for ours, ref in zip(outputs, case["outputs"]):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == num_params


def test_the_paper_configuration_has_the_reference_modules_parameter_count():
    """56,266,624: the authors' TUM, SFAM and BasicConv built at planes 256, 8 levels, 6 scales,
    smooth and SFAM on VGG-16's widths (512, 1024), counted in a scratch script with the shared
    modules once (the paper's tables give whole-detector figures only)."""
    plan = conversion(SOURCE, {"planes": 256, "num_levels": 8, "num_scales": 6, "smooth": True, "sfam": True, "shallow_in": 512, "deep_in": 1024, "shallow_out": 256, "deep_out": 512})
    assert (plan.spec, plan.in_channels) == ("m2det", [512, 1024])
    assert plan.params == {"planes": 256, "levels": 8, "scales": 6, "smooth": True, "sfam": True, "shallow_out": 256, "deep_out": 512, "first_level": 3}  # the spec's defaults
    assert pyramidgraph.neck_info(plan.spec, plan.in_channels, params=plan.params).params == 56_266_624


def _basic(sd, prefix, x, stride=1, padding=None):
    """The reference's BasicConv: conv (no bias) -> BN (eval, eps 1e-5) -> ReLU."""
    weight = sd[f"{prefix}.conv.weight"]
    x = F.conv2d(x, weight, None, stride, (weight.shape[-1] - 1) // 2 if padding is None else padding)
    x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
    return F.relu(x)


def _mlfpn_directly(sd, shallow, deep, levels, scales, smooth, sfam, first=3):
    """M2Det's neck written out: FFMv1, one FFMv2 map for all TUMs, the TUM chain, the per-scale
    concatenation (finest first) and SFAM, on the spec's parameter names."""
    base = torch.cat([_basic(sd, "reduce.post0", shallow), F.interpolate(_basic(sd, "up_reduce.post0", deep), scale_factor=2.0, mode="nearest")], 1)
    leach = _basic(sd, "leach.post0", base)
    tums = []
    for tum in range(1, levels + 1):
        name = f"T{tum}"
        encoder = [leach if tum == 1 else torch.cat([leach, tums[-1][0]], 1)]
        for i in range(max(scales - 2, 1)):  # 3x3 stride-2 convs
            encoder.append(_basic(sd, f"{name}_E{first + 1 + i}.from_{name}_{'in' if i == 0 else f'E{first + i}'}", encoder[-1], stride=2))
        coarsest = _basic(sd, f"{name}_V.post0", encoder[-1], padding=0) if scales >= 3 else encoder[-1]
        outs = {scales - 1: _basic(sd, f"{name}_out{scales - 1}.post0", coarsest)}
        previous = outs[scales - 1]
        for j in range(scales - 2, -1, -1):
            lateral = _basic(sd, f"{name}_out{j}.from_{name}_{'in' if j == 0 else f'E{first + j}'}.via0", encoder[j])
            previous = F.interpolate(previous, size=lateral.shape[-2:], mode="nearest") + lateral
            outs[j] = _basic(sd, f"{name}_out{j}.post0", previous) if smooth else previous
        tums.append([outs[j] for j in range(scales)])
    sources = [torch.cat([tum[j] for tum in tums], 1) for j in range(scales)]
    if not sfam:
        return sources
    fc1w, fc1b, fc2w, fc2b = (sd[f"A0.post0.{k}"] for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    return [s * torch.sigmoid(F.conv2d(F.relu(F.conv2d(F.adaptive_avg_pool2d(s, 1), fc1w, fc1b)), fc2w, fc2b)) for s in sources]


@pytest.mark.parametrize(
    "levels,scales,smooth,sfam,shapes",
    [
        # 38x46 and 19x23: encoder 19x23, 10x12, the unpadded conv 8x10 (nearest 8 -> 10 -> 19 is not x2)
        (2, 4, False, True, [(38, 46), (19, 23), (10, 12), (8, 10)]),
        # encoder 19x23, 10x12, 5x6, the unpadded conv 3x4
        (3, 5, True, True, [(38, 46), (19, 23), (10, 12), (5, 6), (3, 4)]),
        # encoder 19x23, 10x12, 5x6, 3x3, the unpadded conv 1x1 (nearest 1 -> 3 -> 5x6 -> 10x12 -> 19x23 -> 38x46)
        (2, 6, True, False, [(38, 46), (19, 23), (10, 12), (5, 6), (3, 3), (1, 1)]),
    ],
)
def test_the_neck_is_the_direct_computation_at_odd_sizes(levels, scales, smooth, sfam, shapes):
    neck = randomise(pyramidgraph.compile("m2det", [8, 16], planes=16, levels=levels, scales=scales, smooth=smooth, sfam=sfam, shallow_out=8, deep_out=12))
    inputs = [torch.randn(2, 8, 38, 46), torch.randn(2, 16, 19, 23)]
    with torch.no_grad():
        ours = neck(inputs)
        direct = _mlfpn_directly(neck.state_dict(), *inputs, levels, scales, smooth, sfam)
    assert [tuple(o.shape) for o in ours] == [(2, 16 * levels, *hw) for hw in shapes]
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_ffmv2_and_sfam_are_held_once_and_every_reference_copy_loads():
    case = torch.load(LOCAL / "m2det_l2_s5_sfam_nosmooth.pt", weights_only=False)  # recorded from the authors' modules: 2 levels, 5 scales
    reference = case["state_dict"]
    assert torch.equal(reference["leach.1.conv.weight"], reference["leach.0.conv.weight"])
    assert torch.equal(reference["sfam_module.fc2.4.bias"], reference["sfam_module.fc2.0.bias"])
    neck = from_reference(SOURCE, case["config"], reference).eval()
    keys = list(neck.state_dict())
    assert [k for k in keys if k.startswith("leach.")] == [f"leach.post0.{k}" for k in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")]
    assert [k for k in keys if k.startswith("A")] == ["A0.post0.fc1.weight", "A0.post0.fc1.bias", "A0.post0.fc2.weight", "A0.post0.fc2.bias"]
    assert len(reference) == len(keys) + 6 + 4 * 4  # the reference's second leach copy and four more fc1/fc2 copies
    assert [n.target for n in neck.graph.nodes if n.op == "call_module" and "fc1" in str(n.target)] == ["A0.post0.fc1"] * 5  # one module, called at every scale
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 11_369
    converted = convert_state_dict(SOURCE, case["config"], reference)
    assert set(converted) == set(keys)
    assert converted["leach.post0.conv.weight"] is reference["leach.0.conv.weight"]
    assert converted["A0.post0.fc1.weight"] is reference["sfam_module.fc1.0.weight"]
    with torch.no_grad():
        outputs = neck(case["inputs"])
    for ours, ref in zip(outputs, case["outputs"], strict=True):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_a_checkpoint_whose_repeated_modules_differ_is_refused():
    case = torch.load(LOCAL / "m2det_l2_s5_sfam_nosmooth.pt", weights_only=False)
    reference = {k: v.clone() for k, v in case["state_dict"].items()}
    reference["leach.1.bn.bias"] += 1
    reference["sfam_module.fc1.3.weight"] *= 2
    with pytest.raises(pyramidgraph.SpecError) as info:
        from_reference(SOURCE, case["config"], reference)
    assert [i.message for i in info.value.issues] == [
        "reference key 'leach.1.bn.bias' differs from 'leach.0.bn.bias'; the reference calls one module under both names, so they must be equal",
        "reference key 'sfam_module.fc1.3.weight' differs from 'sfam_module.fc1.0.weight'; the reference calls one module under both names, so they must be equal",
    ]
    reference = {k: v for k, v in case["state_dict"].items() if k != "leach.0.bn.bias"}
    with pytest.raises(pyramidgraph.SpecError) as info:
        from_reference(SOURCE, case["config"], reference)
    assert [i.message for i in info.value.issues] == ["reference key 'leach.1.bn.bias' repeats 'leach.0.bn.bias', which the checkpoint does not have"]


def test_the_reference_arguments_map_onto_the_specs_parameters():
    plan = conversion(SOURCE, dict(SMALL, strides=[16, 32], smooth=False, sfam=False))
    assert (plan.spec, plan.in_channels, plan.return_type) == ("m2det", [8, 16], "list")
    assert plan.params == {"planes": 16, "levels": 2, "scales": 4, "smooth": False, "sfam": False, "shallow_out": 8, "deep_out": 8, "first_level": 4}
    # one TUM without SFAM runs with an odd planes: the reference's TUM is 2 * (planes // 2) wide
    assert conversion(SOURCE, dict(SMALL, planes=9, num_levels=1, sfam=False)).params["planes"] == 8
    neck = from_reference(SOURCE, dict(SMALL, num_scales=2))
    assert [tuple(s.channels for s in neck.output_shapes.values()), neck.strides] == [(32, 32), [8, 16]]  # no unpadded conv with two scales


@pytest.mark.parametrize(
    "change,message",
    [
        ({"num_scale": 4}, "unknown config key 'num_scale'; did you mean 'num_scales'? (M2Det's MLFPN takes: deep_in, deep_out, num_levels, num_scales, planes, sfam, shallow_in, shallow_out, smooth, strides)"),
        ({"net_family": "vgg"}, "config key 'net_family': the family only fixes the widths M2Det hard-codes (vgg: 512 and 1024, res: 512 and 2048): give them as shallow_in and deep_in"),
        ({"planes": 15}, "planes 15 is odd: the reference's TUMs are 2 * (planes // 2) = 14 wide, but the next TUM expects planes // 2 + planes channels, so it fails; use an even planes"),
        ({"planes": 15, "num_levels": 1}, "planes 15 is odd: the reference's TUMs are 2 * (planes // 2) = 14 wide, but SFAM expects planes * num_levels channels, so it fails; use an even planes"),
        ({"planes": 6}, "sfam with planes * num_levels = 12: SFAM squeezes to planes * num_levels // 16 = 0 channels, which the reference cannot build; use sfam: false or planes * num_levels >= 16"),
        ({"num_scales": 1}, "num_scales 1 is not supported: the reference's TUM then still returns two maps without smooth (and fails with it), and the neck returns one of them; use num_scales >= 2"),
        ({"num_scales": 13}, "num_scales 13: at most 12 (each scale halves the map; 12 already needs images of about 130,000 px)"),
        ({"strides": [8, 32]}, "strides [8, 32]: FFMv1 doubles the deep map (nearest, scale 2) to concatenate it with the shallow one, so the deep stride must be twice the shallow one, a power of two ([8, 16])"),
        ({"strides": 8}, "strides must be the two inputs' strides, [shallow, deep], not 8"),
        ({"num_levels": 0}, "num_levels must be an integer of at least 1, not 0"),
        ({"deep_out": 2.5}, "deep_out must be an integer of at least 1, not 2.5"),
        ({"smooth": "yes"}, "smooth must be true or false, not 'yes'"),
    ],
)
def test_configs_the_reference_cannot_run_or_that_are_not_the_necks_are_refused(change, message):
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, dict(SMALL, **change))
    assert [i.message for i in info.value.issues] == [message]


def test_a_config_without_an_architecture_key_is_refused():
    config = {k: v for k, v in SMALL.items() if k not in ("sfam", "deep_in")}
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion(SOURCE, config)
    assert [i.message for i in info.value.issues] == ["the config has no 'sfam', 'deep_in', which m2det.MLFPN needs (the reference has no defaults)"]


def test_sizes_the_tums_cannot_take_are_refused_where_they_fail():
    widths, small = [8, 16], {"planes": 16, "levels": 2, "shallow_out": 8, "deep_out": 8}
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate("m2det", widths, image=256, **small)  # the deepest encoder map is 2x2
    assert [i.message for i in info.value.issues] == ["a 3x3 window with stride 1 and padding 0 leaves nothing of a 2x2 map; use a larger input or padding"]
    assert [i.path for i in info.value.issues] == ["nodes.T1_V"]
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate("m2det", widths, image=264, **small)  # 33x33 and 17x17: deep is not half of shallow
    assert info.value.issues[0].message.startswith("inputs of 'base' do not line up: 'reduce' gives 33x33, 'up_reduce' gives 34x34")
    ir = pyramidgraph.validate("m2det", widths, image=(265, 300), **small).ir  # the smallest height: 34 and 17, encoder 17, 9, 5, 3
    assert [ir.values()[v].size for _, v in ir.outputs] == [(34, 38), (17, 19), (9, 10), (5, 5), (3, 3), (1, 1)]
