"""RT-DETR's ``HybridEncoder`` (the authors' code): every constructor argument, v1 and v2 key names,
two to four inputs at strides 4.. and 8...

The config is the constructor's keyword arguments, as ``from_reference`` takes them. Tiny widths
(hidden_dim 8, two heads). Images: a non-square one where every map is exactly half the next
(the coarsest 1x2; non-square so the reference's w-major position embedding shows) and one whose
maps do not halve exactly (there the reference's ``scale_factor=2`` upsampling no longer meets
the finer map and it fails, and so must ours).
"""

from __future__ import annotations

from .afpn import interned
from .grid import case_id, one_at_a_time, spread

SOURCE = "rtdetr.HybridEncoder"

WIDTHS = {2: [4, 8], 3: [4, 6, 8], 4: [4, 6, 8, 10]}

BASE = {"levels": 3, "first_stride": 8, "version": "v2", "hidden_dim": 8, "nhead": 2, "dim_feedforward": 16}
OPTIONS = {
    "levels": [2, 3, 4],
    "first_stride": [4, 8],
    "version": ["v1", "v2"],
    "hidden_dim": [8, 16, 12],
    "nhead": [1, 2, 4],
    "dim_feedforward": [4, 16],
    "dropout": [0.0, 0.1],
    "enc_act": ["gelu", "relu", "swish", "leaky_relu", "GELU"],
    "use_encoder_idx": [[2], [1], [0], [0, 2], [-1], [], [2, 2]],
    "num_encoder_layers": [0, 1, 2],
    "pe_temperature": [10000, 7.5],
    "expansion": [1.0, 0.5, 0.75, 2.0],
    "depth_mult": [1.0, 0.33, 0.5, 0.16, 0.0, 1.34],
    "act": ["silu", "relu", "gelu", "leaky_relu", None, "SiLU"],
    "eval_spatial_size": [None, "image"],
}
DEFAULTS = {"dropout": 0.0, "enc_act": "gelu", "num_encoder_layers": 1, "pe_temperature": 10000, "expansion": 1.0, "depth_mult": 1.0, "act": "silu", "eval_spatial_size": None}
"""The constructor's defaults: the base leaves these out (the converter must take them as the reference does)."""
SINGLE = {k: [x for x in values if k not in DEFAULTS or x != DEFAULTS[k]] for k, values in OPTIONS.items()}
COMBINED = {k: OPTIONS[k] for k in ("levels", "first_stride", "version", "nhead", "enc_act", "num_encoder_layers", "expansion", "depth_mult", "act")}
SINGLE["act"] = SINGLE["act"] + ["hardsigmoid"]  # get_activation's last name (one case each, outside the combinations)
SINGLE["enc_act"] = SINGLE["enc_act"] + ["hardsigmoid"]

REFUSED = [  # configurations the reference's constructor rejects, and the words ours must use
    ({"version": "v3"}, "version 'v3'"),
    ({"hidden_dim": 8, "nhead": 3}, "does not divide into nhead 3 heads"),
    ({"act": "mish"}, "get_activation knows"),
    ({"enc_act": "tanh"}, "get_activation knows"),
]


def _images(v: dict) -> list[list[int]]:
    first, top = v["first_stride"], v["first_stride"] * 2 ** (v["levels"] - 1)
    return [[top, 2 * top], [2 * top + first, top]]


def _config(v: dict) -> dict:
    n, first = v["levels"], v["first_stride"]
    config = {"in_channels": WIDTHS[n], "feat_strides": [first * 2**i for i in range(n)]}
    for key in OPTIONS:
        if key in v and key not in ("levels", "first_stride"):
            config[key] = v[key]
    if "use_encoder_idx" not in v:
        config["use_encoder_idx"] = [n - 1]
    if config.get("eval_spatial_size") == "image":
        config["eval_spatial_size"] = _images(v)[0]
    return config


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, SINGLE):
        changed = {k: x for k, x in v.items() if BASE.get(k, "-") != x} or {"base": 1}
        cases.append({"id": case_id("rt", changed), "config": _config(v), "images": _images(v)})
    mixes = [{**BASE, **c} for c in spread(COMBINED, 12, "rtdetr")]
    cases += [{"id": f"rt-mix{k:02d}", "config": _config(v), "images": _images(v)} for k, v in enumerate(mixes)]
    for v, reason in REFUSED:
        cases.append({"id": case_id("rt-refused", v), "config": _config({**BASE, **v}), "images": _images(BASE), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def build(config: dict, hw: tuple, batch: int) -> tuple:
    """The peers builder (``record_fetched.rtdetr_hybrid_encoder``), its state keys interned."""
    import record_fetched

    return interned(record_fetched.rtdetr_hybrid_encoder(config, hw, batch))
