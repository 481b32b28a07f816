"""mmdetection 3.3's ``SSH`` (the SSH face detector's detection modules): every constructor argument.

SSH has one module per level and no level reads another, so any sizes run: both images (a
multiple of 64, and one whose maps do not halve exactly) run at strides 4..32 and 8..64, with
3 to 5 inputs. ``out_channels`` must be multiples of 4 (a half and two quarters are
concatenated) and the three lengths must agree: those the reference asserts are the refused cases.
A norm_cfg mmcv builds but cannot run on a map (LN) is left out: the reference fails on every
size, which is no size rule. GN takes one group in the spread (two groups need more than one
value per group: ``ssh-gn2-mixed`` has them).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

IN = {3: [6, 8, 10], 4: [6, 8, 10, 12], 5: [4, 6, 8, 10, 12]}
OUT = {"same": {3: [8, 8, 8], 4: [8, 8, 8, 8], 5: [8, 8, 8, 8, 8]}, "mixed": {3: [8, 16, 24], 4: [8, 16, 24, 8], 5: [8, 16, 24, 8, 8]}}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
IMAGES = {4: [[16, 16], [12, 20]], 8: [[32, 32], [22, 36]]}

BASE = {"inputs": 4, "first_stride": 4, "widths": "same"}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "widths": ["same", "mixed"],
    "norm_cfg": [None, {"type": "BN"}, {"type": "BN", "eps": 1e-3, "momentum": 0.03}, {"type": "SyncBN"}, {"type": "GN", "num_groups": 1}],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "init_cfg": [None],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "widths", "norm_cfg")}

REFUSED = [  # what mmdetection asserts, and the words ours must use
    ({"num_scales": 3}, "must agree"),
    ({"in_channels": [6, 8, 10]}, "must agree"),
    ({"out_channels": [8, 8, 8, 6]}, "multiples of 4"),
    ({"upsample_cfg": {"mode": "nearest"}}, "upsample_cfg"),
]


def _config(v: dict) -> dict:
    n = v["inputs"]
    widths = {1: [8]} if n == 1 else None
    neck = {"type": "SSH", "num_scales": n, "in_channels": [6] if n == 1 else [6, 8] if n == 2 else IN[n],
            "out_channels": widths[1] if widths else [8, 12] if n == 2 else OUT[v["widths"]][n]}
    for key in ("conv_cfg", "norm_cfg", "init_cfg"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [neck]}


def _cases() -> list[dict]:
    cases = [{"id": case_id("ssh", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": IMAGES[v["first_stride"]]} for v in one_at_a_time(BASE, OPTIONS)]
    cases += [{"id": f"ssh-mix{k:02d}", "config": _config({**BASE, **v}), "images": IMAGES[v["first_stride"]]} for k, v in enumerate(spread(COMBINED, 24, "mmdet_ssh"))]
    # GN with two groups: each group needs more than one value (quarters of 8, 16 and 24 channels, maps of 2 px or more)
    gn2 = _config({**BASE, "inputs": 3, "widths": "mixed", "norm_cfg": {"type": "GN", "num_groups": 2}})
    cases.append({"id": "ssh-gn2-mixed", "config": gn2, "images": IMAGES[8]})
    for change, reason in REFUSED:
        config = _config(BASE)
        config["necks"][0].update(change)
        cases.append({"id": case_id("ssh-refused", change), "config": config, "images": IMAGES[4], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
