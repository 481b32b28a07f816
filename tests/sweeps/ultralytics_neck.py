"""ultralytics 8.4's model yamls: the neck of every detection family, at several scale letters, with ``yaml_overrides``.

Each case is a model yaml by file name (``yolo11m.yaml``: ultralytics reads ``yolo11.yaml`` at
scale m) with ``yaml_overrides`` (top-level yaml keys replaced before ``parse_model``), built by
the peers' ``ultralytics_neck_general`` (through ``build``, which only keeps ultralytics'
process-wide default activation from leaking between cases): the whole ``DetectionModel`` (or
``RTDETRDetectionModel``) is built, its backbone run on a zero image of the case's size to give
the neck's input shapes, and the head rows but the last run on random maps of those shapes. Its
derived config (layer indices, the measured ``in_channels``, ``layer_types``) is what ours is
given (``DERIVED_CONFIG``), with the yaml as the path of the repository's copy (``ours``: the
suite runs without ultralytics).

Families: v3 (spp, tiny), v5 (p6), v6, v8 (p2, p6, ghost), v9c (ADown, RepNCSPELAN4; the AConv
files t/s/m are left to the structural test: their fixed hidden widths make big cases), v10, 11, 12, 26 (obb, sem), RT-DETR; letters n/s/m/l (C3k2's
``c3k`` at m/l/x). Overrides: depth 0 (one block), width caps, widths that round up, the ``scale``
key, no scales (the multiples), multiples that scales override, every activation spelling. The
task variants (-seg, -pose...) share their family's neck and are not repeated here.
Widths: every family's ``scales`` are replaced by the same letters at a small width (``TINY``)
so the recording stays small (each case stores its state_dict's key list).

Images: 32x32 (ultralytics' rule: a multiple of the largest stride, every map halves exactly;
64x64 for the P6 models) and 40x56, which is not: the backbone's maps are ``ceil`` halves, an
upsampled map is then one row or column off the map it is concatenated with and the reference
fails, so ours must refuse those sizes.

Not swept: ``yolov8-world`` / ``-worldv2`` (their ``C2fAttn`` rows need a text guide: the reference
builds them, but its neck cannot run on maps alone; ours refuses them at conversion, see
tests/interop/test_ultralytics_neck.py), the ``yoloe-*`` files (the peers' builder makes a
``DetectionModel``, whose stride probe fails on their text-prompted heads; their necks are
yolov8/11/26's rows), and the classification yamls (no neck).
"""

from __future__ import annotations

from pathlib import Path

SOURCE = "ultralytics.neck"
DERIVED_CONFIG = True

YAMLS = Path(__file__).resolve().parent.parent / "interop" / "data" / "ultralytics"
"""The repository's copies of ultralytics' model yamls."""

IMAGES = [[32, 32], [40, 56]]
IMAGES_P6 = [[64, 64], [72, 56]]
DEPTHS = {"n": 0.33, "s": 0.33, "m": 0.67, "l": 1.0, "x": 1.0}


def tiny(width: float, letters: str = "nsmlx", max_channels: int = 1024) -> dict:
    """``scales`` with the letters' usual depths at ``width`` (x a little wider)."""
    return {letter: [DEPTHS[letter], width * (1.25 if letter == "x" else 1.0), max_channels] for letter in letters}


W_PLAIN = 0.0625
"""Width of families without attention: 256 -> 16 channels."""
W_ATTN = 0.125
"""Width of families with C2PSA / PSA in the backbone (the recording's size; they build narrower too)."""
W_AREA = 0.25
"""YOLO12: A2C2f asserts its hidden width (half its output) is a multiple of 32, so its narrowest 256-wide row needs 0.25."""

LETTERED = [  # (file as ultralytics names it, width, P6 images?): the letter in the name picks the scale of the family's table
    ("yolov5n.yaml", W_PLAIN, False), ("yolov5s-p6.yaml", W_PLAIN, True), ("yolov6n.yaml", W_PLAIN, False),
    ("yolov8n.yaml", W_PLAIN, False), ("yolov8s-p2.yaml", W_PLAIN, False), ("yolov8n-p6.yaml", W_PLAIN, True),
    ("yolov8n-ghost.yaml", W_PLAIN, False),
    ("yolo11n.yaml", W_ATTN, False), ("yolo11m.yaml", W_ATTN, False),
    ("yolo12n.yaml", W_AREA, False),
    ("yolo26n.yaml", W_ATTN, False), ("yolo26m-obb.yaml", W_ATTN, False), ("yolo26s-sem.yaml", W_ATTN, False),
]

SINGLE_SCALE = [  # files that are one scale each (yolov10*, rtdetr-*): their one letter at a small width
    ("yolov10n.yaml", "n", 0.33, W_ATTN),
    ("rtdetr-l.yaml", "l", 1.0, 0.25),
]

UNSCALED = [  # files without scales: width_multiple / depth_multiple
    ("yolov3-spp.yaml", 0.0625, 1.0), ("yolov3-tiny.yaml", 0.0625, 1.0),
    ("yolov9c.yaml", 0.0625, 1.0),
]

