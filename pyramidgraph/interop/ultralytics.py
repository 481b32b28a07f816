"""ultralytics' YOLOv8 neck (``ultralytics/cfg/models/v8/yolov8.yaml``, layers 10..21).

The fixtures' ``config`` is ``{"yaml": ..., "in_channels": [...]}``: the model yaml and the
widths of the backbone maps the neck reads (layers 4, 6 and 9). ``yaml`` is a file name
(``yolov8n.yaml``; the scale letter n/s/m/l/x picks depth, width and max_channels from
yolov8.yaml's ``scales``, as ultralytics' ``guess_model_scale`` does, and no letter means n;
the ``-seg``/``-pose``/``-obb`` models share the neck) or the yaml's contents as a dict, as
``DetectionModel`` also accepts: then its ``scales[scale]`` (or ``depth_multiple`` and
``width_multiple``) are used, and its head must be yolov8.yaml's. ``in_channels`` must be the
widths ultralytics gives layers 4, 6 and 9 at that scale (yolov8.yaml's, or a mapping's own rows
scaled): its neck convs are built for those, so other widths cannot run and are refused, as are
a scales row that is not three numbers and a width that is not positive; any finite depth builds
(``max(round(3 * depth), 1)`` blocks). The layers between SPPF
and Detect run on those maps and layers 15, 18 and 21 are returned as a tuple. The bundled
``yolov8`` spec is that head; checkpoints keep ultralytics' names (``model.12.cv1.conv.weight``)
and each layer maps to one spec module by prefix.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, register_reference
from .ultralytics_yaml import BASE_MODULES, activation_of

LAYERS = {
    12: "P4_td.post0",  # C2f after cat(up(SPPF), layer 6)
    15: "P3_out.post0",  # C2f after cat(up(12), layer 4)
    16: "P4_down.from_P3_out",  # Conv 3x3/2
    18: "P4_out.post0",  # C2f after cat(16, 12)
    19: "P5_down.from_P4_out",  # Conv 3x3/2
    21: "P5_out.post0",  # C2f after cat(19, SPPF)
}
"""Ultralytics layer index -> the yolov8 spec's module path; 10, 11, 13, 14, 17 and 20
(Upsample, Concat) hold no parameters."""

HEAD = {"layer_indices": list(range(10, 22)), "input_layers": [4, 6, 9], "output_layers": [15, 18, 21]}
"""The part of the model the neck is, as the fixtures record it."""


NECK = [
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
    [[-1, 6], 1, "Concat", [1]],
    [-1, 3, "C2f", [512]],
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
    [[-1, 4], 1, "Concat", [1]],
    [-1, 3, "C2f", [256]],
    [-1, 1, "Conv", [256, 3, 2]],
    [[-1, 12], 1, "Concat", [1]],
    [-1, 3, "C2f", [512]],
    [-1, 1, "Conv", [512, 3, 2]],
    [[-1, 9], 1, "Concat", [1]],
    [-1, 3, "C2f", [1024]],
]
"""yolov8.yaml's ``head`` without its last line (Detect, Segment, Pose...): what the spec is."""

SCALES = ("n", "s", "m", "l", "x")


def _fail(message: str) -> Exception:
    return ConversionError(YOLOv8Neck.source, message)


