"""mmdetection 3.3's ``RFP`` (DetectoRS' Recursive Feature Pyramid) with its ``DetectoRS_ResNet``.

Source ``mmdet.rfp``: the neck takes the image, then C2..C5 (strides fixed at 1, 4, 8, 16, 32),
and runs ``rfp_steps - 1`` ResNets on the image, so the cases are few and tiny: ResNet-50 at
base width 4 (stage widths 16, 32, 64, 128), FPN width 8, ASPP branches of 2-4 channels, images
of 32 px (every map halving exactly) and 44x36 (the ResNet's stride-2 convs give
``ceil(size / 2)``, as the inputs' ``ceil(image / stride)``: it runs too, except with
``scale_factor`` upsampling, where the reference fails and ours must refuse the sizes).
Each ResNet stores some 350 state entries, so the spread is small (the data budget): no depth
101 or 152 here (only more blocks; tests/interop/test_rfp.py converts them). ``in_channels``
other than the ResNet's stage widths: the reference builds it and fails on every size, ours
refuses it (tests/interop/test_rfp.py).

Not swept, because ours refuses what the reference runs (see the converter): ``rfp_steps`` 1
(the FPN alone; its ASPP and gate are built and unused), and the ResNet variants the spec does
not build (SAC, ConvAWS, DCN, plugins, caffe style, deep stem, average-pool shortcut).
"""

from __future__ import annotations

import copy

from .grid import case_id, one_at_a_time

SOURCE = "mmdet.rfp"

IMAGES = [[32, 32], [44, 36]]
BACKBONE = {"type": "DetectoRS_ResNet", "depth": 50, "base_channels": 4, "num_stages": 4, "out_indices": [0, 1, 2, 3], "norm_cfg": {"type": "BN", "requires_grad": True},
            "norm_eval": True, "sac": None, "conv_cfg": None, "pretrained": None, "style": "pytorch"}
BASE = {"rfp_steps": 2, "aspp_out_channels": 2, "aspp_dilations": [1, 3, 6, 1], "num_outs": 5}
# Each ResNet stores some 350 state entries (about 28 KB of the recording): every value of every
# option is in one case, the one-at-a-time ones or the mixes, not in both.
OPTIONS = {
    "aspp_dilations": [[1, 3, 6, 1], [1, 2, 1], [1, 1]],
    "num_outs": [5, 6],
    "add_extra_convs": ["on_output"],
    "norm_cfg": [{"type": "BN"}],
    "upsample_cfg": [{"mode": "nearest", "scale_factor": 2}],
    "backbone": [{"norm_cfg": {"type": "BN", "eps": 1e-3, "momentum": 0.03}, "frozen_stages": 1, "zero_init_residual": False}],
}
MIXES = [
    {"rfp_steps": 3, "aspp_out_channels": 4, "aspp_dilations": [1, 2, 1], "num_outs": 6, "add_extra_convs": "on_output", "norm_cfg": {"type": "GN", "num_groups": 2}},
    {"aspp_dilations": [1, 1], "num_outs": 4, "upsample_cfg": {"mode": "bilinear", "align_corners": False}, "backbone": {"stem_channels": 6}},
    {"num_outs": 6, "add_extra_convs": "on_input", "relu_before_extra_convs": True, "aspp_out_channels": 4},
]
REFUSED = [  # what mmdetection rejects, and the words ours must use
    ({"aspp_dilations": [1, 3, 6, 2]}, "its dilation must be 1"),
    ({"num_outs": 3}, "num_outs 3 is less than the 4 inputs used"),
    ({"sac": True}, "unknown arguments ['sac']"),
    ({"backbone": {"depth": 18}}, "rfp_backbone.depth 18 is not supported"),
]


def _config(v: dict) -> dict:
    backbone = {**copy.deepcopy(BACKBONE), **v.get("backbone", {})}
    backbone["rfp_inplanes"] = len(v["aspp_dilations"]) * v["aspp_out_channels"]
    neck = {"type": "RFP", "in_channels": [16, 32, 64, 128], "out_channels": 8, "rfp_backbone": backbone, **{k: x for k, x in v.items() if k != "backbone"}}
    return {"strides": [1, 4, 8, 16, 32], "image_channels": 3, "necks": [neck]}


def _cases() -> list[dict]:
    cases = [{"id": case_id("rfp", {k: x for k, x in v.items() if BASE.get(k, "-") != x} or {"base": 1}), "config": _config(v), "images": IMAGES} for v in one_at_a_time(BASE, OPTIONS)]
    cases += [{"id": f"rfp-mix{k}", "config": _config({**BASE, **v}), "images": IMAGES} for k, v in enumerate(MIXES)]
    cases += [{"id": case_id("rfp-refused", v), "config": _config({**BASE, **v}), "images": IMAGES, "reason": reason} for v, reason in REFUSED]
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
