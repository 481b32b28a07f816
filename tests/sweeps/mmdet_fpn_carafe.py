"""mmdetection 3.3's ``FPN_CARAFE``: every constructor argument and upsampler, at strides 4..32 and 8..64.

The reference is built by ``tests/interop/data/record_fpn_carafe.py``: mmdetection's and mmcv's
own code, with only mmcv's CUDA reassembly kernel (no CPU version; mmcv-lite ships no compiled
ops) replaced by a transcription of its naive kernel, and ``upsample_cfg`` as the ``ConfigDict``
a config file gives. FPN_CARAFE upsamples by 2 and cuts each upsampled map to the finer map's
size (``slice_as``), so both images (every map halving exactly, and not) run, and ours must too.
Refused: what the constructor or mmcv's asserts refuse (an even ``up_kernel``, an ``up_group``
not dividing the width, an unknown type or order, ``init_cfg``, too few ``num_outs``). Left out:
upsamplers the reference builds but cannot run on any input (``deconv`` kernels 1 and >= 5, an
even ``pixel_shuffle`` kernel; an even carafe ``up_kernel`` or an ``up_group`` not dividing the
width, which mmcv's carafe function asserts in its forward, and which the recording's kernel
does not check), since a case cannot say "built, but runs nothing".
"""

from __future__ import annotations

import functools
import os
import sys

from .grid import case_id, one_at_a_time, spread
from .mmdet_fpn_dropblock import fit_num_outs
from .mmdet_pafpn import IMAGES, STRIDES, WIDTHS

SOURCE = "mmdet"

UPSAMPLERS = {
    "carafe": {"type": "carafe", "up_kernel": 5, "up_group": 1, "encoder_kernel": 3, "encoder_dilation": 1},
    "carafe_small": {"type": "carafe", "up_kernel": 3, "up_group": 2, "encoder_kernel": 1, "encoder_dilation": 1, "compressed_channels": 4},
    "carafe_dilated": {"type": "carafe", "up_kernel": 1, "up_group": 4, "encoder_kernel": 3, "encoder_dilation": 2, "compressed_channels": 8},
    "carafe_defaults": {"type": "carafe"},
    "deconv2": {"type": "deconv", "upsample_kernel": 2},
    "deconv3": {"type": "deconv", "upsample_kernel": 3},
    "deconv4": {"type": "deconv", "upsample_kernel": 4},
    "pixel_shuffle1": {"type": "pixel_shuffle", "upsample_kernel": 1},
    "pixel_shuffle3": {"type": "pixel_shuffle", "upsample_kernel": 3},
    "nearest": {"type": "nearest"},
    "bilinear": {"type": "bilinear"},
}
BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "upsample": "carafe_small"}
OPTIONS = {
    "upsample": list(UPSAMPLERS),
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [4, 6],
    "start_level": [1],
    "end_level": [2],
    "norm_cfg": [{"type": "BN"}, {"type": "GN", "num_groups": 2}],
    "act_cfg": [{"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.1}],
    "order": [["act", "conv", "norm"]],
}
COMBINED = {k: OPTIONS[k] for k in ("upsample", "inputs", "first_stride", "num_outs", "norm_cfg", "order")}
COMBINED["norm_cfg"] = [None] + COMBINED["norm_cfg"]
COMBINED["order"] = [["conv", "norm", "act"], ["act", "conv", "norm"]]

REFUSED = [  # configurations the reference rejects, and the words ours must use
    ({"upsample_cfg": {"type": "bicubic"}}, "upsample_cfg type 'bicubic'"),
    ({"upsample_cfg": {"type": "deconv"}}, "needs upsample_kernel"),
    ({"order": ["norm", "conv", "act"]}, "order"),
    ({"init_cfg": {"type": "Xavier", "layer": "Conv2d"}}, "init_cfg must be None"),
    ({"num_outs": 3}, "num_outs 3 is less than the 4 inputs used"),
    ({"end_level": 2}, "num_outs must be 3"),
]


@functools.cache
def _installed() -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop", "data"))
    import record_fpn_carafe

    record_fpn_carafe.install()


def build(config: dict, hw, batch: int):
    """The peers' mmdet builder, with FPN_CARAFE registered and mmcv's carafe kernel replaced (see the module doc)."""
    _installed()
    import make_fixtures

    return make_fixtures.mmdet(config, hw, batch)


def _images(v: dict) -> list:
    """The exact image (the coarsest input 1 pixel; twice as large for five inputs) and the inexact one."""
    exact, inexact = IMAGES[v["first_stride"]]
    scale = 2 if v["inputs"] == 5 else 1
    return [[exact[0] * scale, exact[1] * scale], inexact]


def _config(v: dict, adjust: bool = True) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "FPN_CARAFE", "in_channels": WIDTHS[n], "out_channels": 4, "upsample_cfg": dict(UPSAMPLERS[v["upsample"]])}
    for key in ("num_outs", "start_level", "end_level", "norm_cfg", "act_cfg", "order", "upsample_cfg", "init_cfg"):
        if key in v:
            neck[key] = v[key]
    if adjust:
        fit_num_outs(neck, n)
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _cases() -> list[dict]:
    cases = [
        {"id": case_id("carafe", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)}
        for v in one_at_a_time(BASE, OPTIONS)
    ]
    mixes = [{**BASE, **c} for c in spread(COMBINED, 28, "mmdet_fpn_carafe")]
    cases += [{"id": f"carafe-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    for k, (v, reason) in enumerate(REFUSED):
        cases.append({"id": f"carafe-refused{k}", "config": _config({**BASE, **v}, adjust=False), "images": IMAGES[4], "reason": reason, "note": str(v)})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
