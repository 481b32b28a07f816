"""torchvision's ``FeaturePyramidNetwork``: widths, extra blocks, three to five inputs, strides 4.. and 8...

The config is ``../shared/peers/make_fixtures.py``'s ``tv_fpn``: ``in_channels_list``,
``out_channels``, ``extra_blocks`` (None, ``"LastLevelMaxPool"``, ``"LastLevelP6P7"`` with
``p6p7_in_channels``: the last input's width, so P6 reads C5, or ``out_channels``, so it reads
P5) and ``strides`` (the inputs are a dict ``c<level>``). torchvision upsamples to the finer
map's size and its extra blocks are 1x1/2 pooling or padded 3x3/2 convs, so both images (every
map halving exactly, and not) run, and ours must too. The reference refuses a zero width.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "torchvision.FeaturePyramidNetwork"

WIDTHS = {3: [6, 8, 10], 4: [6, 8, 10, 12], 5: [4, 6, 8, 10, 12]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
IMAGES = {4: [[32, 32], [28, 44]], 8: [[64, 64], [56, 88]]}

BASE = {"inputs": 4, "first_stride": 4, "extra_blocks": "LastLevelMaxPool", "widths": "rising", "out_channels": 4}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "extra_blocks": [None, "LastLevelMaxPool", "LastLevelP6P7:input", "LastLevelP6P7:output"],
    "widths": ["rising", "equal", "last_is_out"],
    "out_channels": [4, 6],
}


def _images(v: dict) -> list:
    """The exact image (the coarsest input 1 pixel; twice as large for five inputs) and the inexact one."""
    exact, inexact = IMAGES[v["first_stride"]]
    scale = 2 if v["inputs"] == 5 else 1
    return [[exact[0] * scale, exact[1] * scale], inexact]


def _config(v: dict) -> dict:
    n, out = v["inputs"], v["out_channels"]
    widths = {"rising": WIDTHS[n], "equal": [out] * n, "last_is_out": WIDTHS[n][:-1] + [out]}[v["widths"]]
    config = {"in_channels_list": widths, "out_channels": out, "strides": STRIDES[v["first_stride"]][:n], "extra_blocks": v["extra_blocks"]}
    if v["extra_blocks"] and v["extra_blocks"].startswith("LastLevelP6P7"):
        config["extra_blocks"] = "LastLevelP6P7"
        config["p6p7_in_channels"] = widths[-1] if v["extra_blocks"].endswith("input") else out
    return config


def _cases() -> list[dict]:
    cases = [
        {"id": case_id("tvfpn", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)}
        for v in one_at_a_time(BASE, OPTIONS)
    ]
    for v in spread({k: x for k, x in OPTIONS.items() if k != "out_channels"}, 52, "torchvision_fpn"):
        v = {**BASE, **v}
        cid = case_id("tvfpn", {k: x for k, x in v.items() if BASE[k] != x})
        if all(c["id"] != cid for c in cases):
            cases.append({"id": cid, "config": _config(v), "images": _images(v)})
    cases.append({"id": "tvfpn-refused-zero-width", "config": {**_config(BASE), "in_channels_list": [6, 0, 10, 12]}, "images": IMAGES[4], "reason": "in_channels_list widths must be positive"})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
