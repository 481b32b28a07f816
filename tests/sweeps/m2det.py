"""M2Det's MLFPN (the authors' code): its architecture arguments and the widths M2Det hard-codes.

The config is the peers wrapper's (``planes``, ``num_levels``, ``num_scales``, ``smooth``,
``sfam``, the two inputs' widths ``shallow_in``/``deep_in``, FFMv1's ``shallow_out``/``deep_out``,
``strides``). Images per ``num_scales``: the smallest where the TUMs' encoder still has a 3x3
map before its unpadded conv (the shallow map ``3 * 2 ** (num_scales - 2)``), made non-square
so the shallow map's width no longer halves exactly inside the TUMs (the decoder's ``size``
interpolation absorbs that, as legacy nearest does), and one whose shallow map is odd: FFMv1
doubles the deep map by scale, which then no longer meets the shallow one, so the reference
fails there, and so must ours.

Not swept: what the wrapper builds but can run at no size (its forward fails: an odd ``planes``
with several levels or SFAM, SFAM squeezing ``planes * num_levels // 16`` to 0 channels,
``num_scales`` 1); the converter refuses those, with the reason (tests/test_m2det.py).
"""

from __future__ import annotations

from .afpn import interned
from .grid import case_id, one_at_a_time, spread

SOURCE = "m2det.MLFPN"

BASE = {"planes": 8, "num_levels": 2, "num_scales": 3, "smooth": True, "sfam": True, "shallow_in": 6, "deep_in": 8, "shallow_out": 4, "deep_out": 6, "strides": [8, 16]}
OPTIONS = {
    "planes": [8, 16],
    "num_levels": [1, 2, 3],
    "num_scales": [2, 3, 4, 5],
    "smooth": [True, False],
    "sfam": [True, False],
    "shallow_in": [6, 3],
    "deep_in": [8, 5],
    "shallow_out": [4, 1, 7],
    "deep_out": [6, 2],
    "strides": [[8, 16], [16, 32], [4, 8]],
}
COMBINED = {k: OPTIONS[k] for k in ("planes", "num_levels", "num_scales", "smooth", "sfam", "strides")}
EXTRA = [  # an odd planes runs with one level and no SFAM (the TUMs are then planes - 1 wide)
    {"planes": 7, "num_levels": 1, "sfam": False},
    {"planes": 9, "num_levels": 1, "sfam": False, "smooth": False},
    {"planes": 16, "num_levels": 1, "sfam": True},
]


def _images(v: dict) -> list[list[int]]:
    shallow, stride = 3 * 2 ** max(v["num_scales"] - 2, 0) if v["num_scales"] > 2 else 4, v["strides"][0]
    return [[stride * shallow, stride * (shallow + 2)], [stride * (shallow + 1), stride * shallow]]


def _runs(v: dict) -> bool:
    """What the reference's forward can run (the converter refuses the rest, see tests/test_m2det.py):
    an even planes unless one level without SFAM, and SFAM's squeeze ``planes * num_levels // 16`` >= 1."""
    if v["planes"] % 2 and (v["num_levels"] > 1 or v["sfam"]):
        return False
    return not v["sfam"] or v["planes"] * v["num_levels"] // 16 >= 1


def _cases() -> list[dict]:
    cases = []
    for v in [*one_at_a_time(BASE, OPTIONS), *({**BASE, **e} for e in EXTRA)]:
        if not _runs(v):
            v = {**v, "sfam": False}
        changed = {k: x for k, x in v.items() if BASE.get(k, "-") != x} or {"base": 1}
        cases.append({"id": case_id("m2det", changed), "config": dict(v), "images": _images(v)})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 6, "m2det") if _runs({**BASE, **c})]
    cases += [{"id": f"m2det-mix{k:02d}", "config": v, "images": _images(v)} for k, v in enumerate(mixes)]
    for key in ("planes", "num_scales"):  # the wrapper has no defaults: its builder fails without them
        config = {k: x for k, x in BASE.items() if k != key}
        cases.append({"id": f"m2det-refused-no_{key}", "config": config, "images": _images(BASE), "reason": f"the config has no '{key}'"})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def build(config: dict, hw: tuple, batch: int) -> tuple:
    """The peers builder (``record_fetched.m2det_mlfpn``), its state keys interned, and each
    tensor named once: M2Det repeats one module under several names (``leach.<i>``, SFAM's
    ``fc<k>.<j>``), and the recorder draws every norm statistic by its name, so the repeats'
    draws would overwrite the first one's in the one shared tensor and the recording would not
    be what ran. The repeats are left out (the converter takes a state_dict without them; with
    them it checks they equal the first, tests/test_m2det.py)."""
    import record_fetched

    built = interned(record_fetched.m2det_mlfpn(config, hw, batch))
    module, original = built[0], built[0].state_dict

    def state_dict(*args, **kwargs):
        state, seen = original(*args, **kwargs), set()
        for key in list(state):
            if id(state[key]) in seen:
                del state[key]
            else:
                seen.add(id(state[key]))
        return state

    module.state_dict = state_dict
    return built
