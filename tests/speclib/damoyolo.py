"""The case of DAMO-YOLO's RepGFPN, GiraffeNeckV2 (specs/giraffe_neck_v2.yaml)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "giraffe_neck_v2": LibraryCase(
        in_channels={3: [16, 24, 32]},
        fixed_levels="GiraffeNeckV2 fuses exactly three backbone maps (strides 8, 16 and 32) in five named fusion nodes; it has no repeatable level",
        params={"hidden_ratio": 0.75, "out3": 16, "out4": 20, "out5": 24},
        # the code upsamples by scale (nearest x2), so the image sides are multiples of 32
        images=((96, 160), (128, 128)),
        outputs=(
            [(16, 12, 20), (20, 6, 10), (24, 3, 5)],
            [(16, 16, 16), (20, 8, 8), (24, 4, 4)],
        ),
        shape_levels=3,
        paper=(
            {"in_channels": [128, 256, 512], "hidden_ratio": 0.75, "out3": 128, "out4": 256, "out5": 512},
            11_902_656,
            "DAMO-YOLO-S's neck (configs/damoyolo_tinynasL25_S.py: depth 1.0, hidden_ratio 0.75, widths 128/256/512, relu): the authors' "
            "GiraffeNeckV2 (tinyvision/DAMO-YOLO 319572e, damo/base_models/necks/giraffe_fpn_btn.py) built from that config and counted in a "
            "scratch script; the paper's tables give whole-detector figures only",
        ),
    ),
}
