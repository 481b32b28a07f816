"""DCNv2 in plain PyTorch (``pyramidgraph/ops/deform.py``).

The vectorised :func:`modulated_deform_conv2d` is checked against a direct computation written
here: for every output pixel and kernel tap, bilinear sampling at ``p + p_k + dp_k`` with zero
outside the map, times the mask, in float64 at tiny sizes (mmcv's CUDA kernel's definition:
offsets as (y, x) pairs per tap, row-major taps, deformable groups over contiguous input
channels). At ordinary sizes, zero offsets and a mask of one must give ``F.conv2d``. The
``modulated_deform_conv`` op (mmcv's ``ModulatedDeformConv2dPack``) is checked on its own
weights, its mmcv key names and its zero-initialised offset conv.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.ops.deform import modulated_deform_conv2d


def _bilinear(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """``image`` (C, H, W) at the fractional point (y, x); corners outside the map count as 0."""
    _, height, width = image.shape
    y0, x0 = math.floor(y), math.floor(x)
    value = torch.zeros(image.shape[0], dtype=image.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                value = value + wy * wx * image[:, yy, xx]
    return value


def dcn_by_loops(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, deform_groups=1):
    """DCNv2 one output pixel and one tap at a time (float64, tiny sizes only)."""
    batch, channels, _, _ = x.shape
    out_channels, _, kernel, _ = weight.shape
    out_h, out_w = offset.shape[-2:]
    per_dg, per_group, out_per_group = channels // deform_groups, channels // groups, out_channels // groups
    out = torch.zeros(batch, out_channels, out_h, out_w, dtype=x.dtype)
    for b in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                samples = torch.zeros(channels, kernel, kernel, dtype=x.dtype)
                for g in range(deform_groups):
                    for ki in range(kernel):
                        for kj in range(kernel):
                            tap = ki * kernel + kj
                            dy = offset[b, g * 2 * kernel * kernel + 2 * tap, i, j].item()
                            dx = offset[b, g * 2 * kernel * kernel + 2 * tap + 1, i, j].item()
                            y = i * stride - padding + ki * dilation + dy
                            xx = j * stride - padding + kj * dilation + dx
                            m = mask[b, g * kernel * kernel + tap, i, j]
                            samples[g * per_dg : (g + 1) * per_dg, ki, kj] = m * _bilinear(x[b, g * per_dg : (g + 1) * per_dg], y, xx)
                for o in range(out_channels):
                    group = o // out_per_group
                    out[b, o, i, j] = (weight[o] * samples[group * per_group : (group + 1) * per_group]).sum()
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@pytest.mark.parametrize(
    "channels, out_channels, kernel, stride, padding, dilation, groups, deform_groups",
    [
        (4, 6, 3, 1, 1, 1, 1, 1),
        (4, 6, 3, 2, 1, 1, 1, 2),  # DyHead's low conv is stride 2; two deformable groups
        (4, 4, 3, 1, 2, 2, 2, 1),  # dilation and conv groups
        (6, 3, 1, 1, 0, 1, 1, 3),  # a 1x1 DCN
        (2, 2, 5, 3, 1, 1, 1, 1),  # a 5x5 kernel, stride 3, padding smaller than the kernel's half
    ],
)
def test_modulated_deform_conv2d_equals_the_loop_definition(channels, out_channels, kernel, stride, padding, dilation, groups, deform_groups):
    torch.manual_seed(channels * 100 + kernel * 10 + stride)
    height, width = 5, 7
    out_h, out_w = _out_size(height, kernel, stride, padding, dilation), _out_size(width, kernel, stride, padding, dilation)
    x = torch.randn(2, channels, height, width, dtype=torch.float64)
    offset = 2.5 * torch.randn(2, deform_groups * 2 * kernel * kernel, out_h, out_w, dtype=torch.float64)  # many samples fall outside the map
    mask = torch.rand(2, deform_groups * kernel * kernel, out_h, out_w, dtype=torch.float64)
    weight = torch.randn(out_channels, channels // groups, kernel, kernel, dtype=torch.float64)
    bias = torch.randn(out_channels, dtype=torch.float64)
    ours = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups)
    expected = dcn_by_loops(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups)
    assert ours.shape == (2, out_channels, out_h, out_w)
    assert ours.dtype == torch.float64
    assert torch.allclose(ours, expected, atol=1e-10, rtol=0)


def test_offsets_are_y_then_x_and_shift_the_samples():
    """A whole-pixel offset (dy, dx) = (1, -2) on every tap with mask 1 is the plain conv of the map
    shifted up by 1 and right by 2, away from the border (there the DCN still reads the map
    through the padding, where the shifted map's conv reads zeros)."""
    torch.manual_seed(3)
    x = torch.randn(1, 3, 8, 9, dtype=torch.float64)
    weight = torch.randn(2, 3, 3, 3, dtype=torch.float64)
    offset = torch.zeros(1, 18, 8, 9, dtype=torch.float64)
    offset[:, 0::2] = 1.0
    offset[:, 1::2] = -2.0
    shifted = torch.zeros_like(x)
    shifted[:, :, :-1, 2:] = x[:, :, 1:, :-2]  # value at (i, j) is x(i + 1, j - 2)
    ours = modulated_deform_conv2d(x, offset, torch.ones(1, 9, 8, 9, dtype=torch.float64), weight, None, 1, 1)
    expected = F.conv2d(shifted, weight, None, 1, 1)
    assert torch.allclose(ours[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-12)
    assert not torch.allclose(ours[..., 0, :], expected[..., 0, :], atol=1e-3)  # y offsets are channel 2t: swapping them would not match


def test_zero_offsets_and_unit_mask_give_conv2d_at_ordinary_sizes():
    torch.manual_seed(0)
    x = torch.randn(2, 64, 37, 29)
    weight = torch.randn(48, 32, 3, 3) * 0.05
    bias = torch.randn(48)
    for stride, dilation in ((1, 1), (2, 1), (1, 2)):
        out_h, out_w = _out_size(37, 3, stride, dilation, dilation), _out_size(29, 3, stride, dilation, dilation)
        offset, mask = torch.zeros(2, 18, out_h, out_w), torch.ones(2, 9, out_h, out_w)
        ours = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, dilation, dilation, groups=2)
        expected = F.conv2d(x, weight, bias, stride, dilation, dilation, groups=2)
        assert ours.shape == expected.shape
        assert (ours - expected).abs().max().item() < 1e-4


def test_gradients_flow_to_input_offsets_mask_and_weights():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    offset = (0.3 + 0.4 * torch.rand(1, 18, 4, 5, dtype=torch.float64)).requires_grad_()  # away from whole pixels, where bilinear sampling has kinks
    mask = torch.rand(1, 9, 4, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: modulated_deform_conv2d(*a, None, 1, 1), (x, offset, mask, weight))


SPEC = """
pyramidgraph: 1
params: {deform_groups: 1}
example: {in_channels: [8], image: 64}
inputs: {C3: {level: 3}}
nodes:
  P3: {from: [C3], channels: 8, post: [{modulated_deform_conv: {deform_groups: $deform_groups}}]}
  D4: {from: [P3], level: 4, channels: 6, resample: {down: {dcn: {bias: false}}}}
outputs: [P3, D4]
"""


def test_the_op_has_mmcvs_pack_keys_and_starts_as_a_plain_conv_with_mask_half():
    neck = pyramidgraph.compile(SPEC, [8])
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert shapes == {
        "P3.post0.weight": (8, 8, 3, 3),
        "P3.post0.bias": (8,),
        "P3.post0.conv_offset.weight": (27, 8, 3, 3),
        "P3.post0.conv_offset.bias": (27,),
        "D4.from_P3.weight": (6, 8, 3, 3),
        "D4.from_P3.conv_offset.weight": (27, 8, 3, 3),
        "D4.from_P3.conv_offset.bias": (27,),
    }
    sd = neck.state_dict()
    assert sd["P3.post0.conv_offset.weight"].abs().sum() == 0 and sd["P3.post0.conv_offset.bias"].abs().sum() == 0
    assert sd["P3.post0.bias"].abs().sum() == 0
    bound = 1 / math.sqrt(8 * 9)  # mmcv's init: uniform in +-1/sqrt(in * k * k)
    assert sd["P3.post0.weight"].abs().max() <= bound and sd["P3.post0.weight"].abs().max() > 0.8 * bound
    c3 = torch.randn(2, 8, 11, 13)
    p3, d4 = neck([c3])
    assert p3.shape == (2, 8, 11, 13) and d4.shape == (2, 6, 6, 7)
    assert torch.allclose(p3, 0.5 * F.conv2d(c3, sd["P3.post0.weight"], None, 1, 1) + sd["P3.post0.bias"].view(1, -1, 1, 1), atol=1e-5)
    assert torch.allclose(d4, 0.5 * F.conv2d(p3, sd["D4.from_P3.weight"], None, 2, 1), atol=1e-5)


def test_the_op_on_its_own_random_weights_equals_a_direct_computation():
    neck = pyramidgraph.compile(SPEC, [8], params={"deform_groups": 2}).double()
    torch.manual_seed(5)
    with torch.no_grad():
        for value in neck.state_dict().values():
            value.copy_(torch.randn_like(value) * 0.3)
    sd = neck.state_dict()
    c3 = torch.randn(1, 8, 5, 6, dtype=torch.float64)
    p3, d4 = neck([c3])

    def pack(prefix, x, stride, bias):
        both = F.conv2d(x, sd[f"{prefix}.conv_offset.weight"], sd[f"{prefix}.conv_offset.bias"], stride, 1)
        groups = both.shape[1] // 27
        offset, mask = both[:, : 18 * groups], torch.sigmoid(both[:, 18 * groups :])
        return dcn_by_loops(x, offset, mask, sd[f"{prefix}.weight"], sd.get(f"{prefix}.bias") if bias else None, stride, 1, 1, 1, groups)

    expected_p3 = pack("P3.post0", c3, 1, True)
    assert torch.allclose(p3, expected_p3, atol=1e-9)
    assert torch.allclose(d4, pack("D4.from_P3", expected_p3, 2, False), atol=1e-9)
    retraced = torch.fx.symbolic_trace(neck)
    assert torch.allclose(retraced([c3])[0], p3, atol=1e-12)


def test_the_op_refuses_widths_its_groups_do_not_divide():
    spec = SPEC.replace("{modulated_deform_conv: {deform_groups: $deform_groups}}", "{modulated_deform_conv: {deform_groups: 3}}")
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec, [8])
    assert "modulated_deform_conv with deform_groups=3 needs the input's width divisible by it, got 8" in str(info.value)
    spec = SPEC.replace("{modulated_deform_conv: {deform_groups: $deform_groups}}", "{modulated_deform_conv: {groups: 3}}")
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec, [8])
    assert "modulated_deform_conv with groups=3 needs widths divisible by it, got 8 -> 8" in str(info.value)
