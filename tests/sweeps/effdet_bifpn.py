"""efficientdet-pytorch 0.4.1's ``BiFpn``: model tables, layouts and every config key it reads.

effdet builds its resampling for one ``image_size`` (``get_feat_sizes``: fixed interpolation
sizes and pool strides), so the image is part of the configuration: each case runs on its own
``image_size`` only, and the second image of the other groups becomes a case of its own
(``image=odd``: maps that no longer halve exactly, 50 at levels 3..6, 28 at 2..5; ``image=rect``).
Inputs are backbone maps at reductions ``2**min_level`` up (8..64 at levels 3..6, 4..32 at 2..5;
``levels`` moves max_level for two to five levels), two to four of them, the rest made by
effdet's extra ``resample`` levels; ``inputs=5`` (more than the levels) is refused. Layouts:
``bifpn_*``, ``pan_*`` and ``qufpn_*`` (the quad FPN's cases are few: 2.5 times the keys, and
the recording must stay under 400 KB). Tiny widths (``fpn_channels`` 4), one cell but where
``cells=2`` (and ``cells=0``: effdet returns the levels as they are).

A configuration the reference cannot run on its own image (``build`` runs it once: ``area``
interpolation, which effdet calls with ``align_corners=False``; reductions that do not match the
levels; ``num_levels`` short of the levels) is a refusal like a constructor's: nothing of it can
ever run. Left out because effdet runs them and ours refuses them (see the converter's
docstring): activations the spec language lacks (elu, selu...), images where one side of a map
stops halving before the other, average pooling of a 1x1 map.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "effdet.BiFpn"

WIDTHS = [6, 4, 8, 10, 12]  # one input as wide as the FPN (4): effdet gives it no projection
LEVELS = {3: (3, 6), 2: (2, 5)}  # min_level -> (min_level, max_level): reductions 8..64 / 4..32
IMAGES = {3: 64, 2: 32}  # every map halves exactly down to 1x1
ODD = {3: 50, 2: 28}

BASE = {"base_config": "efficientdet_d0", "inputs": 3, "min_level": 3, "image": "even", "cells": 1}
OPTIONS = {
    "base_config": ["efficientdet_d0", "tf_efficientdet_d0", "tf_efficientdet_lite0", "efficientdetv2_dt", "cspresdext50", "cspresdext50pan", "cspdarkdet53m"],
    "inputs": [2, 3, 4],
    "min_level": [3, 2],
    "image": ["even", "odd", "rect"],
    "cells": [1, 2, 0],
    "fpn_name": ["bifpn_fa", "bifpn_sum", "bifpn_attn", "pan_fa", "pan_sum", "qufpn_fa", "qufpn_sum"],
    "separable_conv": [True, False],
    "apply_resample_bn": [True, False],
    "conv_bn_relu_pattern": [False, True],
    "downsample_type": ["max", "avg", "nearest", "bilinear", "bicubic"],
    "upsample_type": ["nearest", "bilinear", "bicubic"],
    "redundant_bias": [False, True],
    "pad_type": ["", "same"],
    "act_type": ["swish", "relu", "relu6", "leaky_relu", "hard_swish", "mish", "identity"],
    "levels": ["2", "3", "5"],
}
D0 = {
    "fpn_name": "bifpn_fa", "separable_conv": True, "apply_resample_bn": True, "conv_bn_relu_pattern": False,
    "downsample_type": "max", "upsample_type": "nearest", "redundant_bias": False, "pad_type": "", "act_type": "swish",
}
"""efficientdet_d0's values: set alone, each is the base case again (kept in the combinations)."""
COMBINED = {k: OPTIONS[k] for k in ("base_config", "inputs", "min_level", "image", "conv_bn_relu_pattern", "downsample_type", "pad_type", "separable_conv", "redundant_bias")}
OPTIONS["act_type"] = OPTIONS["act_type"] + ["elu", "selu", "celu", "hard_sigmoid", "gelu_tanh", "quick_gelu", "hard_mish"]  # timm's other parameter-free names: one case each
COMBINED["fpn_name"] = OPTIONS["fpn_name"][:5]  # a quad FPN has 2.5 times the nodes: its own cases below

