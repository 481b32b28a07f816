"""The ``carafe`` and ``crop`` resample ops, against loops written from mmcv's CARAFE kernels.

The loop (:func:`carafe_loop`) follows ``carafe_naive_cuda_kernel.cuh`` output pixel by output
pixel and tap by tap: mask channel ``(group * k + dy) * k + dx`` after the pixel shuffle, source
pixel ``(h // scale, w // scale)``, zero outside the map, channel groups in contiguous blocks.
The pixel shuffle and the softmax are written out as index arithmetic, not called.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph


def carafe_loop(x: torch.Tensor, logits: torch.Tensor, k: int, groups: int, scale: int) -> torch.Tensor:
    """CARAFE's reassembly from the content encoder's (pre-shuffle) output, by explicit loops."""
    n, c, h, w = x.shape
    out = torch.zeros(n, c, h * scale, w * scale, dtype=x.dtype)
    per_group = c // groups
    for oy in range(h * scale):
        for ox in range(w * scale):
            sy, sx, i, j = oy // scale, ox // scale, oy % scale, ox % scale
            for g in range(groups):
                # pixel shuffle: channel (g * k * k + tap) * scale**2 + i * scale + j lands at (oy, ox)
                raw = [logits[:, (g * k * k + t) * scale * scale + i * scale + j, sy, sx] for t in range(k * k)]
                top = torch.stack(raw).max(0).values
                exps = [torch.exp(r - top) for r in raw]
                total = sum(exps)
                for dy in range(k):
                    for dx in range(k):
                        y, xx = sy + dy - (k - 1) // 2, sx + dx - (k - 1) // 2
                        if 0 <= y < h and 0 <= xx < w:
                            weight = exps[dy * k + dx] / total
                            out[:, g * per_group : (g + 1) * per_group, oy, ox] += x[:, g * per_group : (g + 1) * per_group, y, xx] * weight[:, None]
    return out


def _spec(via, widths=(6, 6), channels=None, image=None):
    spec = {
        "pyramidgraph": 1,
        "name": "up",
        "inputs": {"C3": {"level": 3}, "C4": {"level": 4}},
        "nodes": {"P3": {"from": ["C3", {"from": "C4", "via": via}]}},
        "outputs": ["P3"],
    }
    if channels:
        spec["defaults"] = {"channels": channels}
    return spec


def _randomise(neck: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in neck.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize(
    "c,h,w,k,groups,scale",
    [(4, 3, 2, 3, 2, 2), (3, 3, 3, 5, 1, 2), (2, 2, 1, 1, 1, 4), (4, 2, 3, 3, 4, 1), (6, 2, 2, 5, 3, 2)],
)
def test_reassembly_matches_the_loop(c, h, w, k, groups, scale):
    step = scale.bit_length() - 1
    spec = {
        "pyramidgraph": 1,
        "inputs": {"C5": {"level": 5}},
        "nodes": {"P": {"level": 5 - step, "from": [{"from": "C5", "via": [{"carafe": {"up_kernel": k, "up_group": groups, "compressed": 3}}]}]}},
        "outputs": ["P"],
    }
    torch.manual_seed(0)
    neck = pyramidgraph.compile(spec, [c]).double().eval()
    _randomise(neck)
    sd = neck.state_dict()
    x = torch.randn(2, c, h, w, dtype=torch.float64)
    (got,) = neck([x])
    compressed = F.conv2d(x, sd["P.from_C5.via0.channel_compressor.weight"], sd["P.from_C5.via0.channel_compressor.bias"])
    logits = F.conv2d(compressed, sd["P.from_C5.via0.content_encoder.weight"], sd["P.from_C5.via0.content_encoder.bias"], padding=1)
    assert logits.shape == (2, k * k * groups * scale * scale, h, w)
    assert got.shape == (2, c, h * scale, w * scale)
    torch.testing.assert_close(got, carafe_loop(x, logits, k, groups, scale), rtol=1e-12, atol=1e-12)


def test_the_op_is_compressor_encoder_shuffle_softmax_and_reassembly():
    via = [{"carafe": {"up_kernel": 3, "up_group": 2, "encoder_kernel": 5, "encoder_dilation": 1, "compressed": 5}}, "crop"]
    torch.manual_seed(1)
    neck = pyramidgraph.compile(_spec(via), [6, 6]).double().eval()
    _randomise(neck)
    sd = neck.state_dict()
    prefix = "P3.from_C4.via0."
    assert {k: tuple(v.shape) for k, v in sd.items()} == {
        prefix + "channel_compressor.weight": (5, 6, 1, 1),
        prefix + "channel_compressor.bias": (5,),
        prefix + "content_encoder.weight": (3 * 3 * 2 * 4, 5, 5, 5),
        prefix + "content_encoder.bias": (72,),
    }
    c3, c4 = torch.randn(1, 6, 11, 9, dtype=torch.float64), torch.randn(1, 6, 6, 5, dtype=torch.float64)
    (got,) = neck([c3, c4])
    compressed = F.conv2d(c4, sd[prefix + "channel_compressor.weight"], sd[prefix + "channel_compressor.bias"])
    logits = F.conv2d(compressed, sd[prefix + "content_encoder.weight"], sd[prefix + "content_encoder.bias"], padding=2)
    expected = c3 + carafe_loop(c4, logits, 3, 2, 2)[:, :, :11, :9]
    assert got.shape == (1, 6, 11, 9)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_a_dilated_encoder_and_scale_4_across_two_levels():
    spec = {
        "pyramidgraph": 1,
        "inputs": {"C3": {"level": 3}, "C5": {"level": 5}},
        "nodes": {"P3": {"from": ["C3", {"from": "C5", "via": [{"carafe": {"up_kernel": 3, "encoder_kernel": 3, "encoder_dilation": 2, "compressed": 3}}, "crop"]}]}},
        "outputs": ["P3"],
    }
    neck = pyramidgraph.compile(spec, [4, 4]).double().eval()
    _randomise(neck)
    sd = neck.state_dict()
    prefix = "P3.from_C5.via0."
    assert tuple(sd[prefix + "content_encoder.weight"].shape) == (3 * 3 * 16, 3, 3, 3)
    c3, c5 = torch.randn(1, 4, 10, 7, dtype=torch.float64), torch.randn(1, 4, 3, 2, dtype=torch.float64)
    (got,) = neck([c3, c5])
    compressed = F.conv2d(c5, sd[prefix + "channel_compressor.weight"], sd[prefix + "channel_compressor.bias"])
    logits = F.conv2d(compressed, sd[prefix + "content_encoder.weight"], sd[prefix + "content_encoder.bias"], padding=2, dilation=2)
    torch.testing.assert_close(got, c3 + carafe_loop(c5, logits, 3, 1, 4)[:, :, :10, :7], rtol=1e-10, atol=1e-10)


def test_it_starts_as_mmcv_initialises_it():
    torch.manual_seed(0)
    neck = pyramidgraph.compile(_spec([{"carafe": {"compressed": 64}}]), [256, 256], image=64)
    sd = neck.state_dict()
    encoder = sd["P3.from_C4.via0.content_encoder.weight"]
    compressor = sd["P3.from_C4.via0.channel_compressor.weight"]
    assert encoder.shape == (100, 64, 3, 3)
    assert abs(encoder.std().item() - 0.001) < 0.0001  # normal_init(std=0.001), 57,600 draws
    bound = math.sqrt(6 / (256 + 64))  # xavier uniform, fan_in 256, fan_out 64
    assert compressor.abs().max().item() <= bound and compressor.abs().max().item() > 0.9 * bound
    assert not sd["P3.from_C4.via0.content_encoder.bias"].any() and not sd["P3.from_C4.via0.channel_compressor.bias"].any()


def test_parameter_count_and_estimate():
    neck = pyramidgraph.compile(_spec([{"carafe": {"up_kernel": 5, "up_group": 1, "compressed": 64}}]), [256, 256], image=64)
    count = sum(p.numel() for p in neck.parameters())
    assert count == (256 * 64 + 64) + (64 * 100 * 9 + 100) == 74_148  # compressor + encoder (25 taps x 4 sub-pixels)
    info = pyramidgraph.validate(_spec([{"carafe": {"up_kernel": 5, "up_group": 1, "compressed": 64}}]), [256, 256])
    (op,) = [op for op in info.ir.ops if op.op.name == "carafe"]
    assert op.op.weight_estimate(op.shapes, op.shape) == 74_148


def test_without_crop_the_sizes_must_be_exact():
    neck = pyramidgraph.compile(_spec([{"carafe": {"compressed": 4}}]), [6, 6])
    (out,) = neck([torch.randn(1, 6, 12, 10), torch.randn(1, 6, 6, 5)])
    assert out.shape == (1, 6, 12, 10)
    with pytest.raises(pyramidgraph.NeckInputError) as err:
        neck([torch.randn(1, 6, 11, 9), torch.randn(1, 6, 6, 5)])
    assert str(err.value) == (
        "neck 'up': input sizes fail at nodes.P3: inputs of 'P3' do not line up: 'C3' gives 11x9, 'C4' gives 12x10; "
        "expected image sides divisible by 16 (fixed-factor upsampling in P3.from_C4): C3 a multiple of 2, each input exactly half the next finer; got C3 11x9, C4 6x5"
    )


@pytest.mark.parametrize(
    "params,message",
    [
        ({"up_kernel": 4}, "carafe up_kernel must be odd (a neighbourhood centred on the source pixel), got 4"),
        ({"up_group": 4}, "carafe with up_group=4 needs a width divisible by it, got 6"),
        ({"up_kernel": 33}, "carafe up_kernel must be between 1 and 31, got 33"),
        ({"compressed": 0}, "carafe compressed must be between 1 and 65536, got 0"),
        ({"encoder_dilation": 0}, "carafe encoder_dilation must be between 1 and 16, got 0"),
        ({"scale": 3}, "carafe scale 3 is not a power of two"),
        ({"scale": 4}, "carafe x4 brings level 4 to level 2, not to level 3"),
        ({"encoder_kernel": 2}, "carafe: an encoder_kernel of 2 with dilation 1 cannot keep the map's size (its padding (kernel - 1) * dilation / 2 is not whole); use an odd encoder_kernel or an even dilation"),
    ],
)
def test_shapes_it_cannot_produce_are_refused(params, message):
    with pytest.raises(pyramidgraph.SpecError) as err:
        pyramidgraph.validate(_spec([{"carafe": params}, "crop"]), [6, 6], image=64)
    assert [issue.message for issue in err.value.issues] == [f"input 'C4': {message}"]


def test_an_even_encoder_kernel_with_an_even_dilation_keeps_the_size():
    info = pyramidgraph.validate(_spec([{"carafe": {"encoder_kernel": 2, "encoder_dilation": 2}}]), [6, 6], image=64)
    assert info.ir.values()[info.ir.outputs[0][1]].size == (8, 8)
    neck = pyramidgraph.compile(_spec([{"carafe": {"encoder_kernel": 2, "encoder_dilation": 2, "compressed": 3}}]), [6, 6], image=64)
    assert neck(neck.example_inputs())[0].shape == (1, 6, 8, 8)


def test_crop_cuts_to_the_levels_size_and_refuses_to_grow():
    neck = pyramidgraph.compile(_spec([{"upsample": {"by": "scale"}}, "crop"]), [6, 6]).eval()
    c3, c4 = torch.randn(1, 6, 11, 9), torch.randn(1, 6, 6, 5)
    (got,) = neck([c3, c4])
    torch.testing.assert_close(got, c3 + F.interpolate(c4, scale_factor=2.0, mode="nearest")[:, :, :11, :9], rtol=0, atol=0)
    with pytest.raises(pyramidgraph.SpecError) as err:
        pyramidgraph.validate(_spec(["crop", {"upsample": {"by": "scale"}}]), [6, 6], image=64)
    assert [issue.message for issue in err.value.issues] == ["input 'C4': crop keeps the level: it cuts a map at level 3, not one at level 4; put it after the op that reaches level 3"]
    with pytest.raises(pyramidgraph.NeckInputError, match="crop cuts a map down to 13x13 \\(the level's size\\), but this one is only 12x12"):
        neck([torch.randn(1, 6, 13, 13), torch.randn(1, 6, 6, 6)])


def test_it_retraces():  # torch.export, ONNX and autocast: tests/test_export.py, on the bundled fpn_carafe
    neck = pyramidgraph.compile(_spec([{"carafe": {"up_kernel": 3, "up_group": 2, "compressed": 4}}, "crop"]), [6, 6]).eval()
    inputs = [torch.randn(1, 6, 11, 9), torch.randn(1, 6, 6, 5)]
    (expected,) = neck(inputs)
    (retraced,) = torch.fx.symbolic_trace(neck)(inputs)
    torch.testing.assert_close(retraced, expected, rtol=0, atol=0)
