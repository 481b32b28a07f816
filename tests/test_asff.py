"""The bundled ``asff`` spec: ASFF (Liu et al. 2019) as the authors' code computes it.

Parity with the authors' module is the recorded case ``../shared/fixtures/necks/asff.pt``
(9.76 M parameters: the reference hard-codes its widths). The spec's other modes (``rfb``'s
narrower weight branches, other widths, non-square images) are checked against a direct
computation written here with ``torch.nn.functional``, on the neck's own weights.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from norms import randomise
from recorded import SHARED, have_shared, load_case

import pyramidgraph
from pyramidgraph.interop import conversion, from_reference

CASE = SHARED / "necks" / "asff.pt"


@pytest.mark.skipif(not have_shared(), reason="../shared/fixtures/necks/asff.pt is beside the checkout in CI only")
def test_from_reference_reproduces_the_recorded_asff_case():
    case = load_case(CASE)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert [tuple(o.shape) for o in outputs] == [(2, 256, 16, 16), (2, 512, 8, 8), (2, 1024, 4, 4)]
    for ours, ref in zip(outputs, case["outputs"]):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == 9_756_377


def test_the_paper_configuration_has_the_references_parameter_count():
    neck = pyramidgraph.compile("asff")
    assert sum(p.numel() for p in neck.parameters()) == 9_756_377
    assert pyramidgraph.neck_info("asff").params == 9_756_377


def _unit(sd, prefix, x, stride=1, slope=0.1):
    """conv (no bias, padding (k-1)//2) -> BN (eval) -> leaky ReLU: the reference's add_conv."""
    weight = sd[f"{prefix}.conv.weight"]
    x = F.conv2d(x, weight, None, stride, (weight.shape[-1] - 1) // 2)
    x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
    return F.leaky_relu(x, slope)


def _asff_directly(sd, c3, c4, c5):
    levels = {
        "L5": (c5, _unit(sd, "L5_fused.from_C4.via0", c4, 2), _unit(sd, "L5_fused.from_C3.via1", F.max_pool2d(c3, 3, 2, 1), 2)),
        "L4": (F.interpolate(_unit(sd, "L4_fused.from_C5.via0", c5), scale_factor=2.0), c4, _unit(sd, "L4_fused.from_C3.via0", c3, 2)),
        "L3": (F.interpolate(_unit(sd, "L3_fused.from_C5.via0", c5), scale_factor=4.0), F.interpolate(c4, scale_factor=2.0), c3),
    }
    out = {}
    for name, maps in levels.items():
        branches = torch.cat([_unit(sd, f"{name}_fused.fuse.weight_level_{i}", m) for i, m in enumerate(maps)], 1)
        weights = torch.softmax(F.conv2d(branches, sd[f"{name}_fused.fuse.weight_levels.weight"], sd[f"{name}_fused.fuse.weight_levels.bias"]), dim=1)
        fused = sum(m * weights[:, i : i + 1] for i, m in enumerate(maps))
        out[name] = _unit(sd, f"{name}.post0", fused)
    return [out["L3"], out["L4"], out["L5"]]


@pytest.mark.parametrize("compress", [16, 8])
def test_the_neck_is_the_direct_computation_at_small_widths_and_a_non_square_image(compress):
    neck = randomise(pyramidgraph.compile("asff", [16, 16, 32], compress=compress, out3=8, out4=16, out5=24), std=0.2)
    assert neck.state_dict()["L4_fused.fuse.weight_level_1.conv.weight"].shape == (compress, 16, 1, 1)
    assert neck.state_dict()["L4_fused.fuse.weight_levels.weight"].shape == (3, 3 * compress, 1, 1)
    inputs = [torch.randn(2, 16, 12, 20), torch.randn(2, 16, 6, 10), torch.randn(2, 32, 3, 5)]  # image 96x160
    with torch.no_grad():
        ours = neck(inputs)
        direct = _asff_directly(neck.state_dict(), *inputs)
    assert [tuple(o.shape) for o in ours] == [(2, 8, 12, 20), (2, 16, 6, 10), (2, 24, 3, 5)]
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_the_per_pixel_weights_are_a_softmax_over_the_inputs_in_the_fuse():
    neck = randomise(pyramidgraph.compile("asff", [16, 16, 32], out3=8, out4=16, out5=24), std=0.2)
    softmax = [n for n in neck.graph.nodes if n.target is torch.softmax]
    assert len(softmax) == 3 and all(n.args[1] == 1 and n.meta["role"] == "fuse" for n in softmax)


def test_rfb_narrows_the_weight_branches_and_other_reference_settings_are_refused():
    assert conversion("asff.ASFF", {"rfb": True}).params == {"compress": 8}
    for config, message in (
        ({"vis": True}, "asff.ASFF: vis=True returns the fusion weights as well as the maps; a neck returns the maps only (set vis: false)"),
        ({"in_channels": [128, 256, 512]}, "asff.ASFF: the reference hard-codes in_channels [256, 256, 512]; got [128, 256, 512]"),
    ):
        with pytest.raises(pyramidgraph.SpecError) as info:
            conversion("asff.ASFF", config)
        assert info.value.issues[0].format().endswith(message.split(": ", 1)[1])


def test_an_unknown_config_key_is_refused_with_the_known_ones():
    with pytest.raises(pyramidgraph.SpecError) as info:
        conversion("asff.ASFF", {"rfbb": True})
    assert info.value.issues[0].message == "unknown config key 'rfbb'; did you mean 'rfb'? (ASFF takes: in_channels, out_channels, output_order, rfb, strides, vis)"
