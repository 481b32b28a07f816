"""mmdetection 3.3's ``YOLOV3Neck``: every constructor argument, at strides 4.. and 8.., one to five scales.

``in_channels`` and ``out_channels`` are listed coarsest first, as mmdetection reads them (the
inputs are fed finest first). Images as ``mmdet_yolox_pafpn.py``'s: the neck upsamples by
``F.interpolate(scale_factor=2)``, so where a map is not exactly twice the next the reference's
concatenation fails, and ours must refuse those sizes. Output widths are even so that GroupNorm
with 2 groups divides every unit.
"""

from __future__ import annotations

from .grid import standard_cases
from .mmdet_yolox_pafpn import images

SOURCE = "mmdet"

IN = {1: [12], 2: [12, 8], 3: [16, 8, 4], 4: [16, 12, 8, 4], 5: [16, 12, 8, 8, 4]}  # coarsest first
OUT = {1: [6], 2: [6, 4], 3: [8, 4, 4], 4: [8, 6, 4, 2], 5: [8, 6, 4, 4, 2]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"inputs": 3, "first_stride": 8}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "norm_cfg": [
        {"type": "BN", "requires_grad": True},
        {"type": "BN", "eps": 0.001, "momentum": 0.03},
        {"type": "SyncBN"},
        {"type": "GN", "num_groups": 2},
        None,
    ],
    "act_cfg": [
        {"type": "LeakyReLU", "negative_slope": 0.1},
        {"type": "LeakyReLU"},
        {"type": "ReLU"},
        {"type": "ReLU6"},
        {"type": "SiLU"},
        {"type": "Swish"},
        {"type": "GELU"},
        {"type": "Sigmoid"},
        {"type": "Tanh"},
        {"type": "HSwish"},
        None,
    ],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "norm_cfg", "act_cfg")}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"num_scales": 2}, "num_scales 2 must equal"),
    ({"out_channels": [8, 4]}, "num_scales 3 must equal"),
    ({"act_cfg": {"type": "Mish"}}, "act_cfg type 'Mish'"),
    ({"norm_cfg": {"type": "GN"}}, "num_groups"),
    ({"norm_cfg": {"type": "FancyNorm"}}, "norm_cfg type 'FancyNorm'"),
    ({"conv_cfg": {"type": "FancyConv"}}, "conv_cfg"),
    ({"upsample_cfg": {"mode": "nearest"}}, "upsample_cfg"),
]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "YOLOV3Neck", "num_scales": v.get("num_scales", n), "in_channels": IN[n], "out_channels": v.get("out_channels", OUT[n])}
    for key in ("conv_cfg", "norm_cfg", "act_cfg", "upsample_cfg"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[first][:n], "necks": [neck]}


CASES = standard_cases("yolov3", BASE, OPTIONS, COMBINED, 24, "mmdet_yolov3_neck", REFUSED, _config, images, 8)
