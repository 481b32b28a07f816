"""mmdetection 3.3's ``SSDNeck`` (SSD's extra layers): every constructor argument.

The inputs are outputs unchanged (the first L2-normalised), then each extra layer (a 1x1 unit to
half its width, then a kxk unit with the layer's stride and padding) reads the previous output.
Images: one where every map halves exactly, one that does not (stride-2, padding-1 3x3 convs give
``ceil(size / 2)`` there too, so both run unless a layer runs out of pixels). Extra layers:

* ``e2``: strides 2, 2, paddings 1, 1 (the base: each a level coarser);
* ``e3``: three such; ``e1``: one; ``s1``: stride 1, padding 1 (the same level, the same size);
* ``ssd``: SSD300's layout, 2, 2, 1, 1 with paddings 1, 1, 0, 0 (the last two shrink by 2 each);
* ``p0``: stride 2 with padding 0 (``floor((size - 3) / 2) + 1``, no longer the next level's size);
* ``p2``: stride 2 with padding 2.

``last_kernel_size`` 1, 3, 4 (SSD512's) and 5 changes the last layer's kernel. Each case's images
are the smallest where its layers run (``_runs``); the ``tight`` cases add one too small, where the
reference fails and ours must refuse the sizes. With an L2Norm the reference appends to
``init_cfg``, so it refuses one that is not a list.

Not swept, because ours refuses what the reference runs: ``level_strides`` other than 1 and 2
(a stride-3 layer is at no pyramid level; stride 4, two levels down, is not modelled), and the
mmcv activations and norms the shared ``mmcv_cfg`` does not map (ELU, PReLU, RReLU, HSigmoid,
Clamp or Clip; IN).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {1: [4], 2: [4, 6], 3: [4, 6, 8], 4: [4, 4, 6, 8], 5: [4, 4, 6, 6, 8]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
EXTRAS = {  # name: (widths, level_strides, level_paddings, the coarsest input's size in pixels)
    "e2": ([8, 8], [2, 2], [1, 1], 1),
    "e1": ([8], [2], [1], 1),
    "e3": ([8, 8, 8], [2, 2, 2], [1, 1, 1], 1),
    "s1": ([8, 8], [1, 2], [1, 1], 1),
    "ssd": ([8, 4, 4, 4], [2, 2, 1, 1], [1, 1, 0, 0], 20),  # 20 -> 10 -> 5 -> 3 -> 1: one input only (the data budget)
    "p0": ([8, 8], [2, 2], [0, 1], 1),
    "p2": ([8, 8], [2, 2], [2, 1], 1),
}

BASE = {"inputs": 3, "first_stride": 8, "extras": "e2"}
OPTIONS = {
    "inputs": [1, 2, 3, 4, 5],
    "first_stride": [4, 8],
    "extras": list(EXTRAS),
    "l2_norm_scale": [20.0, 10.0, None, 0],
    "last_kernel_size": [1, 3, 4, 5],
    "use_depthwise": [False, True],
    "norm_cfg": [None, {"type": "BN"}, {"type": "BN", "eps": 1e-3, "momentum": 0.03}, {"type": "SyncBN"}, {"type": "GN", "num_groups": 2}],
    "act_cfg": [{"type": "ReLU"}, None, {"type": "ReLU6"}, {"type": "LeakyReLU", "negative_slope": 0.1}, {"type": "SiLU"}, {"type": "HSwish"}],
    "conv_cfg": [None, {"type": "Conv2d"}],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "extras", "l2_norm_scale", "last_kernel_size", "use_depthwise", "norm_cfg", "act_cfg")}
COMBINED["extras"] = [e for e in EXTRAS if e != "ssd"]  # SSD300's layout needs 20-pixel maps: its own cases only (the data budget)
COMBINED["norm_cfg"] = [None, {"type": "BN"}, {"type": "GN", "num_groups": 2}]
COMBINED["act_cfg"] = [{"type": "ReLU"}, None, {"type": "ReLU6"}]

REFUSED = [  # what mmdetection asserts, and the words ours must use
    ({"out_channels": [4, 6, 8]}, "add at least one extra layer"),
    ({"out_channels": [4, 6, 6, 8, 8]}, "must start with in_channels"),
    ({"level_strides": [2]}, "need as many level_strides and level_paddings"),
    ({"level_paddings": [1, 1, 1]}, "need as many level_strides and level_paddings"),
    ({"upsample_cfg": {"mode": "nearest"}}, "upsample_cfg"),
    ({"init_cfg": None}, "init_cfg must be a list"),  # with an L2Norm the reference appends its init to init_cfg
    ({"init_cfg": {"type": "Xavier", "layer": "Conv2d"}}, "init_cfg must be a list"),
]


def _config(v: dict) -> dict:
    n, first = v["inputs"], v["first_stride"]
    widths, level_strides, paddings, _ = EXTRAS[v["extras"]]
    neck = {"type": "SSDNeck", "in_channels": WIDTHS[n], "out_channels": WIDTHS[n] + widths, "level_strides": level_strides, "level_paddings": paddings}
    for key in ("l2_norm_scale", "last_kernel_size", "use_depthwise", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"):
        if key in v:
            neck[key] = v[key]
    return {"strides": STRIDES[first][:n], "necks": [neck]}


def _fixed(v: dict) -> dict:
    """Layers that need a coarsest input of more than 2 pixels take at most two inputs (the finest
    map grows 4x with each input: the data budget); SSD300's layout takes one."""
    if v["extras"] == "ssd":
        return {**v, "inputs": 1}
    return {**v, "inputs": min(v["inputs"], 2)} if _size(v) > 2 else v


