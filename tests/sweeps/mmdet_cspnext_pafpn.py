"""mmdetection 3.3's ``CSPNeXtPAFPN`` (RTMDet): every constructor argument, at strides 4.. and 8.., one to five inputs.

The wiring is YOLOXPAFPN's (``mmdet_yolox_pafpn.py`` says why the images are what they are),
with CSPNeXt blocks, ``expand_ratio`` and 3x3 output units. Widths are multiples of 8 so that
GroupNorm with 2 groups divides every unit down to ``expand_ratio`` 0.25. The neck passes no
``channel_attention`` to its CSP layers and takes none: mmdetection refuses it, and so must ours.
"""

from __future__ import annotations

from .grid import standard_cases
from .mmdet_yolox_pafpn import images

SOURCE = "mmdet"

WIDTHS = {1: [8], 2: [8, 16], 3: [8, 16, 16], 4: [8, 8, 16, 16], 5: [8, 8, 8, 16, 16]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"inputs": 2, "first_stride": 8, "num_csp_blocks": 1}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "num_csp_blocks": [0, 1, 2, 3],
    "use_depthwise": [False, True],
    "expand_ratio": [0.25, 0.5, 0.75, 1.0],
    "upsample_cfg": [
        {"scale_factor": 2, "mode": "nearest"},
        {"scale_factor": 2, "mode": "bilinear"},
        {"scale_factor": 2, "mode": "bilinear", "align_corners": True},
        {"scale_factor": 2, "mode": "bicubic", "align_corners": False},
        {"scale_factor": 2, "mode": "nearest-exact"},
    ],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "norm_cfg": [
        {"type": "BN", "momentum": 0.03, "eps": 0.001},
        {"type": "SyncBN"},
        {"type": "GN", "num_groups": 2},
        None,
    ],
    "act_cfg": [
        {"type": "Swish"},
        {"type": "SiLU"},
        {"type": "ReLU"},
        {"type": "LeakyReLU", "negative_slope": 0.1},
        {"type": "GELU"},
        {"type": "HSwish"},
        None,
    ],
}
COMBINED = {**{k: OPTIONS[k] for k in ("first_stride", "use_depthwise", "expand_ratio", "upsample_cfg", "norm_cfg", "act_cfg")}, "inputs": [3, 4, 5], "num_csp_blocks": [0, 1, 2]}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"channel_attention": True}, "channel_attention"),
    ({"act_cfg": {"type": "Mish"}}, "act_cfg type 'Mish'"),
    ({"norm_cfg": {"type": "GN"}}, "num_groups"),
    ({"norm_cfg": {"type": "FancyNorm"}}, "norm_cfg type 'FancyNorm'"),
    ({"conv_cfg": {"type": "FancyConv"}}, "conv_cfg"),
]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "CSPNeXtPAFPN", "in_channels": WIDTHS[n], "out_channels": 4, "num_csp_blocks": v["num_csp_blocks"]}
    for key in ("use_depthwise", "expand_ratio", "upsample_cfg", "conv_cfg", "norm_cfg", "act_cfg", "channel_attention"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[first][:n], "necks": [neck]}


CASES = standard_cases("cspnext", BASE, OPTIONS, COMBINED, 7, "mmdet_cspnext_pafpn", REFUSED, _config, images, 8)
