"""mmdetection 3.3's ``DyHead``: every constructor argument, one to five levels, at strides 4.. and 8...

mmcv-lite, in the peers environment, ships no compiled ops, so :func:`build` runs mmdetection's
own DyHead with mmcv's modulated deformable conv's function replaced by torchvision's
``deform_conv2d`` (``tests/interop/data/mmcv_dcn_stub.py``: the same weight, offset and mask
layouts, and a coarser map's offsets read as mmcv's kernel reads them), as
``tests/interop/data/record_dyhead.py`` recorded the earlier fixtures.

DyHead runs on any sizes (its stride-2 conv gives ``ceil(size / 2)``, and the coarser map is
resized to the finer one), so both images run, one with even maps and one with odd ones. The
coarsest map is 2x1: each DCN's GroupNorm(16) of 16 channels normalises one value per group on
a 1x1 map, which torch refuses at batch 1 (only), and ours with it; a size rule cannot see the
batch, so no case has one.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"levels": 3, "first_stride": 8, "in_channels": 16, "out_channels": 16, "num_blocks": 1}
OPTIONS = {
    "levels": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "in_channels": [4, 8, 16, 32],
    "out_channels": [16, 32],
    "num_blocks": [0, 1, 2, 3],
    "zero_init_offset": [True, False],
}
COMBINED = {"levels": [2, 3, 4], "first_stride": [4, 8], "in_channels": [8, 16], "num_blocks": [1, 2], "zero_init_offset": [True, False]}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"out_channels": 8}, "not a multiple of 16"),
    ({"out_channels": 24}, "not a multiple of 16"),
    ({"init_cfg": {"type": "Normal", "std": 0.01}}, "init_cfg must be None"),
    ({"act_cfg": {"type": "ReLU"}}, "act_cfg"),
    ({"in_channels": [16, 16, 16]}, "in_channels must be an integer"),
]


def images(levels: int, first: int) -> list[list[int]]:
    """``[even, odd]``: the coarsest map 2x1 (the least with more than one value), then the image
    a finest stride taller and wider (the finer maps' sides odd)."""
    coarsest = first * 2 ** (levels - 1)
    return [[2 * coarsest, coarsest], [2 * coarsest + first, coarsest + first]]


def _config(v: dict) -> dict:
    neck = {"type": "DyHead", "in_channels": v["in_channels"], "out_channels": v["out_channels"], "num_blocks": v["num_blocks"]}
    for key in ("zero_init_offset", "init_cfg", "act_cfg"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[v["first_stride"]][: v["levels"]], "necks": [neck]}


def _cases() -> list[dict]:
    def case(prefix: str, v: dict) -> dict:
        return {"id": case_id(prefix, {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": images(v["levels"], v["first_stride"])}

    cases = [case("dyhead", v) for v in one_at_a_time(BASE, OPTIONS)]
    mixes = [{**BASE, **c} for c in spread(COMBINED, 10, "mmdet_dyhead")]
    cases += [{**case("", v), "id": f"dyhead-mix{k:02d}"} for k, v in enumerate(mixes)]
    for v, reason in REFUSED:
        cases.append({**case("dyhead-refused", {**BASE, **v}), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


def build(config: dict, hw, batch: int):
    """mmdetection's DyHead on torchvision's DCNv2 (the peers builders' signature and return)."""
    import math
    import os
    import sys

    import torch

    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "data")
    if data not in sys.path:
        sys.path.insert(0, data)
    import mmcv_dcn_stub  # noqa: F401  (stubs mmcv._ext; DCNv2 by torchvision)
    from mmdet.models.necks.dyhead import DyHead

    (neck,) = config["necks"]
    module = DyHead(**{k: v for k, v in neck.items() if k != "type"})
    h, w = hw
    xs = [torch.zeros(batch, neck["in_channels"], math.ceil(h / s), math.ceil(w / s)) for s in config["strides"]]
    return module, None, xs, lambda mod, x: mod(list(x))


CASES = _cases()
