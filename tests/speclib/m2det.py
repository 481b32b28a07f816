"""The case of M2Det's MLFPN (specs/m2det.yaml)."""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "m2det": LibraryCase(
        in_channels={2: [16, 24]},
        fixed_levels="M2Det's FFMv1 fuses exactly two backbone maps (shallow, and deep at exactly half its size); its six output scales come from the TUMs, not from more inputs",
        params={"planes": 16, "levels": 3, "shallow_out": 16, "deep_out": 32},
        # 300x400: maps 38x50 and 19x25, encoder 19x25, 10x13, 5x7, 3x4, the unpadded conv 1x2. The TUMs
        # need the map at the deepest stride-2 conv to be at least 3 wide: with 6 scales, images above 256.
        images=((300, 400), (320, 320)),
        outputs=(
            [(48, 38, 50), (48, 19, 25), (48, 10, 13), (48, 5, 7), (48, 3, 4), (48, 1, 2)],
            [(48, 40, 40), (48, 20, 20), (48, 10, 10), (48, 5, 5), (48, 3, 3), (48, 1, 1)],
        ),
        shape_levels=2,
        squares=(288, 304),  # the TUMs six scales deep need images over 256
        paper=(
            {"in_channels": [512, 1024]},
            56_266_624,
            "the authors' modules (VDIGPKU/M2Det de4a624: layers/nn_utils.py TUM, SFAM and BasicConv, wired as M2Det.forward) built at "
            "planes 256, 8 levels, 6 scales, smooth and SFAM on VGG-16's 512/1024 widths and counted in a scratch script, shared modules once; "
            "the paper's tables give whole-detector figures only",
        ),
    ),
}
