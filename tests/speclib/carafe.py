"""Cases for FPN with CARAFE upsampling (issue 10, item 5)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "fpn_carafe": LibraryCase(
        in_channels={3: [8, 16, 32], 4: [8, 16, 32, 64], 5: [8, 8, 16, 32, 64]},
        params={"channels": 8, "compressed": 4},
        # 100x76: every level's side is odd somewhere, so each top-down sum crops its upsampled map
        images=((100, 76), (128, 128)),
        outputs=([(8, 25, 19), (8, 13, 10), (8, 7, 5), (8, 4, 3), (8, 2, 2)], [(8, 32, 32), (8, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2)]),
        shape_levels=4,
        paper=(
            {"in_channels": [256, 512, 1024, 2048]},
            8_949_904,
            "Faster R-CNN R50 w/ CARAFE, mmdetection configs/carafe/faster-rcnn_r50_fpn-carafe_1x_coco.py (out 256, 5 outs, carafe up_kernel 5, "
            "up_group 1, encoder_kernel 3, compressed 64): mmdet 3.3's FPN_CARAFE with mmcv's CARAFEPack counted in the peers environment, and "
            "by hand in tests/interop/test_mmdet_fpn_carafe.py (4 CARAFE modules of 74,148 each)",
        ),
    ),
}
