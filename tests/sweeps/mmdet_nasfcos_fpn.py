"""mmdetection 3.3's ``NASFCOS_FPN`` over its constructor, at strides 4..32 and 8..64.

The searched cells read exactly three adapted levels, and the forward resizes the outputs to
``inputs[1..3]``: mmdetection's configs (and this sweep) use ``start_level`` 1 with three
inputs used (four inputs, or five with ``end_level`` 3). Swept: strides, ``num_outs`` 3..6
(stride-2 conv extra levels), ``norm_cfg`` of the cells' input convs (None, BN, GN, BN eps),
``add_extra_convs`` (stored, never read), ``conv_cfg`` Conv2d. Fewer than three levels used
build but fail at every size (the forward indexes ``feats[2]`` and ``inputs[3]``): ``build``
runs the reference once and reports that as the refusal it is.

Not swept: ``start_level`` 0 with four inputs, or five inputs from ``start_level`` 1 (four
levels used). The reference runs them, but its cells index ``feats`` by position, so with four
adapted maps each cell reads other maps than the searched graph's (``c32`` an adapted map
instead of ``c22_1``...): a different network, which the spec does not model and the converter
refuses.

Images: a multiple of the coarsest stride, and one that is not (the merge cells resize and
the outputs are interpolated to the inputs' sizes, so the reference runs both).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [4, 6, 8], 4: [4, 6, 8, 8], 5: [4, 4, 6, 8, 8]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
NORMS = {None: None, "BN": {"type": "BN"}, "GN": {"type": "GN", "num_groups": 2}, "BNeps": {"type": "BN", "eps": 1e-3, "momentum": 0.01}}

BASE = {"inputs": 4, "first_stride": 4, "end_level": -1, "num_outs": 4, "norm": "BN", "add_extra_convs": False}
OPTIONS = {
    "inputs": [4, 5],
    "first_stride": [4, 8],
    "num_outs": [3, 4, 5, 6],
    "norm": [None, "BN", "GN", "BNeps"],
    "add_extra_convs": [False, True],
    "conv_cfg": [{"type": "Conv2d"}],
}
COMBINED = {**{k: OPTIONS[k] for k in ("inputs", "first_stride", "norm", "add_extra_convs")}, "num_outs": [3, 4, 5]}  # small images: the recording holds every output


def _config(v: dict) -> dict:
    n = v["inputs"]
    end = 3 if n == 5 else v["end_level"]  # three inputs used from start_level 1
    neck = {"type": "NASFCOS_FPN", "in_channels": WIDTHS[n], "out_channels": 4, "num_outs": v["num_outs"], "start_level": 1, "end_level": end,
            "add_extra_convs": v["add_extra_convs"], "norm_cfg": NORMS[v["norm"]]}
    if end != -1:
        neck["num_outs"] = 3  # mmdetection: with an end_level short of the last input, no extra levels
    if "conv_cfg" in v:
        neck["conv_cfg"] = v["conv_cfg"]
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [neck]}


def _images(config: dict) -> list[list[int]]:
    neck = config["necks"][0]
    c = config["strides"][1] * 2 ** max(neck["num_outs"] - 1, 2)
    return [[c, c], [c * 11 // 16, c * 9 // 8]]


def build(config: dict, hw, batch: int):
    """The shared builder, then one forward: fewer than three levels used (or fewer than four
    inputs) fail the forward's indexing at every size, so the reference refuses the configuration."""
    import make_fixtures
    import torch

    module, names, xs, call = make_fixtures.mmdet(config, hw, batch)
    try:
        with torch.no_grad():
            call(module.eval(), xs)
    except Exception as exc:  # noqa: BLE001 - sizes the reference cannot run are recorded by the run itself
        if isinstance(exc, IndexError):
            raise
    return module, names, xs, call


REFUSED = [  # mmdetection's asserts (constructor) and its forward's indexing (any size), and the words ours must use
    ({"num_outs": 2}, {}, "num_outs 2 is less than the 3 inputs used"),
    ({}, {"init_cfg": {"type": "Caffe2Xavier", "layer": "Conv2d"}}, "init_cfg must be None"),
    ({}, {"end_level": 4}, "end_level 4 must be -1 or an input index"),
    ({}, {"end_level": 2, "num_outs": 2}, "start_level must be 1 with three inputs used"),
    ({"inputs": 3, "num_outs": 4}, {}, "start_level must be 1 with three inputs used"),
]


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        config = _config(v)
        changed = {k: x for k, x in v.items() if BASE.get(k) != x}
        cases.append({"id": case_id("nasfcos", changed or {"base": 1}), "config": config, "images": _images(config)})
    for first in (4, 8):
        v = {**BASE, "first_stride": first, "end_level": 3}
        config = _config(v)
        cases.append({"id": f"nasfcos-end_level=3-s{first}", "config": config, "images": _images(config), "note": "end_level 3 with four inputs: the last input, as -1"})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 16, "mmdet_nasfcos_fpn")]
    for k, v in enumerate(mixes):
        config = _config(v)
        cases.append({"id": f"nasfcos-mix{k:02d}", "config": config, "images": _images(config)})
    for v, extra, reason in REFUSED:
        config = _config({**BASE, **v})
        config["necks"][0].update(extra)
        cases.append({"id": case_id("nasfcos-refused", {**v, **extra}), "config": config, "images": [[128, 128]], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
