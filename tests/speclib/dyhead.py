"""Cases for the Dynamic Head spec (issue 10, item 5)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "dyhead": LibraryCase(
        in_channels={3: [16, 16, 16], 4: [16, 16, 16, 16], 5: [16, 16, 16, 16, 16]},
        params={"out_channels": 32, "num_blocks": 2},  # 32: with GroupNorm(16) over 16 channels every channel's mean is 0 at init, and the scale attention then reads only its bias
        images=((100, 84), (128, 128)),
        outputs=(
            [(32, 13, 11), (32, 7, 6), (32, 4, 3), (32, 2, 2), (32, 1, 1)],
            [(32, 16, 16), (32, 8, 8), (32, 4, 4), (32, 2, 2), (32, 1, 1)],
        ),
        shape_levels=5,
        # 256 and up: at 128 its P6 is 2x2 and P7 1x1, and GroupNorm over 2 channels of such a map
        # normalises 2 to 8 values, whose spread bfloat16 rounding decides (6.6% off at P6)
        squares=(256, 288),
        paper=(
            {},
            11_499_048,
            "mmdet 3.3.0's DyHead(256, 256, num_blocks=6) of configs/dyhead/atss_r50_fpn_dyhead_4x4_1x_coco.py, counted in the peers' environment; by hand 6 x 1,916,508 (tests/test_dyhead.py)",
        ),
    ),
}
