"""mmdetection 3.3's ``PAFPN``: every constructor argument, at strides 4..32 and 8..64.

PAFPN is FPN (its lateral and output convs, its extra levels) plus a bottom-up path of 3x3/2
convs; it takes FPN's arguments but ``upsample_cfg`` (it always upsamples nearest, by size).
Images: a multiple of the coarsest stride (every map exactly half the next) and one that is not
(28x44 at strides 4..32, 56x88 at 8..64). By-size upsampling and padded stride-2 convs (``ceil(h / 2)``)
line up with ceil-halved maps, so the reference runs both and ours must too.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [6, 8, 10], 4: [6, 8, 10, 12], 5: [4, 6, 8, 10, 12]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
IMAGES = {4: [[32, 32], [28, 44]], 8: [[64, 64], [56, 88]]}


def _images(v: dict) -> list:
    """The exact image (the coarsest input 1 pixel) and the inexact one; five inputs need them twice as large."""
    scale = 2 if v["inputs"] == 5 else 1
    return [[h * scale, w * scale] for h, w in IMAGES[v["first_stride"]]]

BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "start_level": 0, "end_level": -1, "add_extra_convs": False}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [4, 5, 6, 7],
    "start_level": [0, 1, 2],
    "end_level": [-1, 1, 2, 3],
    "add_extra_convs": [False, True, "on_input", "on_lateral", "on_output"],
    "relu_before_extra_convs": [False, True],
    "no_norm_on_lateral": [False, True],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "norm_cfg": [None, {"type": "BN"}, {"type": "SyncBN"}, {"type": "BN", "eps": 1e-3, "momentum": 0.03}, {"type": "GN", "num_groups": 1}, {"type": "GN", "num_groups": 2, "eps": 1e-4}],
    "act_cfg": [None, {"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.1}, {"type": "SiLU"}, {"type": "ReLU6"}, {"type": "GELU"}],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "num_outs", "start_level", "add_extra_convs", "relu_before_extra_convs", "no_norm_on_lateral", "norm_cfg", "act_cfg")}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"inputs": 4, "num_outs": 3}, "num_outs 3 is less than the 4 inputs used"),
    ({"inputs": 4, "start_level": 1, "num_outs": 2}, "num_outs 2 is less than the 3 inputs used"),
    ({"inputs": 4, "end_level": 2, "num_outs": 5}, "num_outs must be 3"),
    ({"inputs": 4, "end_level": 4, "num_outs": 5}, "end_level 4 must be -1 or an input index"),
    ({"inputs": 4, "add_extra_convs": "on_middle"}, "add_extra_convs"),
    ({"inputs": 4, "add_extra_convs": 1}, "add_extra_convs"),
    ({"inputs": 4, "upsample_cfg": {"mode": "nearest"}}, "upsample_cfg"),
]


def _config(v: dict, adjust: bool = True) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "PAFPN", "in_channels": WIDTHS[n], "out_channels": 4}
    for key in ("num_outs", "start_level", "end_level", "add_extra_convs", "relu_before_extra_convs", "no_norm_on_lateral", "conv_cfg", "norm_cfg", "act_cfg", "upsample_cfg"):
        if key in v:
            neck[key] = v[key]
    if adjust and neck.get("end_level", -1) not in (-1, n - 1):
        neck["num_outs"] = neck["end_level"] - neck.get("start_level", 0) + 1  # what mmdet requires with an end_level
    if adjust and neck.get("start_level", 0) > 0 and neck.get("end_level", -1) == -1:
        neck["num_outs"] = max(neck["num_outs"], n - neck["start_level"])
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _valid(v: dict) -> bool:
    """What mmdetection asserts (the refusals are the REFUSED cases)."""
    return v["num_outs"] >= v["inputs"] - v.get("start_level", 0) and v.get("start_level", 0) < v["inputs"]


def _cases() -> list[dict]:
    cases = [
        {"id": case_id("pafpn", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)}
        for v in one_at_a_time(BASE, OPTIONS)
    ]
    # five inputs with the extra options, and an end_level with a start_level
    pairs = (
        {"inputs": 5, "num_outs": 7, "add_extra_convs": "on_output", "relu_before_extra_convs": True},
        {"inputs": 5, "start_level": 1, "end_level": 3},
        {"inputs": 3, "first_stride": 8, "num_outs": 6, "add_extra_convs": "on_lateral"},
    )
    for v in pairs:
        cases.append({"id": case_id("pafpn", v), "config": _config({**BASE, **v}), "images": _images({**BASE, **v})})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 25, "mmdet_pafpn")]
    cases += [{"id": f"pafpn-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(m for m in mixes if _valid(m))]
    for v, reason in REFUSED:
        cases.append({"id": case_id("pafpn-refused", v), "config": _config({**BASE, **v}, adjust=False), "images": IMAGES[4], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
