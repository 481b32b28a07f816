"""mmdetection 3.3's ``HRFPN`` (HRNetV2p's neck) over its constructor, at strides 4..32 and 8..64.

Arguments: three to five inputs (HRNet's branches), ``num_outs`` 1..6, ``pooling_type``
(``'MAX'`` max-pools; anything else, ``'AVG'`` or a lowercase ``'max'``, averages, as the
reference compares), the output convs' ``stride`` 1, 2, 4, ``norm_cfg`` (stored, never used)
and ``with_cp`` (training memory only).

Images: a multiple of the coarsest stride the neck needs (its coarsest input, and the largest
pooling window: ``num_outs - 1`` halvings of the finest map), where the reference's upsampling
by ``2**i`` lines every input up, and one that does not divide (the concatenation fails in the
reference; ours must refuse the sizes).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [4, 6, 8], 4: [4, 4, 6, 8], 5: [4, 4, 6, 6, 8]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "pooling_type": "AVG", "stride": 1}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [1, 2, 3, 4, 5, 6],
    "pooling_type": ["AVG", "MAX", "max"],
    "stride": [1, 2, 4],
    "norm_cfg": [{"type": "BN"}],
    "with_cp": [True],
    "conv_cfg": [{"type": "Conv2d"}],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "num_outs", "pooling_type", "stride")}


def _config(v: dict) -> dict:
    n = v["inputs"]
    neck = {"type": "HRFPN", "in_channels": WIDTHS[n], "out_channels": 4}
    for key in ("num_outs", "pooling_type", "stride", "norm_cfg", "with_cp", "conv_cfg"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [neck]}


def _images(v: dict) -> list[list[int]]:
    first = v["first_stride"]
    c = max(first * 2 ** (v["inputs"] - 1), first * 2 ** (v["num_outs"] - 1) * v["stride"])
    return [[c, c], [c * 11 // 16, c * 9 // 8]]


REFUSED = [  # mmdetection's asserts, and the words ours must use
    ({"in_channels": 4}, "in_channels must be a non-empty list"),
]


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        changed = {k: x for k, x in v.items() if BASE.get(k) != x}
        cases.append({"id": case_id("hrfpn", changed or {"base": 1}), "config": _config(v), "images": _images(v)})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 30, "mmdet_hrfpn")]
    cases += [{"id": f"hrfpn-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    for v, reason in REFUSED:
        config = _config(BASE)
        config["necks"][0].update(v)
        config["strides"] = [4]
        cases.append({"id": case_id("hrfpn-refused", v), "config": config, "images": [[64, 64]], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
