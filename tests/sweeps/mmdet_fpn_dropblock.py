"""mmdetection 3.3's ``FPN_DropBlock``: FPN's arguments and the ``plugin``, at strides 4..32 and 8..64.

FPN_DropBlock is FPN with a ``DropBlock`` (``plugin``; None: none) on each top-down sum. In
eval mode, where the sweep runs, DropBlock is the identity, so what is checked is that every
FPN argument still converts, every plugin the reference builds is accepted (DropBlock takes
and ignores extra keyword arguments, so those are accepted too), and every plugin its asserts
refuse (an even ``block_size``, ``drop_prob`` outside (0, 1], a negative ``warmup_iters``, an
unregistered type) is refused. DropBlock in training is ``tests/interop/test_mmdet_necks_b.py``'s.
Images: one where every map halves exactly and one where it does not; FPN's ``scale_factor``
upsampling fails on the second, and ours must refuse those sizes.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread
from .mmdet_pafpn import IMAGES, STRIDES, WIDTHS, _images

SOURCE = "mmdet"


def fit_num_outs(neck: dict, n: int) -> None:
    """Set ``num_outs`` to what mmdet requires of ``n`` inputs: exactly the levels used with an
    ``end_level``, else at least the inputs from ``start_level`` on."""
    if neck.get("end_level", -1) not in (-1, n - 1):
        neck["num_outs"] = neck["end_level"] - neck.get("start_level", 0) + 1
    elif neck["num_outs"] < n - neck.get("start_level", 0):
        neck["num_outs"] = n - neck.get("start_level", 0)


PLUGINS = {
    "default": "default",  # the constructor's default (drop_prob 0.3, block_size 3, warmup_iters 0)
    "none": None,
    "p01b1": {"type": "DropBlock", "drop_prob": 0.1, "block_size": 1},
    "p1b5w10": {"type": "DropBlock", "drop_prob": 1.0, "block_size": 5, "warmup_iters": 10},
    "p05b7w0": {"type": "DropBlock", "drop_prob": 0.5, "block_size": 7, "warmup_iters": 0},
    "int1b3": {"type": "DropBlock", "drop_prob": 1, "block_size": 3, "warmup_iters": 2000},
    "extrakey": {"type": "DropBlock", "drop_prob": 0.3, "block_size": 3, "warmup_iters": 0, "scale": 2},
}
BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "plugin": "default"}
OPTIONS = {
    "plugin": list(PLUGINS),
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [4, 6],
    "start_level": [1],
    "end_level": [2],
    "add_extra_convs": [True, "on_input", "on_lateral", "on_output"],
    "relu_before_extra_convs": [True],
    "no_norm_on_lateral": [True],
    "norm_cfg": [{"type": "BN"}, {"type": "GN", "num_groups": 2}],
    "act_cfg": [{"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.2}],
    "upsample_cfg": [{"mode": "nearest", "scale_factor": 2}, {"mode": "bilinear", "align_corners": True}, {"mode": "bicubic"}],
}
COMBINED = {k: OPTIONS[k] for k in ("plugin", "inputs", "first_stride", "num_outs", "add_extra_convs", "norm_cfg", "upsample_cfg")}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"plugin": {"type": "DropBlock", "drop_prob": 0.3, "block_size": 4}}, "block_size must be an odd positive integer"),
    ({"plugin": {"type": "DropBlock", "drop_prob": 0.0, "block_size": 3}}, "drop_prob must be in (0, 1]"),
    ({"plugin": {"type": "DropBlock", "drop_prob": 1.5, "block_size": 3}}, "drop_prob must be in (0, 1]"),
    ({"plugin": {"type": "DropBlock", "drop_prob": 0.3, "block_size": 3, "warmup_iters": -1}}, "warmup_iters must be an integer >= 0"),
    ({"plugin": {"type": "DropBlock", "block_size": 3}}, "plugin DropBlock needs drop_prob"),
    ({"plugin": {"type": "DropBlox", "drop_prob": 0.3, "block_size": 3}}, "is not supported"),
    ({"num_outs": 3}, "num_outs 3 is less than the 4 inputs used"),
    ({"end_level": 2}, "num_outs must be 3"),
    ({"add_extra_convs": "on_middle"}, "add_extra_convs"),
]


def _config(v: dict, adjust: bool = True) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "FPN_DropBlock", "in_channels": WIDTHS[n], "out_channels": 4}
    for key in ("num_outs", "start_level", "end_level", "add_extra_convs", "relu_before_extra_convs", "no_norm_on_lateral", "norm_cfg", "act_cfg", "upsample_cfg"):
        if key in v:
            neck[key] = v[key]
    plugin = PLUGINS.get(v["plugin"], v["plugin"]) if isinstance(v["plugin"], str) else v["plugin"]
    if plugin != "default":
        neck["plugin"] = plugin
    if adjust:
        fit_num_outs(neck, n)
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _cases() -> list[dict]:
    cases = [
        {"id": case_id("fpndb", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)}
        for v in one_at_a_time(BASE, OPTIONS)
    ]
    mixes = [{**BASE, **c} for c in spread(COMBINED, 30, "mmdet_fpn_dropblock")]
    cases += [{"id": f"fpndb-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    for k, (v, reason) in enumerate(REFUSED):
        cases.append({"id": f"fpndb-refused{k}", "config": _config({**BASE, **v}, adjust=False), "images": IMAGES[4], "reason": reason, "note": str(v)})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
