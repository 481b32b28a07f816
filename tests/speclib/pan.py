"""Cases for the Pyramid Attention Network decoder (issue 10, item 3)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "pan_attention": LibraryCase(
        in_channels={3: [8, 12, 16], 4: [8, 12, 16, 24], 5: [8, 8, 12, 16, 24]},
        params={"channels": 8, "conv_bias": False},  # smp's conv biases before a BN get no gradient in training (test_smp_pan covers them)
        # example_inputs gives the stride-32 layout: C5 is 8x10 at 232x300 (the FPA's three 2x2
        # max pools need the deepest map at least 8x8)
        images=((232, 300), (256, 256)),
        outputs=([(8, 58, 75)], [(8, 64, 64)]),
        shape_levels=4,
        squares=(256, 288),  # the FPA's three 2x2 max pools need the stride-32 map at least 8x8
        paper=(
            {"in_channels": [256, 512, 1024, 2048]},
            751_495,
            "segmentation-models-pytorch 0.6.0 PANDecoder([3, 64, 256, 512, 1024, 2048], encoder_depth=5, decoder_channels=32) "
            "(ResNet-101's widths, the paper's backbone; smp's default width 32), counted with smp in the peers environment "
            "(resnet34's widths give 190,855, smp.PAN's decoder; tests/interop/test_smp_pan.py asserts both)",
        ),
    ),
}