def _runs(v: dict, size: int) -> bool:
    """Whether the extra layers run from a coarsest input of ``size`` pixels: every kxk conv's
    padded input at least its kernel, and (GN) more than one value per group."""
    widths, level_strides, paddings, _ = EXTRAS[v["extras"]]
    groups = (v.get("norm_cfg") or {}).get("num_groups", 1)
    for k, (width, stride, pad) in enumerate(zip(widths, level_strides, paddings)):
        kernel = v.get("last_kernel_size", 3) if k == len(widths) - 1 else 3
        if size + 2 * pad < kernel or width // 2 // groups * size * size < 2:
            return False
        size = (size + 2 * pad - kernel) // stride + 1
        if size < 1 or width // 2 // groups * size * size < 2:
            return False
    return True


def _size(v: dict) -> int:
    size = EXTRAS[v["extras"]][3]
    while not _runs(v, size):
        size += 1
    return size


def _images(v: dict) -> list:
    """An image whose maps all halve exactly, and one whose maps do not, the smallest where the
    extra layers run (``EXTRAS`` names the least for each layout)."""
    top, size = STRIDES[v["first_stride"]][v["inputs"] - 1], _size(v)
    return [[size * top, size * top], [size * top * 11 // 8, size * top * 9 // 8]]


def _cases() -> list[dict]:
    singles = [_fixed(v) for v in one_at_a_time(BASE, OPTIONS)]
    cases = [{"id": case_id("ssd", {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}), "config": _config(v), "images": _images(v)} for v in singles]
    mixes = [_fixed({**BASE, **v}) for v in spread(COMBINED, 26, "mmdet_ssd_neck")]
    cases += [{"id": f"ssd-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    # init_cfg: any without an L2Norm; a list with one
    for name, v in (("none-nol2", {"init_cfg": None, "l2_norm_scale": None}), ("list", {"init_cfg": [{"type": "Xavier", "layer": "Conv2d"}]})):
        cases.append({"id": f"ssd-init_cfg-{name}", "config": _config({**BASE, **v}), "images": _images(BASE)})
    # images too small for the layers: the reference fails on the second, and ours must refuse its sizes
    for name, v in (("ssd", {"inputs": 1, "extras": "ssd"}), ("p0", {"extras": "p0"}), ("k5", {"last_kernel_size": 5}), ("k4", {"inputs": 2, "last_kernel_size": 4})):
        v = {**BASE, **v}
        (h, w), _ = _images(v)
        cases.append({"id": f"ssd-tight-{name}", "config": _config(v), "images": [[h, w], [h // 2, w // 2]]})
    for change, reason in REFUSED:
        config = _config(BASE)
        config["necks"][0].update(change)
        cases.append({"id": case_id("ssd-refused", change), "config": config, "images": _images(BASE), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
