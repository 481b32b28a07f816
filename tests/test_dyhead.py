"""The bundled ``dyhead`` spec and its mmdet converter (``DyHead``).

mmcv's modulated deformable conv has no CPU kernel, so mmdet's DyHead cannot run as it is on
CPU. Three checks stand in for a plain recording:

* a direct computation of one and two blocks written here with ``torch.nn.functional`` on the
  compiled neck's own randomised weights, with the loop-based DCNv2 of ``test_deform.py`` at
  tiny sizes and an independent gather-based DCNv2 at ordinary ones, for both ways of reading
  the coarser map's offsets (``flat``: mmdet 3.3.0 and the official code; ``crop``);
* two cases recorded from mmdet 3.3.0's own DyHead with its DCN's forward replaced by
  torchvision's ``deform_conv2d`` (``tests/interop/fixtures/mmdet_dyhead_*.pt``, see
  ``dyhead_cases.json``);
* strict loading of a state_dict of exactly mmdet's key names and shapes, read from
  ``mmdet/models/necks/dyhead.py`` and ``mmdet/models/layers/se_layer.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from recorded import load_case
from test_deform import dcn_by_loops

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.interop import conversion, from_reference

FIXTURES = Path(__file__).resolve().parent / "interop" / "fixtures"


def dcn_by_gathers(x, offset, mask, weight, stride):
    """A 3x3 DCNv2 (padding 1) one tap at a time: the four bilinear corners gathered by index,
    zero outside the map (independent of the op's grid_sample)."""
    batch, channels, height, width = x.shape
    out_h, out_w = offset.shape[-2:]
    flat = x.reshape(batch, channels, height * width)
    rows = (torch.arange(out_h, dtype=x.dtype) * stride - 1).view(1, -1, 1)
    cols = (torch.arange(out_w, dtype=x.dtype) * stride - 1).view(1, 1, -1)
    columns = []
    for tap in range(9):
        y = rows + tap // 3 + offset[:, 2 * tap]
        xx = cols + tap % 3 + offset[:, 2 * tap + 1]
        y0, x0 = torch.floor(y), torch.floor(xx)
        sample = torch.zeros(batch, channels, out_h, out_w, dtype=x.dtype)
        for cy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
            for cx, wx in ((x0, 1 - (xx - x0)), (x0 + 1, xx - x0)):
                inside = (cy >= 0) & (cy < height) & (cx >= 0) & (cx < width)
                index = (cy.clamp(0, height - 1) * width + cx.clamp(0, width - 1)).long().view(batch, 1, -1).expand(-1, channels, -1)
                value = torch.gather(flat, 2, index).view(batch, channels, out_h, out_w)
                sample = sample + (wy * wx * inside).unsqueeze(1) * value
        columns.append(sample * mask[:, tap : tap + 1])
    stacked = torch.stack(columns, 2)  # B, C, 9, H_out, W_out
    return torch.einsum("ock,bckhw->bohw", weight.reshape(weight.shape[0], channels, 9), stacked)


def _loops(x, offset, mask, weight, stride):
    return dcn_by_loops(x, offset, mask, weight, None, stride, 1)


def _hsigmoid(x):
    return torch.clamp((x + 3) / 6, 0, 1)


def block_directly(sd, prefix, xs, dcn, coarse="flat"):
    """One DyHead block, written from mmdet's DyHeadBlock.forward and DyReLU.forward."""
    outs = []
    for level, x in enumerate(xs):
        both = F.conv2d(x, sd[f"{prefix}.spatial_conv_offset.weight"], sd[f"{prefix}.spatial_conv_offset.bias"], 1, 1)
        offset, mask = both[:, :18], both[:, 18:].sigmoid()

        def spatial(name, source, offset, mask, stride):
            y = dcn(source, offset, mask, sd[f"{prefix}.{name}.conv.weight"], stride)
            return F.group_norm(y, 16, sd[f"{prefix}.{name}.norm.weight"], sd[f"{prefix}.{name}.norm.bias"])

        def scaled(y):
            gate = F.conv2d(y.mean((2, 3), keepdim=True), sd[f"{prefix}.scale_attn_module.1.weight"], sd[f"{prefix}.scale_attn_module.1.bias"])
            return y * _hsigmoid(F.relu(gate))

        total, count = scaled(spatial("spatial_conv_mid", x, offset, mask, 1)), 1
        if level > 0:
            total, count = total + scaled(spatial("spatial_conv_low", xs[level - 1], offset, mask, 2)), count + 1
        if level < len(xs) - 1:
            batch, (h, w) = x.shape[0], xs[level + 1].shape[-2:]
            if coarse == "flat":  # each sample's first 18*h*w offsets (9*h*w mask values), as a CUDA kernel reads them
                high_offset = offset.reshape(batch, -1)[:, : 18 * h * w].reshape(batch, 18, h, w)
                high_mask = mask.reshape(batch, -1)[:, : 9 * h * w].reshape(batch, 9, h, w)
            else:
                high_offset, high_mask = offset[:, :, :h, :w], mask[:, :, :h, :w]
            high = F.interpolate(spatial("spatial_conv_high", xs[level + 1], high_offset, high_mask, 1), size=x.shape[-2:], mode="bilinear", align_corners=True)
            total, count = total + scaled(high), count + 1
        mean = total / count
        hidden = F.relu(F.conv2d(mean.mean((2, 3), keepdim=True), sd[f"{prefix}.task_attn_module.conv1.conv.weight"], sd[f"{prefix}.task_attn_module.conv1.conv.bias"]))
        coefficients = _hsigmoid(F.conv2d(hidden, sd[f"{prefix}.task_attn_module.conv2.conv.weight"], sd[f"{prefix}.task_attn_module.conv2.conv.bias"])) - 0.5
        c = mean.shape[1]
        a1, b1, a2, b2 = (coefficients[:, i * c : (i + 1) * c] for i in range(4))
        outs.append(torch.max(mean * (a1 * 2 + 1) + b1, mean * (a2 * 2) + b2))
    return outs


def _randomised(neck, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, value in neck.state_dict().items():
            if name.endswith("norm.weight"):
                value.copy_(1 + 0.2 * torch.randn_like(value))
            elif "spatial_conv_offset" in name:
                value.copy_(0.3 * torch.randn_like(value))  # offsets of a pixel or more, samples outside the map
            else:
                value.copy_(torch.randn_like(value) / math.sqrt(max(1, value[0].numel())))
    return neck


def _inputs(channels, sizes, batch, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return [torch.randn(batch, channels, h, w, dtype=dtype) for h, w in sizes]


@pytest.mark.parametrize("coarse", ["flat", "crop"])
def test_two_blocks_equal_the_direct_computation_with_loop_dcn_at_tiny_sizes(coarse):
    neck = _randomised(pyramidgraph.compile("dyhead", [8, 8, 8], params={"out_channels": 16, "num_blocks": 2, "coarse_offsets": coarse}), 1).double().eval()
    xs = _inputs(8, [(5, 4), (3, 2), (2, 1)], batch=2, dtype=torch.float64)  # each ceil(size / 2) of the one before
    with torch.no_grad():
        ours = neck(xs)
        sd = neck.state_dict()
        first = block_directly(sd, "B0.op", xs, _loops, coarse)
        expected = block_directly(sd, "B1.op", first, _loops, coarse)
    assert [tuple(o.shape) for o in ours] == [(2, 16, 5, 4), (2, 16, 3, 2), (2, 16, 2, 1)]
    for o, e in zip(ours, expected):
        assert torch.allclose(o, e, atol=1e-9, rtol=0)


def test_five_levels_equal_the_direct_computation_with_gather_dcn_at_ordinary_sizes():
    neck = _randomised(pyramidgraph.compile("dyhead", [32] * 5, params={"out_channels": 48, "num_blocks": 1}), 2).eval()
    sizes = [(25, 21), (13, 11), (7, 6), (4, 3), (2, 2)]  # a 200x168 image at strides 8..128
    xs = _inputs(32, sizes, batch=2)
    with torch.no_grad():
        ours = neck(xs)
        expected = block_directly(neck.state_dict(), "B0.op", xs, dcn_by_gathers)
    assert [tuple(o.shape) for o in ours] == [(2, 48, h, w) for h, w in sizes]
    for o, e in zip(ours, expected):
        assert (o - e).abs().max().item() <= 1e-4 * max(1.0, e.abs().max().item())


def test_the_two_ways_of_reading_the_coarser_offsets_differ():
    xs = _inputs(16, [(9, 8), (5, 4)], batch=1)
    outs = []
    for coarse in ("flat", "crop"):
        neck = _randomised(pyramidgraph.compile("dyhead", [16, 16], params={"out_channels": 16, "num_blocks": 1, "coarse_offsets": coarse}), 3).eval()
        with torch.no_grad():
            outs.append(neck(xs))
    assert (outs[0][0] - outs[1][0]).abs().max() > 1e-3  # the finest level reads the coarser map through the offsets
    assert torch.equal(outs[0][1], outs[1][1])  # the coarsest level has no coarser neighbour


RECORDED = {
    "mmdet_dyhead_2blocks_odd": [(2, 16, 13, 11), (2, 16, 7, 6), (2, 16, 4, 3), (2, 16, 2, 2), (2, 16, 1, 1)],
    "mmdet_dyhead_in_out_differ": [(2, 32, 13, 15), (2, 32, 7, 8), (2, 32, 4, 4)],
}


@pytest.mark.parametrize("name, shapes", RECORDED.items())
def test_the_cases_recorded_from_mmdets_dyhead_are_reproduced(name, shapes):
    case = load_case(FIXTURES / f"{name}.pt")
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert [tuple(o.shape) for o in outputs] == shapes
    for ours, ref in zip(outputs, case["outputs"]):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"] == {"mmdet_dyhead_2blocks_odd": 22_656, "mmdet_dyhead_in_out_differ": 10_524}[name]


def mmdet_keys(in_channels, out_channels, num_blocks):
    """mmdet's DyHead state_dict names and shapes, from its source: DyDCNv2 (conv without bias,
    GroupNorm), the 27-channel offset conv, scale_attn_module's Sequential (its conv is item 1)
    and DyReLU's two ConvModules (conv with bias, no norm)."""
    keys = {}
    squeeze = int(out_channels / 4)
    for i in range(num_blocks):
        cin, p = in_channels if i == 0 else out_channels, f"dyhead_blocks.{i}"
        for conv in ("spatial_conv_high", "spatial_conv_mid", "spatial_conv_low"):
            keys[f"{p}.{conv}.conv.weight"] = (out_channels, cin, 3, 3)
            keys[f"{p}.{conv}.norm.weight"] = keys[f"{p}.{conv}.norm.bias"] = (out_channels,)
        keys[f"{p}.spatial_conv_offset.weight"], keys[f"{p}.spatial_conv_offset.bias"] = (27, cin, 3, 3), (27,)
        keys[f"{p}.scale_attn_module.1.weight"], keys[f"{p}.scale_attn_module.1.bias"] = (1, out_channels, 1, 1), (1,)
        keys[f"{p}.task_attn_module.conv1.conv.weight"], keys[f"{p}.task_attn_module.conv1.conv.bias"] = (squeeze, out_channels, 1, 1), (squeeze,)
        keys[f"{p}.task_attn_module.conv2.conv.weight"], keys[f"{p}.task_attn_module.conv2.conv.bias"] = (4 * out_channels, squeeze, 1, 1), (4 * out_channels,)
    return keys


def _config(**overrides):
    neck = {"type": "DyHead", "in_channels": 24, "out_channels": 32, "num_blocks": 3}
    neck.update(overrides)
    return {"strides": [8, 16, 32, 64], "necks": [neck]}


def test_a_state_dict_of_mmdets_names_and_shapes_loads_strictly_where_it_belongs():
    torch.manual_seed(0)
    state_dict = {k: torch.randn(shape) for k, shape in mmdet_keys(24, 32, 3).items()}
    neck = from_reference("mmdet", _config(), state_dict)
    ours = neck.state_dict()
    assert len(ours) == len(state_dict) == 3 * 17
    for key, value in state_dict.items():
        block, rest = key.removeprefix("dyhead_blocks.").split(".", 1)
        assert torch.equal(ours[f"B{block}.op.{rest}"], value)
    missing = dict(state_dict)
    del missing["dyhead_blocks.2.scale_attn_module.1.bias"]
    with pytest.raises(SpecError) as info:
        from_reference("mmdet", _config(), missing)
    assert "neck key 'B2.op.scale_attn_module.1.bias' gets no value from the reference" in str(info.value)
    extra = dict(state_dict, **{"dyhead_blocks.0.spatial_conv_mid.conv.bias": torch.zeros(32)})  # mmdet's DCN has no bias: its GroupNorm follows
    with pytest.raises(SpecError) as info:
        from_reference("mmdet", _config(), extra)
    assert "dyhead_blocks.0.spatial_conv_mid.conv.bias" in str(info.value)


def _block_params(cin, out):
    """One block's parameters by hand: 3 DCNs (no bias) + GroupNorms, the offset conv, the scale
    attention's 1x1 conv, DyReLU's squeeze and expand convs."""
    squeeze = out // 4
    return 3 * (out * cin * 9 + 2 * out) + (27 * cin * 9 + 27) + (out + 1) + (out * squeeze + squeeze) + (squeeze * 4 * out + 4 * out)


def test_the_paper_configuration_has_mmdets_parameter_count():
    """ATSS R50 + DyHead (mmdet configs/dyhead/atss_r50_fpn_dyhead_4x4_1x_coco.py): DyHead(256,
    256, num_blocks=6) on P3..P7; mmdet 3.3.0 counts 11,499,048 parameters (the peers' environment)."""
    assert _block_params(256, 256) == 1_916_508
    assert 6 * _block_params(256, 256) == 11_499_048
    neck = pyramidgraph.compile("dyhead")
    assert neck.output_names == ["O3", "O4", "O5", "O6", "O7"] and neck.strides == [8, 16, 32, 64, 128]
    assert sum(p.numel() for p in neck.parameters()) == 11_499_048
    assert sum(p.numel() for p in from_reference("mmdet", _config()).parameters()) == _block_params(24, 32) + 2 * _block_params(32, 32)


def test_the_init_is_mmdets():
    neck = pyramidgraph.compile("dyhead", [64] * 3, params={"out_channels": 64, "num_blocks": 1})
    sd = neck.state_dict()
    assert sd["B0.op.spatial_conv_offset.weight"].abs().sum() == 0 and sd["B0.op.spatial_conv_offset.bias"].abs().sum() == 0
    for conv in ("scale_attn_module.1", "task_attn_module.conv1.conv", "task_attn_module.conv2.conv"):  # normal_init(m, 0, 0.01)
        assert 0.005 < sd[f"B0.op.{conv}.weight"].std() < 0.02 and sd[f"B0.op.{conv}.bias"].abs().sum() == 0
    bound = 1 / math.sqrt(64 * 9)  # mmcv ModulatedDeformConv2d.init_weights
    assert 0.9 * bound < sd["B0.op.spatial_conv_mid.conv.weight"].abs().max() <= bound
    assert torch.equal(sd["B0.op.spatial_conv_mid.norm.weight"], torch.ones(64))
    other = pyramidgraph.compile("dyhead", [64] * 3, params={"out_channels": 64, "num_blocks": 1, "zero_init_offset": False}).state_dict()
    assert 0.005 < other["B0.op.spatial_conv_offset.weight"].std() < 0.02 and other["B0.op.spatial_conv_offset.bias"].abs().sum() == 0


def test_no_blocks_returns_the_inputs_and_one_level_runs_the_mid_conv_only():
    xs = _inputs(16, [(6, 5), (3, 3)], batch=1)
    empty = from_reference("mmdet", {"strides": [8, 16], "necks": [{"type": "DyHead", "in_channels": 16, "out_channels": 32, "num_blocks": 0}]})
    assert sum(p.numel() for p in empty.parameters()) == 0
    assert all(torch.equal(o, x) for o, x in zip(empty(xs), xs))
    one = _randomised(pyramidgraph.compile("dyhead", [16], params={"out_channels": 16, "num_blocks": 1}), 4).eval()
    # mmdet builds the low and high convs with one level too (unused; its checkpoints hold them)
    assert sorted({k.split(".")[2] for k in one.state_dict()}) == ["scale_attn_module", "spatial_conv_high", "spatial_conv_low", "spatial_conv_mid", "spatial_conv_offset", "task_attn_module"]
    with torch.no_grad():
        assert torch.allclose(one(xs[:1])[0], block_directly(one.state_dict(), "B0.op", xs[:1], dcn_by_gathers)[0], atol=1e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_block": 2}, "DyHead: unknown argument 'num_block'; did you mean 'num_blocks'? (DyHead takes: in_channels, init_cfg, num_blocks, out_channels, zero_init_offset)"),
        ({"in_channels": [24, 24, 24, 24]}, "DyHead: in_channels must be an integer, not [24, 24, 24, 24] (mmdet's DyHead takes one width for every level)"),
        ({"out_channels": 40}, "DyHead: out_channels 40 is not a multiple of 16: each DCN's GroupNorm has 16 groups"),
        ({"num_blocks": -1}, "DyHead: num_blocks must be at least 0, got -1"),
        ({"zero_init_offset": "yes"}, "DyHead: zero_init_offset must be true or false, not 'yes'"),
        ({"init_cfg": {"type": "Normal"}}, "DyHead: init_cfg must be None (mmdet asserts it: the blocks initialise themselves)"),
    ],
)
def test_the_converter_refuses_what_mmdet_would_not_build(overrides, message):
    with pytest.raises(SpecError) as info:
        conversion("mmdet", _config(**overrides))
    assert message in str(info.value)


def test_the_converter_needs_strides_and_a_width():
    with pytest.raises(SpecError) as info:
        conversion("mmdet", {"necks": [{"type": "DyHead", "in_channels": 16, "out_channels": 16}]})
    assert "DyHead: the config gives no strides: DyHead runs on as many levels as it is given, so 'strides' must list them (e.g. [8, 16, 32, 64, 128])" in str(info.value)
    with pytest.raises(SpecError) as info:
        conversion("mmdet", {"strides": [8, 32], "necks": [{"type": "DyHead", "in_channels": 16, "out_channels": 16}]})
    assert "DyHead: strides must be consecutive powers of two, got [8, 32]" in str(info.value)
    with pytest.raises(SpecError) as info:
        conversion("mmdet", {"strides": [8], "necks": [{"type": "DyHead", "out_channels": 16}]})
    assert "DyHead: 'in_channels' is required" in str(info.value)
    plan = conversion("mmdet", {"strides": [4, 8, 16], "necks": [{"type": "DyHead", "in_channels": 16, "out_channels": 16, "num_blocks": 2}]})
    assert plan.in_channels == [16, 16, 16] and plan.params["first_level"] == 2
    assert plan.key_map.prefixes == {"dyhead_blocks.0": "B0.op", "dyhead_blocks.1": "B1.op"}


BLOCK_SPEC = """
pyramidgraph: 1
example: {{in_channels: {widths}, image: 64}}
inputs: {{{inputs}}}
nodes:
  B: {{from: {names}, apply: dyhead_block, channels: {channels}}}
outputs: [B.0]
"""


@pytest.mark.parametrize(
    "levels, widths, channels, message",
    [
        ([3, 5], [16, 16], 16, "dyhead_block reads consecutive levels, finest first; got levels 3, 5"),
        ([3, 4], [16, 32], 16, "dyhead_block's convs are shared by every level, so its inputs need one width, got 16, 32 channels"),
        ([3, 4], [16, 16], 24, "group norm with 16 groups needs channels divisible by 16, got 24"),
    ],
)
def test_the_block_refuses_inputs_it_cannot_combine(levels, widths, channels, message):
    spec = BLOCK_SPEC.format(widths=widths, inputs=", ".join(f"C{lv}: {{level: {lv}}}" for lv in levels), names=[f"C{lv}" for lv in levels], channels=channels).replace("'", "")
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec, widths)
    assert message in str(info.value)


def test_inputs_of_floor_sizes_are_refused_with_the_reason():
    neck = pyramidgraph.compile("dyhead", [16, 16], params={"out_channels": 16, "num_blocks": 1})
    with pytest.raises(ValueError) as info:
        neck(_inputs(16, [(13, 13), (6, 6)], batch=1))
    assert "dyhead_block: the stride-2 3x3 conv takes the level-3 map's 13x13 to 7x7, not the level-4 map's 6x6" in str(info.value)


def test_the_diagram_colours_each_line_from_a_block_by_the_level_it_carries():
    """A DyHead block is one box (at its first level); O4 reads the block's level-4 output, a line
    along the level, and the next block reads every level, each line labelled with its level."""
    from pyramidgraph.render import render

    source = render("dyhead", [16, 16, 16], params={"out_channels": 16, "num_blocks": 2}).source
    lines = [line.strip() for line in source.splitlines() if "->" in line]
    into_o4 = [line for line in lines if line.startswith('"B1" -> "O4"') or line.startswith("B1 -> O4")]
    assert len(into_o4) == 1 and '#555555' in into_o4[0]
