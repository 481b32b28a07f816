"""Cases for the specs bundled before the library issue."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "asff": LibraryCase(
        in_channels={3: [16, 16, 32]},
        fixed_levels="ASFF fuses exactly three levels: each output's weights are a softmax over three maps",
        params={"out3": 8, "out4": 16, "out5": 24},
        images=((96, 160), (128, 128)),
        outputs=([(8, 12, 20), (16, 6, 10), (24, 3, 5)], [(8, 16, 16), (16, 8, 8), (24, 4, 4)]),
        shape_levels=3,
        paper=({}, 9_756_377, "the authors' YOLOv3-ASFF module (GOATmessi7/ASFF), recorded in ../shared/fixtures/necks/asff.pt"),
    ),
    "fpt": LibraryCase(
        in_channels={4: [16, 16, 16, 16]},
        fixed_levels="FPT's layout is P2..P5: each level's rendering and grounding transformers read fixed partner levels",
        params={"channels": 16},
        images=((100, 132), (128, 128)),
        outputs=([(16, 25, 33), (16, 13, 17), (16, 7, 9), (16, 4, 5)], [(16, 32, 32), (16, 16, 16), (16, 8, 8), (16, 4, 4)]),
        shape_levels=4,
        paper=({}, 26_360_320, "counted term by term in tests/test_fpt.py at the paper's C = 256 (the paper quotes no figure)"),
    ),
    "rfp": LibraryCase(
        in_channels={5: [3, 8, 16, 32, 64]},
        fixed_levels="RFP takes the image and a ResNet's four stages (C2..C5): the feedback re-runs that ResNet",
        params={"channels": 8, "base_channels": 2, "aspp_channels": 4},
        images=((72, 88), (64, 64)),
        outputs=([(8, 18, 22), (8, 9, 11), (8, 5, 6), (8, 3, 3), (8, 2, 2)], [(8, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2), (8, 1, 1)]),
        shape_levels=5,
        paper=(
            {"in_channels": [3, 32, 64, 128, 256], "channels": 32, "base_channels": 8, "aspp_channels": 8},
            446_601,
            "mmdetection's RFP with its DetectoRS ResNet-50 at base width 8 (../shared/fixtures/necks/mmdet_rfp.pt records the reference's count)",
        ),
    ),
}
