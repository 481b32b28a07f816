"""ultralytics 8.4's YOLOv8 neck (layers 10..21 of yolov8.yaml) under the old source ``ultralytics.yolov8-neck``.

The config is what that source takes: ``yaml`` (a file name ultralytics resolves, or the yaml's
contents as a mapping, as ``DetectionModel`` accepts) and ``in_channels`` (the widths of layers
4, 6 and 9, the maps the neck reads: the model's own, which the peers' ``ultralytics_neck``
builder feeds). The builder adds the layer indices (``DERIVED_CONFIG``), which ours checks.

Named files: yolov8n (and yolov8n-seg: the -seg / -pose / -obb files share the neck; and the bare
``yolov8.yaml``: no letter, the first scale) at their real widths. Mappings: yolov8.yaml's rows
with small ``scales`` at every letter (the ``scale`` key picks one), without ``scales`` (the
``depth_multiple`` / ``width_multiple``), with depths and width caps the spec's defaults do not
use, and with an ``activation``.

Images: 32x32 (a multiple of 32: every map halves exactly) and 40x56, where the upsampled maps
are a row or column off the maps they are concatenated with: the reference fails and ours must
refuse those sizes. Not swept: a mapping whose head is not yolov8.yaml's (another source's
graph) and ``in_channels`` other than the model's (the reference builds, then fails on its first
conv: no configuration refusal to compare with).
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml as _yaml

SOURCE = "ultralytics.yolov8-neck"
DERIVED_CONFIG = True

IMAGES = [[32, 32], [40, 56]]
YOLOV8 = _yaml.safe_load((Path(__file__).resolve().parent.parent / "interop" / "data" / "ultralytics" / "yolov8.yaml").read_text(encoding="utf-8"))
"""yolov8.yaml as ultralytics 8.4 ships it (the repository's copy)."""


def width(channels: int, multiple: float, max_channels: float = 1024) -> int:
    """``make_divisible(min(c, max_channels) * width, 8)``."""
    return math.ceil(min(channels, max_channels) * multiple / 8) * 8


def model(scales: dict | None = None, **keys) -> dict:
    """yolov8.yaml's contents with ``scales`` and other top-level keys replaced (``scales=None``: none)."""
    data = {k: v for k, v in YOLOV8.items() if k != "scales"}
    if scales:
        data["scales"] = scales
    return {**data, **keys}


def inputs(multiple: float, max_channels: float = 1024) -> list[int]:
    """Widths of layers 4, 6, 9 (C2f 256, C2f 512, SPPF 1024)."""
    return [width(c, multiple, max_channels) for c in (256, 512, 1024)]


TINY = {"n": [0.33, 0.0625, 1024], "s": [0.33, 0.0625, 1024], "m": [0.67, 0.0625, 768], "l": [1.0, 0.0625, 512], "x": [1.0, 0.078125, 512]}

NAMED = [  # (file, in_channels)
    ("yolov8n.yaml", [64, 128, 256]),
    ("yolov8.yaml", [64, 128, 256]),
    ("yolov8n-seg.yaml", [64, 128, 256]),
]

MAPPINGS = [  # (id, yaml mapping, in_channels)
    *[(f"tiny-{s}", model(TINY, scale=s), inputs(TINY[s][1], TINY[s][2])) for s in TINY],
    ("tiny-noscale-key", model(TINY), inputs(0.0625)),  # no 'scale': the first, n
    ("multiples", model(None, depth_multiple=0.33, width_multiple=0.0625), inputs(0.0625)),
    ("depth0", model({"n": [0.0, 0.0625, 1024]}), inputs(0.0625)),  # round(3 * 0) = 0 -> max(0, 1) = 1 block
    ("maxch64", model({"n": [0.33, 0.25, 64]}), inputs(0.25, 64)),  # every width min(c, 64) * 0.25 = 16
    ("maxch4", model({"n": [0.33, 1.0, 4]}), inputs(1.0, 4)),  # make_divisible(4, 8) = 8
    ("width0.1", model({"n": [0.33, 0.1, 1024]}), inputs(0.1)),  # 25.6 -> 32, 51.2 -> 56, 102.4 -> 104
    ("relu", model(TINY, scale="n", activation="nn.ReLU()"), inputs(0.0625)),
    ("hardswish", model(TINY, scale="s", activation="torch.nn.Hardswish()"), inputs(0.0625)),
    ("leaky", model(TINY, scale="n", activation="nn.LeakyReLU()"), inputs(0.0625)),
]

REFUSED = [  # (id, config, what ours must say): configurations ultralytics cannot build
    ("bad-letter", {"yaml": "yolov8q.yaml", "in_channels": [64, 128, 256]}, "not a YOLOv8 model"),
    ("bad-scale", {"yaml": model(TINY, scale="q"), "in_channels": [16, 32, 64]}, "scale 'q' is not among the yaml's scales"),
    ("short-scale", {"yaml": model({"n": [0.33, 0.25]}), "in_channels": [64, 128, 256]}, "scale 'n' is [depth, width, max_channels]"),
    ("width0", {"yaml": model({"n": [0.33, 0.0, 1024]}), "in_channels": [8, 8, 8]}, "width"),
    ("bad-activation", {"yaml": model(TINY, scale="n", activation="nn.Swish()"), "in_channels": [16, 32, 64]}, "activation 'nn.Swish()' is not supported"),
]


def _cases() -> list[dict]:
    cases = [{"id": name.removesuffix(".yaml"), "config": {"yaml": name, "in_channels": chans}, "images": IMAGES} for name, chans in NAMED]
    cases += [{"id": case_id, "config": {"yaml": data, "in_channels": chans}, "images": IMAGES} for case_id, data, chans in MAPPINGS]
    cases += [{"id": f"refused-{case_id}", "config": config, "images": IMAGES, "reason": reason} for case_id, config, reason in REFUSED]
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


CASES = _cases()


def build(config: dict, hw, batch: int):
    """The peers' builder on a copy of the config (``DetectionModel`` writes ``ch`` into a yaml
    mapping), with ultralytics' process-wide ``Conv.default_act`` put back afterwards (a model
    that fails to build leaves its ``activation`` to every model built after it)."""
    import copy

    import make_fixtures  # the recorder puts ../shared/peers on sys.path
    from ultralytics.nn.modules import Conv

    default = Conv.default_act
    try:
        return make_fixtures.ultralytics_neck(copy.deepcopy(config), hw, batch)
    finally:
        Conv.default_act = default
