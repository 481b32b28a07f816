"""Learned upsampling on an edge: ``deconv`` (transposed conv) and ``pixel_shuffle``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph

SPEC = """
pyramidgraph: 1
example: {in_channels: [16, 32], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4}}
nodes:
  P3: {from: [C3, {from: C4, up: %s}], channels: 8}
outputs: [P3]
"""


def test_deconv_is_a_transposed_conv_of_kernel_and_stride_the_level_ratio():
    neck = pyramidgraph.compile(SPEC % "deconv")
    deconv = neck.get_submodule("P3.from_C4.deconv")
    assert (type(deconv).__name__, deconv.kernel_size, deconv.stride, deconv.padding, deconv.in_channels, deconv.out_channels) == ("ConvTranspose2d", (2, 2), (2, 2), (0, 0), 32, 8)
    c3, c4 = torch.randn(2, 16, 10, 6), torch.randn(2, 32, 5, 3)
    (p3,) = neck([c3, c4])
    torch.testing.assert_close(p3, neck.get_submodule("P3.from_C3.conv")(c3) + F.conv_transpose2d(c4, deconv.weight, deconv.bias, stride=2))


def test_deconv_across_two_levels_and_a_larger_kernel():
    spec = SPEC.replace("C4: {level: 4}", "C4: {level: 5}") % "{deconv: {kernel: 6}}"
    neck = pyramidgraph.compile(spec, image=64)
    deconv = neck.get_submodule("P3.from_C4.deconv")
    assert (deconv.kernel_size, deconv.stride, deconv.padding) == ((6, 6), (4, 4), (1, 1))
    assert neck(neck.example_inputs())[0].shape == (1, 8, 8, 8)


def test_pixel_shuffle_is_a_conv_to_width_times_scale_squared_and_a_shuffle():
    neck = pyramidgraph.compile(SPEC % "pixel_shuffle")
    conv = neck.get_submodule("P3.from_C4.conv")
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (32, 32, (1, 1))
    c3, c4 = torch.randn(2, 16, 10, 6), torch.randn(2, 32, 5, 3)
    (p3,) = neck([c3, c4])
    torch.testing.assert_close(p3, neck.get_submodule("P3.from_C3.conv")(c3) + F.pixel_shuffle(conv(c4), 2))


@pytest.mark.parametrize("op", ["deconv", "pixel_shuffle"])
def test_learned_upsampling_needs_exact_ratios_and_says_so(op):
    neck = pyramidgraph.compile(SPEC % op)
    with pytest.raises(pyramidgraph.NeckInputError, match="divisible by 16"):
        neck([torch.randn(1, 16, 9, 9), torch.randn(1, 32, 5, 5)])  # 9 is not 2 x 5


def test_a_deconv_kernel_that_does_not_grow_the_map_exactly_is_refused():
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(SPEC % "{deconv: {kernel: 3}}")
    assert str(info.value) == "<string>:6:3: nodes.P3: input 'C4': deconv: kernel 3 must be the stride 2 or larger by an even number, so that the map grows exactly 2 times"
