"""The bundled ``efm`` spec (CSPNet's Exact Fusion Model) and the ``maxout`` op it compresses with.

No reference implementation exists (see the spec's header), so the neck is checked against a
direct computation of the paper's reading written here with ``torch.nn.functional`` on the
neck's own randomised weights and norm statistics, at odd image sizes: output level ``l`` is a
Maxout over the concatenation of its finer neighbour (3x3 stride-2 conv), itself (1x1 conv) and
its coarser neighbour (1x1 conv, nearest upsampling), then a 3x3 conv; every conv is conv-BN
(eval)-leaky ReLU 0.1.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from norms import randomise

import pyramidgraph
from pyramidgraph import SpecError


def _spec(tmp_path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def _said(info) -> str:
    """The first issue of a SpecError as ``path: message`` (the spec file and line left out)."""
    issue = info.value.issues[0]
    return f"{issue.path}: {issue.message}"


MAXOUT_SPEC = """
pyramidgraph: 1
example: {{in_channels: [{width}], image: 40}}
inputs: {{C3: {{level: 3}}}}
nodes:
  P3: {{from: [C3], post: [{{maxout: {pieces}}}]}}
outputs: [P3]
"""


# --- the maxout op -------------------------------------------------------------------------


@pytest.mark.parametrize("width,pieces", [(12, 3), (12, 2), (10, 5), (7, 1)])
def test_maxout_is_the_elementwise_max_of_contiguous_channel_groups(tmp_path, width, pieces):
    neck = pyramidgraph.compile(_spec(tmp_path, MAXOUT_SPEC.format(width=width, pieces=pieces)))
    torch.manual_seed(0)
    x = torch.randn(2, width, 5, 7)
    (y,) = neck([x])
    group = width // pieces
    direct = x[:, :group]
    for i in range(1, pieces):  # channel j of the output: max of x[j], x[j + group], x[j + 2 group]...
        direct = torch.maximum(direct, x[:, i * group : (i + 1) * group])
    assert y.shape == (2, group, 5, 7)
    assert torch.equal(y, direct)
    assert neck.out_channels == group
    assert list(neck.state_dict()) == []  # no weights


def test_maxout_sends_the_gradient_to_the_winning_group_only(tmp_path):
    neck = pyramidgraph.compile(_spec(tmp_path, MAXOUT_SPEC.format(width=6, pieces=3)))
    x = torch.tensor([1.0, -2.0, 5.0, 0.5, 3.0, -1.0]).view(1, 6, 1, 1).requires_grad_()
    (y,) = neck([x])
    assert y.flatten().tolist() == [5.0, 0.5]  # groups [1, -2], [5, 0.5], [3, -1]: max(1, 5, 3), max(-2, 0.5, -1)
    y.sum().backward()
    assert x.grad.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_maxout_refuses_a_width_its_pieces_do_not_divide_and_no_pieces(tmp_path):
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec(tmp_path, MAXOUT_SPEC.format(width=12, pieces=5)))
    assert _said(info) == "nodes.P3: maxout with 5 pieces needs a width divisible by 5, got 12 channels"
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec(tmp_path, MAXOUT_SPEC.format(width=12, pieces=0)))
    assert _said(info) == "nodes.P3: maxout needs pieces >= 1, got 0"
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(_spec(tmp_path, MAXOUT_SPEC.format(width=12, pieces="{piece: 2}")))
    assert _said(info) == "nodes.P3.post[0].maxout.piece: unknown key 'piece'; did you mean 'pieces'?"


# --- the efm spec: a direct computation --------------------------------------------------------


def _unit(sd, prefix, x, stride=1):
    """darknet's convolutional layer: conv (no bias, padding (k-1)//2), BN (eval, eps 1e-5), leaky ReLU 0.1."""
    weight = sd[f"{prefix}.conv.weight"]
    x = F.conv2d(x, weight, None, stride, (weight.shape[-1] - 1) // 2)
    x = F.batch_norm(x, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
    return F.leaky_relu(x, 0.1)


def _maxout(x, pieces):
    width = x.shape[1] // pieces
    return torch.stack([x[:, i * width : (i + 1) * width] for i in range(pieces)]).max(dim=0).values


def _efm_directly(sd, inputs, first=3, pieces=None, spp=(), out_conv=True, scale=False):
    """EFM's outputs, finest first, for inputs C_first, C_first+1...; ``spp``: the SPP kernels on the coarsest input."""
    levels = list(range(first, first + len(inputs)))
    c = dict(zip(levels, inputs))
    top = levels[-1]
    if spp:
        c[top] = torch.cat([c[top]] + [F.max_pool2d(c[top], k, 1, k // 2) for k in spp], 1)
    source = {lv: ("SPP" if spp and lv == top else f"C{lv}") for lv in levels}
    outputs = []
    for lv in levels:
        maps = []
        if lv > first:  # the finer neighbour, brought down by a 3x3 stride-2 conv
            maps.append(_unit(sd, f"D{lv}.from_C{lv - 1}.via0", inputs[lv - 1 - first], stride=2))
        maps.append(_unit(sd, f"L{lv}.from_{source[lv]}.via0", c[lv]))
        if lv < top:  # the coarser neighbour: 1x1 conv, then nearest x2 (to the finer map's size)
            up = _unit(sd, f"U{lv}.from_{source[lv + 1]}.via0", c[lv + 1])
            maps.append(F.interpolate(up, scale_factor=2.0) if scale else F.interpolate(up, size=inputs[lv - first].shape[-2:]))
        y = _maxout(torch.cat(maps, 1), pieces or len(maps))
        outputs.append(_unit(sd, f"E{lv}.post1", y) if out_conv else y)
    return outputs


def _inputs(widths, size, seed=2):
    """Backbone maps for an image of ``size`` (H, W): level l is ceil(size / 2**l), as stride-2 convs give it."""
    torch.manual_seed(seed)
    return [torch.randn(2, w, -(-size[0] // 2 ** (3 + i)), -(-size[1] // 2 ** (3 + i))) for i, w in enumerate(widths)]


def test_three_levels_are_the_direct_computation_at_an_odd_image_size():
    widths = [8, 12, 16]
    neck = randomise(pyramidgraph.compile("efm", widths), std=0.2)
    inputs = _inputs(widths, (100, 76))  # 13x10, 7x5, 4x3
    with torch.no_grad():
        ours = neck(inputs)
        direct = _efm_directly(neck.state_dict(), inputs)
    assert [tuple(o.shape) for o in ours] == [(2, 8, 13, 10), (2, 12, 7, 5), (2, 16, 4, 3)]
    for a, b in zip(ours, direct):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert neck.output_names == ["E3", "E4", "E5"]
    assert neck.state_dict()["D4.from_C3.via0.conv.weight"].shape == (12, 8, 3, 3)
    assert neck.state_dict()["U4.from_C5.via0.conv.weight"].shape == (12, 16, 1, 1)
    assert "D3.from_C2.via0.conv.weight" not in neck.state_dict() and not any(k.startswith("U5.") for k in neck.state_dict())


@pytest.mark.parametrize(
    "widths,params,size,scale",
    [
        ([8, 16, 16, 32], {"spp": True}, (90, 150), False),
        ([8, 8, 16, 16, 32], {"channels": 12, "pieces": 2}, (99, 130), False),
        ([6, 12, 24], {"out_conv": False, "spp": True, "spp_kernels": [3, 7]}, (64, 96), False),
        ([6, 12, 24], {"upsample_by": "scale", "pieces": 1, "out_conv": False}, (64, 96), True),
    ],
    ids=["spp-4-levels", "uniform-width-fixed-pieces-5-levels", "no-out-conv-spp-3-7", "by-scale-no-maxout"],
)
def test_the_options_are_the_direct_computation(widths, params, size, scale):
    neck = randomise(pyramidgraph.compile("efm", widths, **params), std=0.2)
    inputs = _inputs(widths, size)
    with torch.no_grad():
        ours = neck(inputs)
        direct = _efm_directly(
            neck.state_dict(), inputs, pieces=params.get("pieces"), spp=params.get("spp_kernels", [5, 9, 13]) if params.get("spp") else (),
            out_conv=params.get("out_conv", True), scale=scale,
        )
    assert len(ours) == len(widths)
    for a, b in zip(ours, direct):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "widths,params,expected",
    [
        ([16, 32, 64], {}, [(16, 13, 10), (32, 7, 5), (64, 4, 3)]),
        ([16, 32, 64, 128], {}, [(16, 13, 10), (32, 7, 5), (64, 4, 3), (128, 2, 2)]),
        ([8, 16, 32, 64, 128], {"channels": 24}, [(24, 13, 10), (24, 7, 5), (24, 4, 3), (24, 2, 2), (24, 1, 1)]),
        # No 3x3 after the Maxout, 2 pieces: the ends fuse 2 maps (2 x 24 / 2), the others 3 (3 x 24 / 2).
        ([8, 16, 32, 64, 128], {"channels": 24, "pieces": 2, "out_conv": False}, [(24, 13, 10), (36, 7, 5), (36, 4, 3), (36, 2, 2), (24, 1, 1)]),
        ([8, 16, 32, 64], {"first_level": 2}, [(8, 25, 19), (16, 13, 10), (32, 7, 5), (64, 4, 3)]),
    ],
)
def test_output_shapes_for_three_to_five_levels(widths, params, expected):
    first = params.get("first_level", 3)
    info = pyramidgraph.validate("efm", widths, image=(100, 76), **params)
    shapes = info.ir.values()
    assert [(shapes[v].channels, *shapes[v].size) for _, v in info.ir.outputs] == expected
    assert [name for name, _ in info.ir.outputs] == [f"E{lv}" for lv in range(first, first + len(widths))]


def test_each_output_reads_its_own_level_and_its_two_neighbours_only():
    widths = [8, 8, 16, 16, 32]
    neck = randomise(pyramidgraph.compile("efm", widths), std=0.2)
    inputs = _inputs(widths, (96, 96))
    with torch.no_grad():
        before = neck(inputs)
        for changed in range(5):
            moved = [x + (5.0 if i == changed else 0.0) for i, x in enumerate(inputs)]
            after = neck(moved)
            touched = [i for i in range(5) if not torch.equal(before[i], after[i])]
            assert touched == [i for i in range(5) if abs(i - changed) <= 1], changed


def _unit_count(cin, cout, k):
    """Parameters of one conv-BN unit: the conv's k*k*cin*cout (no bias) and the norm's 2*cout."""
    return k * k * cin * cout + 2 * cout


def _efm_count(widths, out_conv=True, spp_widening=1):
    """EFM's parameters for ``widths`` (one per level, each projected to its own level's width)."""
    down = sum(_unit_count(widths[i - 1], widths[i], 3) for i in range(1, len(widths)))
    top = len(widths) - 1
    own = sum(_unit_count(w * (spp_widening if i == top else 1), w, 1) for i, w in enumerate(widths))
    up = sum(_unit_count(widths[i + 1] * (spp_widening if i + 1 == top else 1), widths[i], 1) for i in range(top))
    after = sum(_unit_count(w, w, 3) for w in widths) if out_conv else 0
    return down + own + up + after


def test_the_compiled_neck_has_one_unit_per_projection_and_output():
    for widths in ([8, 12, 16], [8, 8, 16, 16, 32]):
        neck = pyramidgraph.compile("efm", widths)
        assert sum(p.numel() for p in neck.parameters()) == _efm_count(widths)
    neck = pyramidgraph.compile("efm", [8, 12, 16], spp=True, out_conv=False)
    assert sum(p.numel() for p in neck.parameters()) == _efm_count([8, 12, 16], out_conv=False, spp_widening=4)


def test_the_paper_configuration_is_counted_conv_by_conv():
    """CSPDarknet-53's widths (256, 512, 1024), written out unit by unit."""
    down = _unit_count(256, 512, 3) + _unit_count(512, 1024, 3)
    own = _unit_count(256, 256, 1) + _unit_count(512, 512, 1) + _unit_count(1024, 1024, 1)
    up = _unit_count(512, 256, 1) + _unit_count(1024, 512, 1)
    after = _unit_count(256, 256, 3) + _unit_count(512, 512, 3) + _unit_count(1024, 1024, 3)
    assert down + own + up + after == _efm_count([256, 512, 1024]) == 20_327_936
    assert pyramidgraph.neck_info("efm").params == pyramidgraph.neck_info("efm", [256, 512, 1024]).params == 20_327_936  # the spec's example
    # Without the 3x3s after the Maxouts only the projections remain; SPP widens what the coarsest 1x1s read (4 x 1024).
    assert pyramidgraph.neck_info("efm", params={"out_conv": False}).params == down + own + up
    assert pyramidgraph.neck_info("efm", params={"spp": True}).params == down + own + up + after + 3 * 1024 * (1024 + 512)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"pieces": 2}, "nodes.E4: maxout with 2 pieces needs a width divisible by 2, got 45 channels"),
        ({"pieces": 0}, "params.pieces: parameter 'pieces' must be >= 1, got 0"),
        ({"chanels": 8}, "params: unknown parameter 'chanels'; did you mean 'channels'?"),
        ({"upsample_by": "bilinear"}, "params.upsample_by: parameter 'upsample_by' cannot be 'bilinear'; allowed: 'size', 'scale'"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(params, message):
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("efm", [16, 15, 32], **params)
    assert _said(info) == message


def test_upsampling_by_scale_needs_image_sides_divisible_by_the_strides():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("efm", [16, 16, 32], image=(100, 76), upsample_by="scale")
    assert _said(info).startswith("nodes.E3: inputs of 'E3' do not line up: 'L3' gives 13x10, 'U3' gives 14x10")
