"""mmdetection 3.3's ``FPG`` (Feature Pyramid Grids) over its constructor, at strides 4..32 and 8..64.

mmdetection's own test configuration (``test_fpg``: start_level 1, extra convs, nine
bottom-up pathways with the paper's triangular ``skip_inds``, act-conv-norm BN transitions) at
width 4, at both strides: FPG used to be refused at strides 8..64 because the compile-time
size check ran on the spec's example image; it must now run there. The base of the sweep is
that configuration with two pathways, four levels and plain transitions (a recording stores every
state key's name and every output: nine normed pathways or five levels per case would not fit
the budget); then each option in turn (inputs, strides,
start/end level, num_outs, extra convs, inter_channels, pathways and skips, each transition's
type and ConvModule options, norms) and a spread of combinations.

Images: a multiple of the coarsest stride (every map halves exactly) and one that does not:
there the interpolation transitions (``scale_factor`` 2) no longer meet the strided convs'
sizes and the reference fails, and so must ours (``NeckInputError``).

Not swept: a top-down pathway skipping levels ``j`` and ``num_outs - 1 - j`` both (off the
middle). The reference runs it with the two maps swapped (a coarse map at a fine level's
output), which a level-based spec cannot express; the converter refuses it with that reason.
A single off-middle top-down skip fails in the reference at every size (an empty
``ModuleDict`` is indexed), as ours refuses it.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [4, 6, 8], 4: [4, 6, 8, 8], 5: [4, 4, 6, 8, 8]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}
BN = {"type": "BN", "requires_grad": True}
ACN = ["act", "conv", "norm"]

TRANS = {  # named transition configs (mmdetection's test ones, and the constructor's defaults)
    "conv32": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1, "norm_cfg": BN, "inplace": False, "order": ACN},
    "conv32plain": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1},
    "conv1": {"type": "conv", "kernel_size": 1, "norm_cfg": BN, "inplace": False, "order": ACN},
    "conv1plain": {"type": "conv", "kernel_size": 1},
    "conv3": {"type": "conv", "kernel_size": 3, "padding": 1},
    "up_nearest": {"type": "interpolation_conv", "mode": "nearest", "kernel_size": 3, "norm_cfg": BN, "order": ACN, "inplace": False},
    "up_plain": {"type": "interpolation_conv", "mode": "nearest", "kernel_size": 3},
    "up_bilinear": {"type": "interpolation_conv", "mode": "bilinear", "align_corners": False, "kernel_size": 3},
    "up_gn": {"type": "interpolation_conv", "mode": "nearest", "kernel_size": 1, "norm_cfg": {"type": "GN", "num_groups": 2}, "order": ["conv", "norm", "act"]},
    "leaky": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1, "act_cfg": {"type": "LeakyReLU", "negative_slope": 0.2}, "order": ["norm", "act", "conv"], "inplace": False},
    "identity": {"type": "identity"},
    "last_conv": {"type": "last_conv", "kernel_size": 3, "order": ACN, "inplace": False},
    "last_plain": {"type": "last_conv", "kernel_size": 3},
    "last_k1_gn": {"type": "last_conv", "kernel_size": 1, "norm_cfg": {"type": "GN", "num_groups": 2}, "act_cfg": None},
    None: None,
}

BASE = {
    "inputs": 4, "first_stride": 4, "start_level": 1, "end_level": -1, "num_outs": 4, "add_extra_convs": True,
    "inter": 4, "paths": "bu2", "skips": "paper", "norm": "BN",
    "same_up": "conv32plain", "same_down": None, "lateral": "conv1plain", "down": "up_plain", "up": None, "skip": None, "output": "last_plain",
}
PATHS = {"bu2": ["bu"] * 2, "bu9": ["bu"] * 9, "bu1": ["bu"], "td1": ["td"], "bu_td": ["bu", "td"], "td_bu": ["td", "bu"], "td_td_bu": ["td", "td", "bu"], "none": []}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "start_level": [0, 1],
    "num_outs": [3, 4, 5, 6],
    "add_extra_convs": [False, True],
    "inter": [4, 6, "list"],
    "paths": [p for p in PATHS if p != "bu9"],  # nine pathways: mmdetection's test configuration, below
    "skips": ["paper", "none", "middle"],
    "norm": [None, "BN", "GN"],
    "same_up": ["conv32", "conv32plain", "leaky", None],
    "same_down": [None, "up_nearest", "up_bilinear"],
    "lateral": ["conv1", "conv1plain", "conv3"],
    "down": ["up_plain", "up_nearest", "up_bilinear", "up_gn", None],
    "up": [None, "conv32plain"],
    "skip": [None, "conv1"],
    "output": ["last_conv", "last_plain", "last_k1_gn"],
}
COMBINED = {**{k: OPTIONS[k] for k in ("inputs", "first_stride", "start_level", "num_outs", "add_extra_convs", "paths", "skips", "same_down", "down", "up", "skip")}, "num_outs": [3, 4, 5]}


def _skip_inds(kind: str, levels: int, stack: int) -> list[list[int]]:
    """``paper``: level j skipped by the first ``levels - 1 - j`` pathways (the paper's triangle);
    ``middle``: every pathway skips the middle level (the one a top-down pathway may skip)."""
    if kind == "paper":
        return [list(range(min(stack, levels - 1 - j))) for j in range(levels)]
    if kind == "middle" and levels % 2 == 1:
        return [list(range(stack)) if j == levels // 2 else [] for j in range(levels)]
    return [[] for _ in range(levels)]


def _config(v: dict) -> dict:
    n = v["inputs"]
    num_outs = v["num_outs"]
    if v["end_level"] not in (-1, n - 1):
        num_outs = v["end_level"] - v["start_level"] + 1  # what mmdet requires with an end_level
    paths = PATHS[v["paths"]]
    skips = v["skips"]
    if skips == "paper" and "td" in paths:
        skips = "middle"  # a top-down pathway may skip only the middle level (see the converter)
    inter = [4, 6, 6, 4, 4, 4][:num_outs] if v["inter"] == "list" else v["inter"]
    norm = {"BN": BN, "GN": {"type": "GN", "num_groups": 2}, None: None}[v["norm"]]
    neck = {
        "type": "FPG", "in_channels": WIDTHS[n], "out_channels": 4, "inter_channels": inter, "num_outs": num_outs,
        "stack_times": len(paths), "paths": paths, "start_level": v["start_level"], "end_level": v["end_level"],
        "add_extra_convs": v["add_extra_convs"], "norm_cfg": norm, "skip_inds": _skip_inds(skips, num_outs, len(paths)),
        "same_up_trans": TRANS[v["same_up"]], "same_down_trans": TRANS[v["same_down"]], "across_lateral_trans": TRANS[v["lateral"]],
        "across_down_trans": TRANS[v["down"]], "across_up_trans": TRANS[v["up"]], "across_skip_trans": TRANS[v["skip"]],
        "output_trans": TRANS[v["output"]],
    }
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [neck]}


def _images(config: dict) -> list[list[int]]:
    """The coarsest output's stride as a square image (every map halves exactly, the coarsest is
    1 px), and 11/16 x 9/8 of it (they do not)."""
    neck = config["necks"][0]
    coarsest = config["strides"][0] * 2 ** (neck["start_level"] + neck["num_outs"] - 1)
    return [[coarsest, coarsest], [coarsest * 11 // 16, coarsest * 9 // 8]]


def _valid(v: dict) -> bool:
    """What mmdetection asserts: num_outs covers the inputs used (the refusals are REFUSED)."""
    return v["num_outs"] >= v["inputs"] - v["start_level"]


REFUSED = [  # configurations mmdetection rejects (its asserts), and the words ours must use
    ({"num_outs": 2}, "num_outs 2 is less than the 3 inputs used"),
    ({"end_level": 4}, "end_level 4 must be -1 or an input index"),
    ({"end_level": 2, "num_outs": 5, "_keep_num_outs": True}, "num_outs must be 2"),
    ({"paths": "bu2", "_stack_times": 3}, "paths must list"),
    ({"skip": "identity"}, "transition type 'identity' is not supported"),  # the constructor's default: mmdet 3.3 registers no 'identity' transition
    ({"inter": "short"}, "inter_channels has 3 entries for num_outs 4"),
    ({"_skip_inds": [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [], [], [], []]}, "skip_inds[0] lists 10 pathways"),
]


def _refused(v: dict) -> dict:
    config = _config({**BASE, **{k: x for k, x in v.items() if not k.startswith("_") and k != "inter"}})
    neck = config["necks"][0]
    if v.get("_keep_num_outs"):
        neck["num_outs"] = v["num_outs"]
        neck["skip_inds"] = _skip_inds("paper", v["num_outs"], neck["stack_times"])
    if "_stack_times" in v:
        neck["stack_times"] = v["_stack_times"]
    if v.get("inter") == "short":
        neck["inter_channels"] = [4, 4, 4]
    if "_skip_inds" in v:
        neck["skip_inds"] = v["_skip_inds"]
    return config


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        if not _valid(v):
            continue
        changed = {k: x for k, x in v.items() if BASE.get(k) != x}
        cases.append({"id": case_id("fpg", changed or {"base": 1}), "config": _config(v), "images": _images(_config(v))})
    # mmdetection's test configuration itself (nine pathways, end_level 3 == -1) at both strides; end_level 2
    for first in (4, 8):
        test = {**BASE, "num_outs": 5, "first_stride": first, "end_level": 3, "paths": "bu9", "same_up": "conv32", "lateral": "conv1", "down": "up_nearest", "output": "last_conv"}
        cases.append({"id": f"fpg-mmdet_test-end3-s{first}", "config": _config(test), "images": _images(_config(test))})
    cases.append({"id": "fpg-end2-s8", "config": _config({**BASE, "first_stride": 8, "end_level": 2}), "images": _images(_config({**BASE, "first_stride": 8, "end_level": 2})),
                  "note": "end_level 2: two levels used, no extra level"})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 14, "mmdet_fpg")]
    cases += [{"id": f"fpg-mix{k:02d}", "config": _config(v), "images": _images(_config(v))} for k, v in enumerate(m for m in mixes if _valid(m))]
    for v, reason in REFUSED:
        cases.append({"id": case_id("fpg-refused", {k.lstrip("_"): x for k, x in v.items() if k != "_keep_num_outs"}), "config": _refused(v), "images": [[64, 64]], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
