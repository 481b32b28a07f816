"""mmdetection 3.3's ``YOLOXPAFPN``: every constructor argument, at strides 4.. and 8.., one to five inputs.

Images: the coarsest stride (every map exactly half the next, the coarsest 1x1) and that one
and three finest strides larger (the finest map's sides odd): YOLOX upsamples by ``nn.Upsample(scale_factor=2)``,
so where a map is not exactly twice the next the reference's concatenation fails, and ours must
refuse those sizes. Widths are multiples of 4 so that GroupNorm with 2 groups divides every
unit (the CSP blocks' hidden widths are half the block's).
"""

from __future__ import annotations

from .grid import standard_cases

SOURCE = "mmdet"

WIDTHS = {1: [8], 2: [4, 8], 3: [4, 8, 12], 4: [4, 8, 8, 12], 5: [4, 4, 8, 8, 12]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"inputs": 2, "first_stride": 8, "num_csp_blocks": 0}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "num_csp_blocks": [0, 1, 2, 3],
    "use_depthwise": [False, True],
    "upsample_cfg": [
        {"scale_factor": 2, "mode": "nearest"},
        {"scale_factor": 2, "mode": "bilinear"},
        {"scale_factor": 2, "mode": "bilinear", "align_corners": True},
        {"scale_factor": 2, "mode": "bilinear", "align_corners": False},
        {"scale_factor": 2, "mode": "bicubic"},
        {"scale_factor": 2.0, "mode": "bicubic", "align_corners": True},
        {"scale_factor": 2, "mode": "nearest-exact"},
        {"scale_factor": 2, "mode": "area"},
    ],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "norm_cfg": [
        {"type": "BN", "momentum": 0.03, "eps": 0.001},
        {"type": "BN", "eps": 0.01, "requires_grad": True},
        {"type": "SyncBN", "momentum": 0.03, "eps": 0.001},
        {"type": "GN", "num_groups": 2},
        None,
    ],
    "act_cfg": [
        {"type": "Swish"},
        {"type": "SiLU"},
        {"type": "ReLU"},
        {"type": "ReLU6"},
        {"type": "LeakyReLU"},
        {"type": "LeakyReLU", "negative_slope": 0.1},
        {"type": "GELU"},
        {"type": "Sigmoid"},
        {"type": "Tanh"},
        {"type": "HSwish"},
        None,
    ],
}
COMBINED = {**{k: OPTIONS[k] for k in ("first_stride", "use_depthwise", "upsample_cfg", "norm_cfg", "act_cfg")}, "inputs": [3, 4, 5], "num_csp_blocks": [0, 1, 2]}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"act_cfg": {"type": "Mish"}}, "act_cfg type 'Mish'"),
    ({"norm_cfg": {"type": "GN"}}, "num_groups"),
    ({"norm_cfg": {"type": "FancyNorm"}}, "norm_cfg type 'FancyNorm'"),
    ({"conv_cfg": {"type": "FancyConv"}}, "conv_cfg"),
    ({"expand_ratio": 0.5}, "expand_ratio"),
]


def images(inputs: int, first: int) -> list[list[int]]:
    """``[exact, odd]``: the coarsest stride square, then one and three finest strides more (the
    finest map's sides odd, so not twice the next map's; with one input both run)."""
    side = first * 2 ** (inputs - 1)
    return [[side, side], [side + first, side + 3 * first]]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "YOLOXPAFPN", "in_channels": WIDTHS[n], "out_channels": 4, "num_csp_blocks": v.get("num_csp_blocks", 1)}
    for key in ("use_depthwise", "upsample_cfg", "conv_cfg", "norm_cfg", "act_cfg", "expand_ratio"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[first][:n], "necks": [neck]}


CASES = standard_cases("yolox", BASE, OPTIONS, COMBINED, 10, "mmdet_yolox_pafpn", REFUSED, _config, images, 8)
