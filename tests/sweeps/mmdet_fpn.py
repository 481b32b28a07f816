"""mmdetection 3.3's ``FPN``: every constructor argument, at strides 4..32 and 8..64.

Images: a multiple of 64 (every map exactly half the next) and one that is not (44x72 at
strides 4..32, 88x144 at 8..64: the maps no longer halve exactly the maps no longer halve exactly, which FPN's ``size`` upsampling
absorbs and ``scale_factor`` upsampling does not: there the reference fails, and so must ours).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [6, 8, 10], 4: [6, 8, 10, 12], 5: [4, 6, 8, 10, 12]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
IMAGES = {4: [[64, 64], [44, 72]], 8: [[128, 128], [88, 144]]}

BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "start_level": 0, "end_level": -1, "add_extra_convs": False}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [4, 5, 6],
    "start_level": [0, 1],
    "end_level": [-1, 2],
    "add_extra_convs": [False, True, "on_input", "on_lateral", "on_output"],
    "relu_before_extra_convs": [False, True],
    "no_norm_on_lateral": [False, True],
    "norm_cfg": [None, {"type": "BN"}, {"type": "GN", "num_groups": 4}],
    "act_cfg": [None, {"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.1}, {"type": "SiLU"}, {"type": "ELU"}, {"type": "HSigmoid"}, {"type": "GELU", "approximate": "tanh"}],
    "upsample_cfg": [{"mode": "nearest"}, {"mode": "nearest", "scale_factor": 2}, {"mode": "bilinear", "align_corners": False}],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "num_outs", "start_level", "add_extra_convs", "relu_before_extra_convs", "norm_cfg", "upsample_cfg")}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"inputs": 4, "num_outs": 3}, "num_outs 3 is less than the 4 inputs used"),
    ({"inputs": 4, "end_level": 2, "num_outs": 5}, "num_outs must be 3"),
    ({"inputs": 4, "end_level": 4, "num_outs": 5}, "end_level 4 must be -1 or an input index"),
    ({"inputs": 4, "add_extra_convs": "on_middle"}, "add_extra_convs"),
    ({"inputs": 4, "act_cfg": {"type": "SELU"}}, "act_cfg type 'SELU' is not supported"),  # mmcv registers no SELU
]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "FPN", "in_channels": WIDTHS[n], "out_channels": 4}
    for key in ("num_outs", "start_level", "end_level", "add_extra_convs", "relu_before_extra_convs", "no_norm_on_lateral", "norm_cfg", "act_cfg", "upsample_cfg"):
        if key in v:
            neck[key] = v[key]
    if neck.get("end_level", -1) != -1 and "num_outs" in neck and neck["end_level"] < n - 1:
        neck["num_outs"] = neck["end_level"] - neck.get("start_level", 0) + 1  # what mmdet requires with an end_level
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _valid(v: dict) -> bool:
    """What mmdetection asserts (the refusals are the REFUSED cases)."""
    return v["num_outs"] >= v["inputs"] - v.get("start_level", 0) or v.get("end_level", -1) not in (-1, v["inputs"] - 1)


def _cases() -> list[dict]:
    cases = [{"id": case_id("fpn", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": IMAGES[v["first_stride"]]} for v in one_at_a_time(BASE, OPTIONS)]
    mixes = [{**BASE, **c} for c in spread(COMBINED, 48, "mmdet_fpn")]
    cases += [{"id": f"fpn-mix{k:02d}", "config": _config(v), "images": IMAGES[v["first_stride"]]} for k, v in enumerate(m for m in mixes if _valid(m))]
    for v, reason in REFUSED:
        config = _config({**BASE, **v})
        config["necks"][0].update({k: x for k, x in v.items() if k in config["necks"][0] or k in ("num_outs", "end_level", "add_extra_convs")})
        cases.append({"id": case_id("fpn-refused", v), "config": config, "images": IMAGES[4], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
