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
}
