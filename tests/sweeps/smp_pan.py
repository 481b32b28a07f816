"""segmentation-models-pytorch 0.6.0's ``PANDecoder``: encoder depths, input strides, modes, widths.

``PANDecoder(encoder_channels, encoder_depth, decoder_channels, interpolation_mode)`` reads
``features[2:]``: an FPA on the deepest, then ``gau3`` (depth 5), ``gau2`` (4 and up), ``gau1``.
``strides`` (the fixtures' key, not smp's) are the inputs' strides: at output stride 16 the two
deepest maps have one size (``[4, 8, 16, 16]``), at 32 they halve; from stride 8 (``[8, 16, ...]``)
too. Every GAU interpolates to the finer map's size and the FPA's pools floor, so any image runs
whose deepest map is at least 8x8 (the FPA's three 2x2 pools); below that smp fails in its
forward and ours must refuse the sizes. The FPA's maps make the outputs large (a 64x64 map at
stride 4 for a stride-32 encoder), so most cases are depth 3 (all options), and the deeper
ones run one image that does not halve exactly and one too small. From depth 6 (``gau3`` is built
at depth 5 only) or with more widths than ``encoder_depth + 1``, some maps are never read.

``interpolation_mode`` values ``F.interpolate`` rejects for 4-D maps (trilinear...) build but
cannot run at any size: ``build`` runs the decoder once on inputs large enough and reports that as
the reference's refusal.
"""

from __future__ import annotations

from .grid import case_id, one_at_a_time, spread

SOURCE = "smp.PANDecoder"

WIDTHS = [3, 5, 6, 8, 10, 12]  # encoder_channels: the image, stride 2, then the maps PAN reads
LAYOUTS = {  # name -> input strides (three to five encoder stages: depth 3..5)
    "s4": {3: [4, 8], 4: [4, 8, 16], 5: [4, 8, 16, 16]},
    "s4x32": {3: [4, 8], 4: [4, 8, 16], 5: [4, 8, 16, 32]},
    "s8": {3: [8, 16], 4: [8, 16, 32], 5: [8, 16, 32, 32]},
    "s8x64": {3: [8, 16], 4: [8, 16, 32], 5: [8, 16, 32, 64]},
}

BASE = {"depth": 3, "layout": "s4", "decoder_channels": 2}
OPTIONS = {
    "layout": ["s4", "s8"],
    "decoder_channels": [1, 2, 4],
    "interpolation_mode": ["bilinear", "nearest", "bicubic", "area", "nearest-exact"],
    "widths": ["b"],
}
COMBINED = {"layout": ["s4", "s8"], "decoder_channels": [1, 2, 3], "interpolation_mode": ["bilinear", "nearest", "bicubic", "area", "nearest-exact"], "widths": ["a", "b"]}
DEEP = [  # (depth, layout, mode): one image that does not halve, one too small for the FPA
    (4, "s4", "bilinear"), (4, "s8", "nearest"), (4, "s4", "area"),
    (5, "s4", "bilinear"), (5, "s4", "bicubic"), (5, "s8", "nearest-exact"), (5, "s4x32", "bilinear"), (5, "s8x64", "nearest"),
]

SKIPPING = [  # (depth, input strides): maps smp never reads (gau3 exists at depth 5 only; more widths than depth + 1)
    (6, [4, 8, 16, 16, 16]), (7, [4, 8, 16, 16, 16, 16]), (3, [4, 8, 16]), (4, [4, 8, 16, 16]), (6, [8, 16, 32, 32, 32]),
]

REFUSED = [  # configurations smp rejects (or cannot run at all), and the words ours must use
    ({"encoder_depth": 2, "encoder_channels": [3, 5, 6]}, "cannot be less than 3"),
    ({"encoder_depth": 5, "encoder_channels": [3, 5, 6, 8]}, "gau3 reads features[2:][2]"),
    ({"encoder_depth": 4, "encoder_channels": [3, 5, 6]}, "gau2 reads features[2:][1]"),
    ({"encoder_depth": "3"}, "encoder_depth must be"),
    ({"decoder_channels": 0}, "decoder_channels must be a positive integer"),
    ({"upscale_mode": "nearest"}, "upscale_mode"),
    ({"interpolation_mode": "trilinear"}, "interpolation_mode 'trilinear'"),
    ({"interpolation_mode": "linear"}, "interpolation_mode 'linear'"),
]


def _images(depth: int, strides: list[int], deep: bool) -> list[list[int]]:
    """Images whose deepest map is 8 (exact halving) and 9-10 (not); for the deep cases the
    second is one too small (the deepest map 7 high)."""
    top = strides[-1]
    odd = [8 * top + top // 2, 9 * top + 3]
    if deep:
        return [odd, [7 * top, 8 * top]]
    return [[8 * top, 8 * top], odd]


def _config(v: dict) -> dict:
    depth = v["depth"]
    strides = LAYOUTS[v["layout"]][depth]
    widths = WIDTHS if v.get("widths", "a") == "a" else [3, 4, 9, 7, 5, 11]
    config = {"encoder_channels": widths[: depth + 1], "encoder_depth": depth, "decoder_channels": v["decoder_channels"]}
    if "interpolation_mode" in v:
        config["interpolation_mode"] = v["interpolation_mode"]
    config["strides"] = strides
    return config


def _short(v: dict) -> dict:
    return {k: x for k, x in v.items() if k not in BASE or BASE[k] != x} or {"base": 1}


def _cases() -> list[dict]:
    cases = []
    for v in one_at_a_time(BASE, OPTIONS):
        cases.append({"id": case_id("pan", _short(v)), "config": _config(v), "images": _images(3, LAYOUTS[v["layout"]][3], False)})
    for k, c in enumerate(spread(COMBINED, 16, "smp_pan")):
        v = {**BASE, **c}
        cases.append({"id": f"pan-mix{k:02d}", "config": _config(v), "images": _images(3, LAYOUTS[v["layout"]][3], False)})
    for depth, layout, mode in DEEP:
        v = {**BASE, "depth": depth, "layout": layout, "interpolation_mode": mode, "decoder_channels": 1}
        cases.append({"id": case_id("pan", _short(v)), "config": _config(v), "images": _images(depth, LAYOUTS[layout][depth], True)})
    for depth, strides in SKIPPING:
        config = {"encoder_channels": (WIDTHS + [7, 9])[: len(strides) + 2], "encoder_depth": depth, "decoder_channels": 1, "strides": strides}
        cases.append({"id": case_id("pan-skip", {"depth": depth, "strides": strides}), "config": config, "images": _images(depth, strides, True)})
    for change, reason in REFUSED:
        config = {**_config(BASE), **change}
        cases.append({"id": case_id("pan-refused", change), "config": config, "images": [[64, 64]], "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


def build(config, hw, batch):
    """The peers' builder; then one forward on inputs large enough for the FPA: a decoder that
    fails there fails at every size."""
    import make_fixtures
    import torch

    built = make_fixtures.smp_pan_decoder(config, hw, batch)
    module, _, _, call = built
    big = 8 * max(config["strides"])
    trial = [torch.zeros(1, c, -(-big // s), -(-big // s)) for c, s in zip(config["encoder_channels"][2:], config["strides"])]
    module.eval()
    try:
        with torch.no_grad():
            call(module, trial)
    except Exception as exc:  # noqa: BLE001 - reported as the reference's refusal
        raise RuntimeError(f"smp builds it but cannot run it at any size: {type(exc).__name__}: {exc}") from exc
    return built


CASES = _cases()
