"""mmdetection 3.3's ``CTResNetNeck`` (CenterNet): every constructor argument.

The reference reads ``x[-1]`` alone, so a case gives it one map (stride 8, 16, 32: the base, a
ResNet's C5, or 64) and each stage doubles it (a 3x3 conv, then a 4x4 transposed conv with
stride 2 and padding 1), so any size runs: one image an exact multiple of the stride, one not.
``use_dcn`` (the reference's default, True) needs mmcv's DCNv2, which mmcv-lite does not
compile: :func:`build` runs it on torchvision's ``deform_conv2d``
(``tests/interop/data/mmcv_dcn_stub.py``, as ``record_ct_resnet_dcn.py`` does); it is swept in
the one-at-a-time cases and half the spread.

Not swept, because ours refuses what the reference runs (see the converter): kernels other than
4 (the map is no longer twice the size: ``2 * size + k - 4``), an empty ``num_deconv_filters``
(the input returned unchanged), a string ``use_dcn`` (truthy there, whatever it says), and more stages than the input's level
(stride 8 with four stages: an output finer than the image, stride 1/2, which no pyramid level is);
and several maps, as for DilatedEncoder (the reference reads the last, ``in_channels`` wide).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

STAGES = {1: [8], 2: [8, 4], 3: [8, 6, 4], 4: [8, 8, 4, 4]}
BASE = {"stride": 32, "in_channels": 8, "stages": 3, "use_dcn": False}
OPTIONS = {
    "stride": [8, 16, 32, 64],
    "in_channels": [4, 8, 12],
    "stages": [1, 2, 3, 4],
    "use_dcn": [False, True, 0, 1, None],  # the reference tests it for truth
    "init_cfg": [None, {"type": "Kaiming", "layer": "Conv2d"}],
}
COMBINED = {k: OPTIONS[k] for k in ("stride", "in_channels", "stages", "use_dcn")}
COMBINED["use_dcn"] = [False, True]

REFUSED = [  # what the reference's constructor rejects, and the words ours must use
    ({"num_deconv_kernels": [4, 4]}, "must have the same length"),
    ({"num_deconv_filters": [8, 4]}, "must have the same length"),
    ({"use_dcnv2": True}, "unknown argument 'use_dcnv2'"),
]


def build(config, hw, batch):
    """The peers' mmdet builder, with mmcv's DCNv2 on torchvision (mmcv-lite has no compiled ops)."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "data"))
    import make_fixtures
    import mmcv_dcn_stub  # noqa: F401 - stubs mmcv._ext before mmcv.ops is imported

    return make_fixtures.mmdet(config, hw, batch)


def _config(v: dict) -> dict:
    filters = STAGES[v["stages"]]
    neck = {"type": "CTResNetNeck", "in_channels": v["in_channels"], "num_deconv_filters": filters, "num_deconv_kernels": [4] * len(filters), "use_dcn": v["use_dcn"]}
    if "init_cfg" in v:
        neck["init_cfg"] = v["init_cfg"]
    return {"strides": [v["stride"]], "necks": [neck]}


def _images(v: dict) -> list:
    s = v["stride"]
    return [[s, 2 * s], [s + s // 2 + 1, 2 * s - 3]]


def _cases() -> list[dict]:
    cases = [{"id": case_id("ct", {k: x for k, x in v.items() if BASE.get(k, "-") != x} or {"base": 1}), "config": _config(v), "images": _images(v)} for v in one_at_a_time(BASE, OPTIONS)]
    cases += [{"id": f"ct-mix{k:02d}", "config": _config({**BASE, **v}), "images": _images(v)} for k, v in enumerate(m for m in spread(COMBINED, 24, "mmdet_ct_resnet_neck") if 2 ** m["stages"] <= m["stride"])]
    for change, reason in REFUSED:
        config = _config(BASE)
        config["necks"][0].update(change)
        cases.append({"id": case_id("ct-refused", change), "config": config, "images": _images(BASE), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
