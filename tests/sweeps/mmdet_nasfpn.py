"""mmdetection 3.3's ``NASFPN`` over its constructor, at strides 4..32 and 8..64.

Arguments: three to five inputs, ``start_level``, ``end_level``, ``num_outs``, ``stack_times``
(0..3, each stage its own nine merge cells), ``norm_cfg`` (None, BN, GN). The forward unpacks
exactly five levels (``p3, p4, p5, p6, p7 = feats``), so a ``num_outs`` other than 5, or more
than five inputs used, builds but cannot run at any size: this group's ``build`` runs the
reference once and reports that failure as the refusal it is (``ours`` refuses such configs
when converting).

Images: the coarsest level's stride (every map halves exactly; one-at-a-time cases only, to keep
the recording small), one whose maps do not halve but stay at least 1 px (the merge cells pad
and pool odd sizes: the reference runs), and one so small that the extra levels, max-pooled
with floor, reach 0 px (the reference fails, and ours must refuse the sizes).
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "mmdet"

WIDTHS = {3: [4, 6, 8], 4: [4, 6, 8, 8], 5: [4, 4, 6, 8, 8]}
STRIDES = {4: [4, 8, 16, 32, 64], 8: [8, 16, 32, 64, 128]}

BASE = {"inputs": 4, "first_stride": 4, "start_level": 1, "end_level": -1, "num_outs": 5, "stack_times": 2, "norm_cfg": None}
OPTIONS = {
    "inputs": [3, 4, 5],
    "first_stride": [4, 8],
    "start_level": [0, 1, 2],
    "end_level": [-1, 2, 3],
    "stack_times": [0, 1, 2, 3],
    "norm_cfg": [None, {"type": "BN"}, {"type": "GN", "num_groups": 2}, {"type": "BN", "eps": 1e-3}],
}
COMBINED = {k: OPTIONS[k] for k in ("inputs", "first_stride", "start_level", "stack_times", "norm_cfg")}


def _config(v: dict) -> dict:
    n = v["inputs"]
    neck = {"type": "NASFPN", "in_channels": WIDTHS[n], "out_channels": 4, "num_outs": v["num_outs"], "stack_times": v["stack_times"],
            "start_level": v["start_level"], "end_level": v["end_level"], "norm_cfg": v["norm_cfg"]}
    return {"strides": STRIDES[v["first_stride"]][:n], "necks": [neck]}


def _images(config: dict, exact: bool = True) -> list[list[int]]:
    """Exact (unless ``exact`` is false: the combinations, to keep the recording small), odd, too small."""
    neck = config["necks"][0]
    c = config["strides"][0] * 2 ** (neck["start_level"] + 4)
    return ([[c, c]] if exact else []) + [[c * 13 // 16, c * 15 // 16], [c * 11 // 16, c * 9 // 8]]


def _valid(v: dict) -> bool:
    """What mmdetection asserts, and what its forward can run (five levels, from at most five inputs)."""
    n, start, end = v["inputs"], v["start_level"], v["end_level"]
    if start >= n or end >= n:
        return False
    if end in (-1, n - 1):
        return v["num_outs"] >= n - start and n - start <= 5
    return end >= start and v["num_outs"] == end - start + 1 == 5


REFUSED = [  # mmdetection's asserts (constructor) and its forward's unpacking (any size), and the words ours must use
    ({"num_outs": 2}, "num_outs 2 is less than the 3 inputs used"),
    ({"end_level": 2, "num_outs": 5}, "num_outs must be 2"),
    ({"num_outs": 4}, "num_outs must be 5"),
    ({"num_outs": 6}, "num_outs must be 5"),
    ({"end_level": 2, "num_outs": 2}, "num_outs must be 5"),
]


def build(config: dict, hw, batch: int):
    """The shared builder, then one forward: a config whose forward cannot unpack five levels
    fails at every size, so the reference refuses it (raised here, as a constructor would)."""
    import make_fixtures
    import torch

    module, names, xs, call = make_fixtures.mmdet(config, hw, batch)
    try:
        with torch.no_grad():
            call(module.eval(), xs)
    except Exception as exc:  # noqa: BLE001 - sizes the reference cannot run are recorded by the run itself
        if isinstance(exc, ValueError) and "values to unpack" in str(exc):
            raise
    return module, names, xs, call


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        if not _valid(v):
            continue
        config = _config(v)
        changed = {k: x for k, x in v.items() if BASE.get(k) != x}
        cases.append({"id": case_id("nasfpn", changed or {"base": 1}), "config": config, "images": _images(config)})
    for v in ({"inputs": 5, "start_level": 0}, {"inputs": 5, "start_level": 0, "first_stride": 8}, {"inputs": 3, "start_level": 0, "stack_times": 1},
              {"inputs": 5, "start_level": 1, "end_level": 4}, {"inputs": 4, "start_level": 0, "end_level": 3, "first_stride": 8}):
        config = _config({**BASE, **v})
        cases.append({"id": case_id("nasfpn", v), "config": config, "images": _images(config)})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 12, "mmdet_nasfpn")]
    for k, v in enumerate(m for m in mixes if _valid(m)):
        config = _config(v)
        cases.append({"id": f"nasfpn-mix{k:02d}", "config": config, "images": _images(config, exact=False)})
    for v, reason in REFUSED:
        cases.append({"id": case_id("nasfpn-refused", v), "config": _config({**BASE, **v}), "images": [[512, 512]], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()
