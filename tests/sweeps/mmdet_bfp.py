"""mmdetection 3.3's ``BFP`` (Libra R-CNN's balanced feature pyramid), alone and after an FPN.

Alone: three to five inputs of ``in_channels`` channels each, strides 4..32 and 8..64, every
``refine_level``, ``refine_type`` None / conv / non_local, ``norm_cfg`` None / BN / GN. Chained
as Libra R-CNN builds it, ``necks: [FPN, BFP]`` (an ``nn.Sequential``): the FPN's ``num_outs``
(with or without extra convs, from a ``start_level``) gives the BFP's levels.

BFP gathers with ``adaptive_max_pool2d`` and nearest interpolation to the sizes it is given, so
it runs at any image; the odd image (maps that do not halve) must run too. A ``num_levels``
that differs from the number of maps fed builds but fails the forward's assertion at every
size: ``build`` runs the reference once and reports that failure as the refusal it is.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

STRIDES = {4: [4, 8, 16, 32, 64, 128], 8: [8, 16, 32, 64, 128, 256]}
IMAGES = {4: [[32, 32], [22, 36]], 8: [[64, 64], [44, 72]]}  # small: BFP runs at any size, and the recording holds every output
NORMS = {None: None, "BN": {"type": "BN"}, "GN": {"type": "GN", "num_groups": 2}}

BASE = {"levels": 4, "first_stride": 4, "refine_level": 2, "refine_type": None, "norm": None}
OPTIONS = {
    "levels": [3, 4, 5],
    "first_stride": [4, 8],
    "refine_level": [0, 1, 2, 3],
    "refine_type": [None, "conv", "non_local"],
    "norm": [None, "BN", "GN"],
}
COMBINED = dict(OPTIONS, refine_level=[0, 1, 2, 3, 4])

CHAIN_BASE = {"inputs": 4, "first_stride": 4, "num_outs": 5, "start_level": 0, "add_extra_convs": False, "refine_level": 2, "refine_type": "non_local", "norm": None}
CHAIN_OPTIONS = {
    "inputs": [3, 4],
    "first_stride": [4, 8],
    "num_outs": [3, 4, 5],
    "start_level": [0, 1],
    "add_extra_convs": [False, "on_input", "on_output"],
    "refine_level": [0, 1, 2, 3],
    "refine_type": [None, "conv", "non_local"],
    "norm": [None, "BN", "GN"],
}


def _bfp(v: dict, levels: int) -> dict:
    return {"type": "BFP", "in_channels": 4, "num_levels": levels, "refine_level": v["refine_level"], "refine_type": v["refine_type"], "norm_cfg": NORMS[v["norm"]]}


def _config(v: dict) -> dict:
    return {"strides": STRIDES[v["first_stride"]][: v["levels"]], "necks": [_bfp(v, v["levels"])]}


def _chain(v: dict) -> dict:
    n = v["inputs"]
    fpn = {"type": "FPN", "in_channels": [4, 6, 8, 8][:n], "out_channels": 4, "num_outs": v["num_outs"], "start_level": v["start_level"], "add_extra_convs": v["add_extra_convs"]}
    if v["norm"]:
        fpn["norm_cfg"] = NORMS[v["norm"]]
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [fpn, _bfp(v, v["num_outs"])]}


def build(config: dict, hw, batch: int):
    """The shared builder's module, fed one map per stride (BFP's ``in_channels`` is one width
    for every level), then one forward: a ``num_levels`` other than the number of maps fails
    BFP's assertion at every size, so the reference refuses the configuration (raised here)."""
    import sys
    import traceback

    import make_fixtures
    import torch

    necks = config["necks"]
    module = make_fixtures.mmdet_build(necks)
    first = necks[0]["in_channels"]
    channels = [first] * len(config["strides"]) if isinstance(first, int) else list(first)
    xs = make_fixtures.feats(make_fixtures.shapes_for(batch, hw, channels, config["strides"]), 1)

    def call(mod, x):
        return mod(tuple(x))

    try:
        with torch.no_grad():
            call(module.eval(), xs)
    except AssertionError:
        if traceback.extract_tb(sys.exc_info()[2])[-1].filename.endswith("bfp.py"):
            raise
    return module, None, xs, call


def _valid(v: dict, levels: int) -> bool:
    return 0 <= v["refine_level"] < levels


REFUSED = [  # mmdetection's asserts (constructor; BFP's forward for num_levels), and the words ours must use
    ({"refine_level": 4}, "refine_level 4 must be an input index"),
    ({"refine_level": -1}, "refine_level -1 must be an input index"),
    ({"refine_type": "gc"}, "refine_type must be None, 'conv' or 'non_local'"),
    ({"levels_fed": 5}, "4 inputs but 5 strides"),
]
CHAIN_REFUSED = [
    ({"refine_level": 5}, "refine_level 5 must be an input index"),
    ({"bfp_levels": 4}, "4 inputs but 5 strides"),
    ({"num_outs": 2}, "num_outs 2 is less than the 4 inputs used"),
]


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        if _valid(v, v["levels"]):
            changed = {k: x for k, x in v.items() if BASE.get(k) != x}
            cases.append({"id": case_id("bfp", changed or {"base": 1}), "config": _config(v), "images": IMAGES[v["first_stride"]]})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 24, "mmdet_bfp")]
    cases += [{"id": f"bfp-mix{k:02d}", "config": _config(v), "images": IMAGES[v["first_stride"]]} for k, v in enumerate(m for m in mixes if _valid(m, m["levels"]))]
    for v in one_at_a_time(CHAIN_BASE, CHAIN_OPTIONS):
        if _valid(v, v["num_outs"]) and v["num_outs"] >= v["inputs"] - v["start_level"]:
            changed = {k: x for k, x in v.items() if CHAIN_BASE.get(k) != x}
            cases.append({"id": case_id("libra", changed or {"base": 1}), "config": _chain(v), "images": IMAGES[v["first_stride"]]})
    chain_mixes = [{**CHAIN_BASE, **c} for c in spread(CHAIN_OPTIONS, 16, "mmdet_bfp_chain")]
    cases += [{"id": f"libra-mix{k:02d}", "config": _chain(v), "images": IMAGES[v["first_stride"]]}
              for k, v in enumerate(m for m in chain_mixes if _valid(m, m["num_outs"]) and m["num_outs"] >= m["inputs"] - m["start_level"])]
    for v, reason in REFUSED:
        config = _config({**BASE, **{k: x for k, x in v.items() if k in BASE}})
        if "levels_fed" in v:
            config["strides"] = STRIDES[4][: v["levels_fed"]]
        cases.append({"id": case_id("bfp-refused", v), "config": config, "images": IMAGES[4], "reason": reason})
    for v, reason in CHAIN_REFUSED:
        config = _chain({**CHAIN_BASE, **{k: x for k, x in v.items() if k in CHAIN_BASE}})
        if "bfp_levels" in v:
            config["necks"][1]["num_levels"] = v["bfp_levels"]
        cases.append({"id": case_id("libra-refused", v), "config": config, "images": IMAGES[4], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