PAN = [  # effdet's PAN and quad layouts beyond the combinations: repeated cells, conv->bn->act, two and three levels
    {"fpn_name": "pan_fa", "cells": 2, "inputs": 4},
    {"fpn_name": "pan_fa", "conv_bn_relu_pattern": True, "min_level": 2, "image": "odd"},
    {"fpn_name": "pan_fa", "levels": "2", "separable_conv": False},
    {"fpn_name": "qufpn_fa", "levels": "2", "pad_type": "same", "downsample_type": "avg"},
    {"fpn_name": "qufpn_sum", "levels": "3", "min_level": 2, "image": "rect", "conv_bn_relu_pattern": True, "upsample_type": "bilinear"},
]

REFUSED = [  # configurations effdet rejects (or cannot run at all), and the words ours must use
    ({"fpn_name": "bifpn_xx"}, "fpn_name 'bifpn_xx' is not one of effdet's layouts"),
    ({"act_type": "swishy"}, "act_type 'swishy'"),
    ({"inputs": 5}, "5 inputs"),
    ({"num_levels": 3}, "num_levels is 3"),
    ({"downsample_type": "area"}, "downsample_type 'area'"),
    ({"upsample_type": "area"}, "upsample_type 'area'"),
    ({"reductions": [4, 8, 16]}, "the reductions must be [8, 16, 32]"),
]


def _image(v: dict) -> list[int]:
    if v["image"] == "rect":
        return [48, 80] if v["min_level"] == 3 else [24, 40]
    side = (IMAGES if v["image"] == "even" else ODD)[v["min_level"]]
    return [side, side]


def _config(v: dict) -> dict:
    lo, hi = LEVELS[v["min_level"]]
    if "levels" in v:  # a number of levels other than four: max_level moves
        hi = lo + int(v["levels"]) - 1
    n = min(v["inputs"], hi - lo + 1) if v["inputs"] <= 4 else v["inputs"]
    overrides = {"image_size": _image(v), "fpn_channels": 4, "fpn_cell_repeats": v["cells"], "min_level": lo, "max_level": hi, "num_levels": hi - lo + 1}
    for key in ("fpn_name", "separable_conv", "apply_resample_bn", "conv_bn_relu_pattern", "downsample_type", "upsample_type", "redundant_bias", "pad_type", "act_type", "num_levels"):
        if key in v:
            overrides[key] = v[key]
    widths = (WIDTHS * 2)[:n]
    return {"base_config": v["base_config"], "in_channels": widths, "reductions": v.get("reductions", [2 ** (lo + i) for i in range(n)]), "overrides": overrides}


def _short(v: dict) -> dict:
    return {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        if any(D0.get(k, not x) == x for k, x in v.items() if k not in BASE):
            continue
        cases.append({"id": case_id("bifpn", _short(v)), "config": _config(v), "images": [_image(v)]})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 6, "effdet_bifpn")]
    cases += [{"id": f"bifpn-mix{k:02d}", "config": _config(v), "images": [_image(v)]} for k, v in enumerate(mixes)]
    for v in PAN:
        v = {**BASE, **v}
        cases.append({"id": case_id("bifpn", _short(v)), "config": _config(v), "images": [_image(v)]})
    for v, reason in REFUSED:
        v = {**BASE, **v}
        cases.append({"id": case_id("bifpn-refused", _short(v)), "config": _config(v), "images": [_image(v)], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


def build(config, hw, batch):
    """The peers' builder, then one forward on the config's own image: what cannot run there cannot run at all."""
    import make_fixtures
    import torch

    built = make_fixtures.effdet_bifpn(config, hw, batch)
    module, _, xs, call = built
    module.eval()
    try:
        with torch.no_grad():
            call(module, [x.clone() for x in xs])
    except Exception as exc:  # noqa: BLE001 - reported as the reference's refusal
        raise RuntimeError(f"effdet builds it but cannot run it on its own image_size {config['overrides']['image_size']}: {type(exc).__name__}: {exc}") from exc
    return built


CASES = _cases()
