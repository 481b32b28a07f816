"""The cases of the YOLO family's bundled necks written from ultralytics' model yamls."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "yolo11": LibraryCase(
        in_channels={3: [128, 128, 256]},
        fixed_levels="YOLO11's head is written for P3-P5: three backbone maps (the P2 and P6 variants are other yamls, which the ultralytics importer reads)",
        # nn.Upsample(scale_factor=2) as ultralytics: image sides are multiples of 32
        images=((96, 160), (128, 128)),
        outputs=(
            [(64, 12, 20), (128, 6, 10), (256, 3, 5)],
            [(64, 16, 16), (128, 8, 8), (256, 4, 4)],
        ),
        shape_levels=3,
        paper=(
            {"scale": "s", "in_channels": [256, 256, 512]},
            3_166_400,
            "ultralytics 8.4.190: DetectionModel('yolo11s.yaml').model[11:23], the layers between C2PSA and Detect, "
            "sum of their parameters' numels (tests/interop/data/ultralytics_necks.json, recorded by record_ultralytics_necks.py); "
            "YOLO11 has no paper",
        ),
    ),
}