def _scale_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """Spec parameters that set the model scale."""
    model = config.get("yaml", "yolov8.yaml")
    if isinstance(model, Mapping):
        head = [list(layer) for layer in model.get("head", [])][: len(NECK)]
        if _plain(head) != _plain(NECK):
            raise _fail("the yaml's head is not yolov8.yaml's (layers 10..21); only that neck is reproduced")
        scales = model.get("scales")
        if scales:
            scale = model.get("scale") or next(iter(scales))
            if scale not in scales:
                raise _fail(f"scale '{scale}' is not among the yaml's scales ({', '.join(scales)})")
            triple = scales[scale]
            if not (isinstance(triple, (list, tuple)) and len(triple) == 3 and all(_number(v) for v in triple)):
                raise _fail(f"scale '{scale}' is [depth, width, max_channels], three numbers, not {triple!r}")
            depth, width, max_channels = triple
        else:
            depth, width, max_channels = model.get("depth_multiple", 1.0), model.get("width_multiple", 1.0), 65536
        if not (_number(depth) and _number(width) and width > 0 and max_channels > 0):
            raise _fail(f"depth {depth!r} must be a finite number, width {width!r} and max_channels {max_channels!r} positive (a zero width builds 0-channel convs, which torch refuses)")
        params = {"depth": float(depth), "width": float(width), "max_channels": math.ceil(max_channels)}
        if model.get("activation"):
            params["act"] = _activation(str(model["activation"]))
        return params
    if config.get("scale") is not None:
        scale = str(config["scale"])
    else:
        stem = str(model).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        match = re.fullmatch(r"yolov8([nslmx]?)(-seg|-pose|-obb)?", stem)
        if match is None:
            raise _fail(f"yaml '{model}' is not a YOLOv8 model with yolov8.yaml's neck (yolov8[nslmx].yaml, -seg, -pose, -obb); P2/P6, cls and other variants are other graphs")
        scale = match.group(1) or "n"
    if scale not in SCALES:
        raise _fail(f"unknown YOLOv8 scale '{scale}'; yolov8.yaml has {', '.join(SCALES)}")
    return {"scale": scale}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


YOLOV8_SCALES = {"n": (0.25, 1024), "s": (0.5, 1024), "m": (0.75, 768), "l": (1.0, 512), "x": (1.25, 512)}
"""yolov8.yaml's ``scales``: width multiple and max_channels per letter."""

BACKBONE_OUTPUTS = {4: 256, 6: 512, 9: 1024}
"""yolov8.yaml's layers the neck reads and their unscaled widths (C2f, C2f, SPPF)."""


def _backbone_widths(model: Any, params: Mapping[str, Any]) -> list[int] | None:
    """The widths ultralytics gives layers 4, 6 and 9 (``make_divisible(min(c, max_channels) * width, 8)``):
    yolov8.yaml's for a file name; for a mapping, its own rows' when they are modules whose first
    argument is their width (``None`` when not: then the widths are the caller's to know)."""
    if isinstance(model, Mapping):
        width, cap = params["width"], params["max_channels"]
        rows = list(model.get("backbone") or [])
        try:
            channels = [rows[j][3][0] for j in BACKBONE_OUTPUTS]
            if any(rows[j][2] not in BASE_MODULES for j in BACKBONE_OUTPUTS) or not all(_number(c) for c in channels):
                return None
        except (IndexError, KeyError, TypeError):
            return None
    else:
        (width, cap), channels = YOLOV8_SCALES[params["scale"]], list(BACKBONE_OUTPUTS.values())
    return [math.ceil(min(c, cap) * width / 8) * 8 for c in channels]


def _activation(text: str) -> str:
    """The yaml's ``activation`` (``nn.ReLU()``, which replaces every Conv's SiLU) -> spec ``act``, as the importer reads it."""
    try:
        return activation_of(text)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _plain(value: Any) -> Any:
    """Lists all the way down (a yaml loaded elsewhere may hold tuples), and ``None`` for
    ``"None"`` (yolov8.yaml writes ``None``, which YAML reads as a string)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return None if value == "None" else value


@register_reference
class YOLOv8Neck(Reference):
    source = "ultralytics.yolov8-neck"

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        params = _scale_params(config)
        for key, expected in HEAD.items():
            if key in config and list(config[key]) != expected:
                raise _fail(f"{key} {list(config[key])} differ from yolov8.yaml's head ({expected})")
        in_channels = [int(c) for c in config["in_channels"]]
        if len(in_channels) != 3:
            raise _fail(f"the YOLOv8 neck reads three maps (P3, P4, P5), got in_channels {in_channels}")
        expected = _backbone_widths(config.get("yaml", "yolov8.yaml"), params)
        if expected is not None and in_channels != expected:
            raise _fail(f"in_channels {in_channels} are not the widths of layers 4, 6 and 9 at this scale ({expected}); ultralytics builds the neck's convs for those widths, so others cannot run")
        key_map = KeyMap()
        for index, ours in LAYERS.items():
            key_map.add(f"model.{index}", ours)
        params["upsample_by"] = "scale"
        return Conversion("yolov8", in_channels, params, key_map, return_type="tuple")
