"""Cases for CSPNet's Exact Fusion Model (issue 10, item 2)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "efm": LibraryCase(
        in_channels={3: [16, 16, 32], 4: [8, 16, 16, 32], 5: [8, 8, 16, 16, 32]},
        images=((100, 76), (128, 128)),
        outputs=([(16, 13, 10), (16, 7, 5), (32, 4, 3)], [(16, 16, 16), (16, 8, 8), (32, 4, 4)]),
        shape_levels=3,
        paper=(
            {"in_channels": [256, 512, 1024]},
            20_327_936,
            "counted by us (no reference code exists): CSPDarknet-53's widths 256, 512, 1024 at strides 8-32; "
            "3x3/2 convs 256->512 and 512->1024, 1x1 convs 256->256, 512->512, 1024->1024 (own levels), 512->256 and 1024->512 (coarser), "
            "3x3 convs 256, 512, 1024 after the Maxouts, each with its BatchNorm's 2 x width (tests/test_efm.py adds it up)",
        ),
    ),
}
