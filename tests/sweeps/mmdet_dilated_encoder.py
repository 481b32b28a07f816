"""mmdetection 3.3's ``DilatedEncoder`` (YOLOF): every constructor argument.

The reference reads ``feature[-1]`` alone, so a case gives it one map, at stride 8, 16, 32 (the
base, a ResNet's C5) or 64. Every conv keeps the size (padding = dilation), so any image runs:
one where the map is an exact division of the image and one where it is not. The constructor has
no defaults and asserts nothing; it refuses (``IndexError``) fewer ``block_dilations`` than
``num_residual_blocks`` and an unknown argument (``TypeError``), and takes a negative
``num_residual_blocks`` as ``range`` does: no blocks.

Not swept: several maps (the reference ignores all but the last, whose width alone
``in_channels`` gives; ours takes that one map, and refuses more strides with that reason).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

BASE = {"stride": 32, "in_channels": 8, "out_channels": 8, "block_mid_channels": 4, "num_residual_blocks": 4, "block_dilations": [2, 4, 6, 8]}
OPTIONS = {
    "stride": [8, 16, 32, 64],
    "in_channels": [4, 8, 12],
    "out_channels": [4, 8, 6],
    "block_mid_channels": [2, 4, 8],
    "num_residual_blocks": [0, 1, 2, 3, 4, -1],
    "block_dilations": [[2, 4, 6, 8], [1, 1, 1, 1], [8, 6, 4, 2], [2, 4, 6, 8, 10, 12], [3, 5, 7, 9]],
}
COMBINED = {k: OPTIONS[k] for k in ("stride", "in_channels", "out_channels", "block_mid_channels", "num_residual_blocks", "block_dilations")}
COMBINED["num_residual_blocks"] = [0, 1, 2, 4]

REFUSED = [  # what the reference's constructor rejects, and the words ours must use
    ({"num_residual_blocks": 5}, "block_dilations lists 4 dilations for 5 residual blocks"),
    ({"block_dilations": [2, 4]}, "block_dilations lists 2 dilations for 4 residual blocks"),
    ({"norm_cfg": {"type": "GN", "num_groups": 2}}, "norm_cfg"),
]


def _config(v: dict) -> dict:
    neck = {"type": "DilatedEncoder", **{k: x for k, x in v.items() if k != "stride"}}
    return {"strides": [v["stride"]], "necks": [neck]}


def _images(v: dict) -> list:
    s = v["stride"]
    return [[2 * s, 2 * s], [2 * s - s // 2 - 1, 3 * s - 5]]


def _cases() -> list[dict]:
    cases = [{"id": case_id("de", {k: x for k, x in v.items() if BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)} for v in one_at_a_time(BASE, OPTIONS)]
    cases += [{"id": f"de-mix{k:02d}", "config": _config({**BASE, **v}), "images": _images(v)} for k, v in enumerate(spread(COMBINED, 24, "mmdet_dilated_encoder"))]
    for change, reason in REFUSED:
        v = {**BASE, **change}
        cases.append({"id": case_id("de-refused", change), "config": _config(v), "images": _images(v), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
