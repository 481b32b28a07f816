"""mmdetection 3.3's ``ChannelMapper``: every constructor argument, one to five inputs, strides 4.. and 8...

ChannelMapper maps each input to ``out_channels`` by its own ConvModule (kernel ``kernel_size``,
padding ``(kernel_size - 1) // 2``) and adds ``num_outs - inputs`` stride-2 3x3 ConvModules, the
first on the last *input*. No level reads another, so any input sizes run: both images (one
whose maps halve exactly, one whose do not) run in the reference, and so must ours. An even
``kernel_size`` shrinks each map by one (padding ``(k - 1) // 2``), which the reference runs
too; a kernel larger than a (padded) map fails there, and ours must refuse those sizes.
``num_outs`` below the number of inputs is ignored by the reference. ``kernel_size`` 0 is left
out: the reference builds it and fails on every input (negative padding), which ours refuses
when converting, and a sweep case has no way to say "built, but runs nothing".
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {1: [8], 2: [6, 10], 3: [6, 8, 10], 4: [6, 8, 10, 12], 5: [4, 6, 8, 10, 12]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
IMAGES = {4: [[32, 32], [28, 44]], 8: [[64, 64], [56, 88]]}

BASE = {"inputs": 3, "first_stride": 8, "num_outs": "n"}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "num_outs": [None, "n-1", "n", "n+1", "n+2"],
    "kernel_size": [1, 2, 3, 4, 5, 7],
    "conv_cfg": [None, {"type": "Conv2d"}],
    "norm_cfg": [None, {"type": "BN"}, {"type": "SyncBN", "momentum": 0.01}, {"type": "GN", "num_groups": 2}, {"type": "GN", "num_groups": 1, "eps": 1e-6}],
    "act_cfg": [None, {"type": "ReLU"}, {"type": "LeakyReLU", "negative_slope": 0.1}, {"type": "SiLU"}, {"type": "GELU"}, {"type": "Sigmoid"}, {"type": "Tanh"}, {"type": "ReLU6"}, {"type": "HSwish"}],
    "bias": ["auto", True, False, None, "yes"],  # mmcv hands anything but 'auto' to nn.Conv2d, which tests its truth
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "num_outs", "kernel_size", "norm_cfg", "act_cfg", "bias")}

REFUSED = [  # configurations mmdetection rejects, and the words ours must use
    ({"in_channels": 8}, "in_channels must be a list"),
    ({"norm_cfg": {"type": "GN"}}, "norm_cfg GN needs num_groups"),
    ({"act_cfg": {"type": "Relu"}}, "act_cfg type 'Relu'"),
    ({"padding": 1}, "unknown argument 'padding'"),
]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    neck = {"type": "ChannelMapper", "in_channels": WIDTHS[n], "out_channels": 4}
    num_outs = v.get("num_outs", "n")
    if num_outs is None:
        neck["num_outs"] = None
    elif num_outs != "absent":
        neck["num_outs"] = max(1, eval(num_outs, {"n": n}))  # noqa: S307 - the sweep's own "n+1" strings
    for key in ("kernel_size", "conv_cfg", "norm_cfg", "act_cfg", "bias", "in_channels", "padding"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _cases() -> list[dict]:
    cases = [
        {"id": case_id("cm", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": IMAGES[v["first_stride"]]}
        for v in one_at_a_time(BASE, OPTIONS)
    ]
    cases.append({"id": "cm-num_outs=absent", "config": _config({**BASE, "num_outs": "absent"}), "images": IMAGES[8]})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 40, "mmdet_channel_mapper")]
    cases += [{"id": f"cm-mix{k:02d}", "config": _config(v), "images": IMAGES[v["first_stride"]]} for k, v in enumerate(mixes)]
    for k, (v, reason) in enumerate(REFUSED):
        cases.append({"id": f"cm-refused{k}", "config": _config({**BASE, **v}), "images": IMAGES[8], "reason": reason, "note": str(v)})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
