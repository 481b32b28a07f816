"""The case of the Asymptotic Feature Pyramid Network (specs/afpn.yaml)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "afpn": LibraryCase(
        in_channels={4: [32, 48, 64, 96]},
        fixed_levels="AFPN fuses exactly four backbone maps (C2..C5): its three stages fuse the two, three and four finest, and its fifth output is pooled from the fourth",
        params={"out_channels": 16},
        # 96x160: maps 24x40 .. 3x5, the pooled fifth 2x3 (kernel 1, stride 2: ceil). The upsampling is by a
        # fixed factor, so every map must be exactly twice the next: image sides multiples of 32.
        images=((96, 160), (192, 192)),
        outputs=(
            [(16, 24, 40), (16, 12, 20), (16, 6, 10), (16, 3, 5), (16, 2, 3)],
            [(16, 48, 48), (16, 24, 24), (16, 12, 12), (16, 6, 6), (16, 3, 3)],
        ),
        shape_levels=4,
        paper=(
            {"in_channels": [256, 512, 1024, 2048]},
            11_392_069,
            "the authors' module (gyyang23/AFPN 0930b56, mmdetection/mmdet/models/necks/afpn.py: AFPN(in_channels=[256, 512, 1024, 2048], "
            "out_channels=256), the paper's ResNet-50 configuration) counted in the peers environment "
            "(tests/interop/data/record_afpn.py --paper): the neck alone, as the official code builds it",
        ),
    ),
}
