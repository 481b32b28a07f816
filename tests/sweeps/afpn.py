"""The AFPN authors' mmdetection neck (``afpn.AFPN``): its two arguments, at strides 4..32 and 8..64.

The constructor takes ``in_channels`` (four widths; the fusions work at ``width // 8``) and
``out_channels``; everything else is hard-coded. ``strides`` only places the four maps (the
builder makes the inputs from it). Images: a multiple of 32 (64 at 8..64: every map exactly
twice the next, the coarsest 1x1) and one that is not (44x72, 88x144): there the reference's scale-factor
upsampling no longer meets the next map and it fails, and so must ours.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "afpn.AFPN"

STRIDES = {2: [2, 4, 8, 16], 4: [4, 8, 16, 32], 8: [8, 16, 32, 64]}
IMAGES = {2: [[16, 16], [22, 36]], 4: [[32, 32], [44, 72]], 8: [[64, 64], [88, 144]]}

BASE = {"in_channels": [8, 16, 16, 32], "out_channels": 4, "first_stride": 4}
OPTIONS = {
    "in_channels": [[8, 8, 8, 8], [8, 16, 32, 64], [16, 16, 16, 16], [12, 20, 36, 68], [32, 16, 16, 8], [8, 16, 16, 32, 40]],
    "out_channels": [1, 4, 7],
    "first_stride": [2, 4, 8],
}
COMBINED = {"in_channels": OPTIONS["in_channels"][:5], "out_channels": [1, 4, 7], "first_stride": [4, 8]}

REFUSED = [  # configurations the reference's constructor rejects, and the words ours must use
    ({"in_channels": [8, 16, 16]}, "in_channels must list 4 widths"),
    ({"in_channels": [8, 16]}, "in_channels must list 4 widths"),
    ({"in_channels": [4, 16, 16, 32]}, "must be an integer of at least 8"),
    ({"in_channels": [8, 16, 7, 32]}, "must be an integer of at least 8"),
]


def _config(v: dict) -> dict:
    return {"in_channels": v["in_channels"], "out_channels": v["out_channels"], "strides": STRIDES[v["first_stride"]]}


def _cases() -> list[dict]:
    cases = [{"id": case_id("afpn", {k: x for k, x in v.items() if BASE[k] != x} or {"base": 1}), "config": _config(v), "images": IMAGES[v["first_stride"]]} for v in one_at_a_time(BASE, OPTIONS)]
    mixes = [{**BASE, **c} for c in spread(COMBINED, 4, "afpn")]
    cases += [{"id": f"afpn-mix{k:02d}", "config": _config(v), "images": IMAGES[v["first_stride"]]} for k, v in enumerate(mixes)]
    for v, reason in REFUSED:
        cases.append({"id": case_id("afpn-refused", v), "config": _config({**BASE, **v}), "images": IMAGES[4], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def interned(built: tuple) -> tuple:
    """A peers builder's result whose module names its state with interned strings: the
    recording repeats the same few hundred keys in every case, and pickle stores an interned
    string once (then refers to it), which keeps a data file within its budget."""
    import sys

    module, original = built[0], built[0].state_dict

    def state_dict(*args, **kwargs):
        state = original(*args, **kwargs)
        return type(state)((sys.intern(key), value) for key, value in state.items())

    module.state_dict = state_dict
    return built


def build(config: dict, hw: tuple, batch: int) -> tuple:
    """The peers builder (``record_fetched.afpn_afpn``), its state keys interned (``interned``)."""
    import record_fetched

    return interned(record_fetched.afpn_afpn(config, hw, batch))
