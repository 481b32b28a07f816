"""The case of RT-DETR's hybrid encoder (specs/rtdetr_hybrid_encoder.yaml)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "rtdetr_hybrid_encoder": LibraryCase(
        in_channels={3: [16, 24, 32], 4: [8, 16, 24, 32], 5: [8, 8, 16, 24, 32]},
        params={"hidden_dim": 32, "nhead": 4, "dim_feedforward": 64},
        # the CCFM upsamples by scale 2 (F.interpolate(scale_factor=2.)), so sides are multiples of 32 at three levels
        images=((96, 160), (128, 128)),
        outputs=(
            [(32, 12, 20), (32, 6, 10), (32, 3, 5)],
            [(32, 16, 16), (32, 8, 8), (32, 4, 4)],
        ),
        shape_levels=3,
        paper=(
            {"in_channels": [512, 1024, 2048]},
            11_950_848,
            "the official HybridEncoder (lyuwenyu/RT-DETR 068dfde, rtdetrv2_pytorch/src/zoo/rtdetr/hybrid_encoder.py) built as RT-DETR-R50's "
            "(in_channels [512, 1024, 2048], hidden_dim 256, dim_feedforward 1024, nhead 8, depth_mult 1, expansion 1.0) in the peers venv "
            "and counted with sum(p.numel() for p in module.parameters()); ultralytics 8.4's rtdetr-l.yaml head (rows 10-27 of "
            "RTDETRDetectionModel('rtdetr-l.yaml')) counts the same 11,950,848. The paper's tables give whole-detector figures only",
        ),
    ),
}