V8_TINY = {"scales": tiny(W_PLAIN)}
OVERRIDES = [  # (id, yaml, overrides): what yaml_overrides change, on yolov8 (C2f) mostly
    ("v8-nodepth", "yolov8n.yaml", {"scales": {"n": [0.0, W_PLAIN, 1024]}}),  # round(3 * 0) = 0 -> max(0, 1): one block each
    ("v8-maxch64", "yolov8n.yaml", {"scales": {"n": [0.33, 0.25, 64]}}),  # the cap: every width min(c, 64) * 0.25 = 16
    ("v8-width0.1", "yolov8n.yaml", {"scales": {"n": [0.33, 0.1, 100]}}),  # make_divisible(25.6, 8) = 32, 100 * 0.1 -> 16
    ("v8-scale-key", "yolov8.yaml", {**V8_TINY, "scale": "s"}),  # the 'scale' key picks the letter
    ("v8-noletter", "yolov8.yaml", V8_TINY),  # no letter: the first scale, n
    ("v8-no-scales", "yolov8n.yaml", {"scales": {}, "width_multiple": W_PLAIN, "depth_multiple": 0.33}),  # no scales: the multiples
    ("v8-multiples-ignored", "yolov8n.yaml", {**V8_TINY, "width_multiple": 4.0, "depth_multiple": 3.0}),  # scales win over the multiples
    ("v8-torch-gelu", "yolov8n.yaml", {**V8_TINY, "activation": "torch.nn.GELU()"}),
    ("v8-leaky", "yolov8n.yaml", {**V8_TINY, "activation": "nn.LeakyReLU()"}),
    ("v8-relu6", "yolov8n.yaml", {**V8_TINY, "activation": "nn.ReLU6(inplace=True)"}),
    ("v6-silu", "yolov6n.yaml", {"scales": tiny(W_PLAIN), "activation": "nn.SiLU()"}),  # yolov6.yaml's ReLU replaced
    ("v11-relu-narrow", "yolo11n.yaml", {"scales": {"n": [0.33, W_PLAIN, 1024]}, "activation": "nn.ReLU()"}),  # C2PSA at 32 channels: max(1, c // 64) heads
    ("v3-deep", "yolov3.yaml", {"width_multiple": 0.0625, "depth_multiple": 2.0}),  # yolov3.yaml itself: its 2-repeat row as 4
]

REFUSED = [  # (id, yaml, overrides, what ours must say): configurations ultralytics cannot build
    ("bad-scale", "yolov8.yaml", {**V8_TINY, "scale": "q"}, "scale 'q' is not among the yaml's scales"),
    ("short-scale", "yolov8n.yaml", {"scales": {"n": [0.33, 0.25]}}, "scale 'n' is [depth, width, max_channels]"),
    ("bad-activation", "yolov8n.yaml", {**V8_TINY, "activation": "nn.Swish()"}, "activation 'nn.Swish()' is not supported"),
    ("width0", "yolov8n.yaml", {"scales": {"n": [0.33, 0.0, 1024]}}, "a positive width"),
    ("v12-narrow", "yolo12n.yaml", {"scales": {"n": [0.33, W_ATTN, 1024]}}, "must be a multiple of 32"),
    ("v9e-narrow", "yolov9e.yaml", {"width_multiple": 0.0625}, "CBFuse adds maps of one width"),
]


def _case(case_id: str, yaml: str, overrides: dict, images: list, **extra) -> dict:
    return {"id": case_id, "config": {"yaml": yaml, "yaml_overrides": overrides}, "images": images, **extra}


def _cases() -> list[dict]:
    cases = []
    for name, width, p6 in LETTERED:
        cases.append(_case(name.removesuffix(".yaml"), name, {"scales": tiny(width)}, IMAGES_P6 if p6 else IMAGES))
    for name, letter, depth, width in SINGLE_SCALE:
        cases.append(_case(name.removesuffix(".yaml"), name, {"scales": {letter: [depth, width, 1024]}}, IMAGES))
    for name, width, depth in UNSCALED:
        cases.append(_case(name.removesuffix(".yaml"), name, {"width_multiple": width, "depth_multiple": depth}, IMAGES))
    for case_id, name, overrides in OVERRIDES:
        cases.append(_case(case_id, name, overrides, IMAGES))
    for case_id, name, overrides, reason in REFUSED:
        cases.append(_case(f"refused-{case_id}", name, overrides, IMAGES, reason=reason))
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def build(config: dict, hw, batch: int):
    """The peers' builder, with ultralytics' process-wide ``Conv.default_act`` put back afterwards:
    ``parse_model`` sets it from a yaml's ``activation`` and restores it only when it returns, so a
    model that fails to build would leave its activation to every model built after it."""
    import copy

    import make_fixtures  # the recorder puts ../shared/peers on sys.path
    from ultralytics.nn.modules import Conv

    default = Conv.default_act
    try:
        return make_fixtures.ultralytics_neck_general(copy.deepcopy(config), hw, batch)
    finally:
        Conv.default_act = default


def ours(config: dict) -> dict:
    """The yaml as the path of the repository's copy (ours finds ``yolo11.yaml`` beside ``yolo11m.yaml`` and reads the letter, as ultralytics)."""
    return dict(config, yaml=str(YAMLS / config["yaml"]))
