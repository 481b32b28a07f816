"""DAMO-YOLO's ``GiraffeNeckV2`` (RepGFPN, the authors' code): every constructor argument, at
strides 4.., 8.. and 16...

The config is the constructor's keyword arguments (``strides`` only places the three inputs).
Tiny widths. Images: a non-square one where every map is exactly half the next (the coarsest
1x2) and one whose maps do not halve exactly (there the reference's x2 upsampling and stride-2
convs no longer meet the neighbouring maps and its concatenations fail, and so must ours).
"""

from __future__ import annotations

from .afpn import interned
from .grid import case_id, one_at_a_time, spread

SOURCE = "damoyolo.GiraffeNeckV2"

BLOCK = "BasicBlock_3x3_Reverse"
BASE = {"first_stride": 8, "depth": 1.0, "hidden_ratio": 1.0, "in_channels": [4, 6, 8], "out_channels": [4, 6, 8], "block_name": BLOCK}
OPTIONS = {
    "first_stride": [4, 8, 16],
    "depth": [1.0, 0.33, 0.5, 1.5, 0.16, 0.0],
    "hidden_ratio": [1.0, 0.5, 0.75, 2.0],
    "in_channels": [[4, 6, 8], [8, 8, 8], [8, 6, 4], [5, 7, 9]],
    "out_channels": [[4, 6, 8], [8, 8, 8], [2, 4, 6], [5, 7, 9]],
    "act": ["relu", "lrelu", "swish", "identity"],
    "depthwise": [False],
    "in_features": [[1, 2, 3]],
}
COMBINED = {k: OPTIONS[k] for k in ("first_stride", "depth", "hidden_ratio", "out_channels", "act")}
OPTIONS["act"] = OPTIONS["act"] + ["hardsigmoid"]  # get_activation's last name (one case, outside the combinations)
# Not swept: ``depthwise: true`` with blocks (the peers builder stubs ``damo.utils.make_divisible``,
# which the MobileV3Block of those blocks calls, so the reference cannot be run here), and what
# builds but cannot run anywhere (``spp: true`` or ``act: null`` with blocks, a stage whose
# convolutions come out empty): the converter refuses those (tests/test_damoyolo.py).
EXTRA = [  # what only runs together: options the code reads only when the stages have blocks
    {"depth": 0.0, "spp": True},
    {"depth": 0.0, "block_name": "BasicBlock"},
    {"depth": 0.0, "hidden_ratio": 0.0},
    {"depth": 0.0, "depthwise": True},
    {"depth": 0.0, "act": None},
    {"spp": False},
]
REFUSED = [  # configurations the reference's constructor rejects, and the words ours must use
    ({"block_name": "BasicBlock"}, "raises NotImplementedError"),
    ({"block_name": "RepVGGBlock", "depth": 0.33}, "raises NotImplementedError"),
    ({"act": "gelu"}, "Unsupported act type"),
    ({"act": "SiLU"}, "Unsupported act type"),
]


def _images(v: dict) -> list[list[int]]:
    first = v["first_stride"]
    return [[4 * first, 8 * first], [9 * first, 4 * first]]


def _config(v: dict) -> dict:
    config = {k: x for k, x in v.items() if k != "first_stride"}
    config["strides"] = [v["first_stride"] * 2**i for i in range(3)]
    return config


def _runs(v: dict) -> bool:
    """Whether the reference's forward can run the combination: every block's hidden width is at least 1."""
    if round(3 * v["depth"]) == 0:
        return True
    widths = [v["in_channels"][1], v["in_channels"][2], *v["out_channels"]]
    return all(int((w - w // 2) * v["hidden_ratio"]) >= 1 for w in widths)


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        changed = {k: x for k, x in v.items() if BASE.get(k, "-") != x} or {"base": 1}
        cases.append({"id": case_id("giraffe", changed), "config": _config(v), "images": _images(v)})
    for extra in EXTRA:
        v = {**BASE, **extra}
        cases.append({"id": case_id("giraffe", extra), "config": _config(v), "images": _images(v)})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 16, "damoyolo") if _runs({**BASE, **c})]
    cases += [{"id": f"giraffe-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    for v, reason in REFUSED:
        cases.append({"id": case_id("giraffe-refused", v), "config": _config({**BASE, **v}), "images": _images(BASE), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def build(config: dict, hw: tuple, batch: int) -> tuple:
    """The peers builder (``record_fetched.damoyolo_giraffe_v2``), its state keys interned."""
    import record_fetched

    return interned(record_fetched.damoyolo_giraffe_v2(config, hw, batch))
