"""The neck of any ultralytics model YAML as a spec: ``from_reference("ultralytics.neck", {"yaml": ...})``.

Ultralytics describes a model as rows ``[from, repeats, module, args]`` (``backbone:`` then
``head:``); its ``parse_model`` turns them into ``model.0 ... model.N``. The neck is every head row
but the last (Detect, Segment, Pose, OBB, v10Detect or RTDETRDecoder, which reads the neck's
outputs). This module reads the rows as ``parse_model`` does (scales, ``width_multiple``, the
``max_channels`` cap, ``make_divisible(..., 8)``, depth-scaled repeats, ``activation:``, the
letter rules of C3k2 and A2C2f) without importing ultralytics, and writes a spec in one normal
form:

1. a row that changes the level with one input (``nn.Upsample``, ``nn.ConvTranspose2d``, a
   strided ``Conv``, ``ADown``, ``AConv``, ``SCDown``...) whose only reader is a ``Concat`` is the
   op on that concat's edge;
2. a ``Concat`` is a node with ``fuse: concat``; the rows after it that each read only the row
   before (which has no other reader and is not an output) are its ``post`` list;
3. any other row starts a node; a level-changing one is the op on its one edge.

Nodes are named ``L<index of their last row>``, inputs ``C<level>`` and outputs ``P<level>``;
the key map sends ``model.<i>`` to the module of the op row ``i`` became. Each module's
translation is one :class:`RowRule` in :data:`ROWS`; a row no rule covers is refused with its
``file:line:col`` and the module's name.

What is refused is what ultralytics cannot build (issue 13, tests/sweeps/ultralytics_neck.py):
a scale the yaml lacks, a scales row that is not three numbers, a width (or cap) that is not
positive (0-channel convs), an activation it cannot evaluate, ``in_channels`` other than the
widths the backbone rows give the layers the neck reads, and a backbone it fails on even
though only the neck is converted (a ``CBFuse`` summing maps of different widths: YOLOv9-E's
unscaled ``CBLinear`` splits at another width). Any finite depth builds (a repeated row keeps
``max(round(n * depth), 1)`` copies), so depth 0 is accepted.
"""

from __future__ import annotations

import ast
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import Issue, SpecError, did_you_mean
from ..expand import MAX_CHANNELS, MAX_LEVEL
from ..loader import Document, load_document
from .base import Conversion, ConversionError, KeyMap, Reference, refuse_unknown_keys, register_reference

__all__ = ["UltralyticsNeck", "ModelRows", "read_model", "import_neck", "ROWS"]

SOURCE = "ultralytics.neck"
CONFIG_KEYS = ("yaml", "scale", "yaml_overrides", "in_channels", "layer_indices", "input_layers", "output_layers", "layer_types")
MAX_ROWS = 1000
MAX_REPEATS = 64
"""Most copies of one row after the depth multiple (ultralytics' largest models build 9)."""

ACTIVATIONS = {"SiLU": "silu", "ReLU": "relu", "ReLU6": "relu6", "Hardswish": "hardswish", "GELU": "gelu", "Mish": "mish", "Sigmoid": "sigmoid", "Tanh": "tanh", "LeakyReLU": "leaky_relu"}
"""The YAML's ``activation`` (``nn.ReLU()``: every ``Conv``'s activation instead of SiLU) -> spec ``act``."""

HEAD_ENDS = {"Detect", "Segment", "Pose", "OBB", "v10Detect", "RTDETRDecoder", "WorldDetect", "YOLOEDetect", "YOLOESegment", "Segment26", "Pose26", "OBB26", "YOLOESegment26", "Classify", "Depth", "SemanticSegment"}
"""Modules that read the neck's outputs: the last head row, which is not part of the neck."""

TEXT_GUIDED = {"C2fAttn": "text embeddings (YOLO-World's guide input)", "ImagePoolingAttn": "text embeddings (YOLO-World's guide input)"}


def _fail(message: str) -> SpecError:
    return ConversionError(SOURCE, message)


# --- reading the YAML --------------------------------------------------------------------------


def activation_of(text: str) -> str:
    """``nn.ReLU()``, ``torch.nn.SiLU()``... -> the spec's ``act`` name; parsed, never evaluated."""
    match = re.fullmatch(r"\s*(?:torch\.)?(?:nn\.)?(\w+)\(\s*(?:inplace\s*=\s*True)?\s*\)\s*", str(text))
    if match is None or match.group(1) not in ACTIVATIONS:
        raise ValueError(f"activation {text!r} is not supported; use one of {', '.join(f'nn.{name}()' for name in ACTIVATIONS)} without arguments")
    return ACTIVATIONS[match.group(1)]


def _ultralytics_models_dir() -> Path | None:
    """``ultralytics/cfg/models`` of an installed ultralytics, found without importing it."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ultralytics")
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations))) / "cfg" / "models"
    return folder if folder.is_dir() else None


def _unified(path: Path) -> Path:
    """ultralytics' file for a scaled name: ``yolo11n.yaml`` -> ``yolo11.yaml``, ``yolov8s-p2.yaml``
    -> ``yolov8-p2.yaml`` (``yolov8n6`` -> ``yolov8n-p6`` first), as its ``yaml_model_load``."""
    stem = path.stem
    if re.fullmatch(r"yolov[58][nsmlx]6", stem):
        stem = re.sub(r"(\d+)([nslmx])6(.+)?$", r"\1\2-p6\3", stem)
    return path.with_name(re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem) + path.suffix)


def guess_scale(name: str) -> str:
    """The scale letter in a model file's name (``yolo11n`` -> n, ``yolov10b`` -> b), as ultralytics' ``guess_model_scale``; '' if none."""
    match = re.search(r"yolo(e-)?[v]?\d+([nslmxb])", Path(name).stem)
    return match.group(2) if match else ""


def _resolve_path(name: str) -> tuple[Path, str]:
    """The file ``name`` refers to and the scale letter its name implies. A name that is not a
    file here is looked up, as ultralytics does, under its unified name, then in an installed
    ultralytics' ``cfg/models``."""
    path = Path(name)
    scale = guess_scale(path.name)
    candidates = [_unified(path), path]
    if not path.is_absolute() and len(path.parts) == 1:
        models = _ultralytics_models_dir()
        if models is not None:
            for candidate in (_unified(path), path):
                candidates += sorted(models.rglob(candidate.name))
    for candidate in candidates:
        if candidate.is_file():
            return candidate, scale
    raise _fail(f"model yaml '{name}' not found (nor {_unified(path).name}); give a path to the file, its text, or its contents as a mapping")


def read_model(config: Mapping[str, Any]) -> tuple[Document, str]:
    """The model YAML (a :class:`Document` with positions for located errors) and its scale."""
    model = config.get("yaml")
    if model is None:
        raise _fail("the config needs 'yaml': a model yaml's path, its text, or its contents as a mapping")
    scale = ""
    if isinstance(model, Mapping):
        doc = load_document(model, "<yaml>")
    elif isinstance(model, (str, os.PathLike)) and "\n" not in str(model):
        path, scale = _resolve_path(str(model))
        doc = load_document(path, str(model))
    elif isinstance(model, str):
        doc = load_document(model, "<yaml>")
    else:
        raise _fail(f"'yaml' is a path, YAML text or a mapping, not {type(model).__name__}")
    if not isinstance(doc.data, dict):
        raise SpecError([doc.issue((), "a model yaml is a mapping with 'backbone' and 'head'")])
    overrides = config.get("yaml_overrides") or {}
    if not isinstance(overrides, Mapping):
        raise _fail("'yaml_overrides' is a mapping of top-level yaml keys to their values")
    doc.data.update(overrides)
    if config.get("scale") is not None:
        scale = str(config["scale"])
    elif doc.data.get("scale"):
        scale = str(doc.data["scale"])
    return doc, scale


@dataclass
class Row:
    """One YAML row as ``parse_model`` reads it."""

    index: int
    sources: list[int]
    """Absolute layer indices read (ultralytics resolves ``-1`` as ``index - 1``)."""
    repeats: int
    """``n`` after the depth multiple."""
    module: str
    args: list[Any]
    """The row's args with strings literal-evaluated; not yet width-scaled."""
    where: tuple
    """Path in the YAML document (``("head", 3)``), for errors."""
    width: int = 0
    level: int = 0


@dataclass
class ModelRows:
    """A model yaml read: its rows, scaling constants, and every layer's width and level."""

    doc: Document
    rows: list[Row]
    backbone: int
    """Number of backbone rows: head row ``k`` is layer ``backbone + k``."""
    scale: str
    depth: float
    width: float
    max_channels: float
    act: str

    def fail(self, row: Row, message: str) -> SpecError:
        return SpecError([self.doc.issue(row.where, f"layer {row.index} ({row.module}): {message}")])

    def scaled(self, channels: Any, row: Row) -> int:
        """``make_divisible(min(c, max_channels) * width, 8)``: ``parse_model``'s width of a base module."""
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise self.fail(row, f"the first argument is the output width, a positive integer, not {channels!r}")
        width = math.ceil(min(channels, self.max_channels) * self.width / 8) * 8
        if width > MAX_CHANNELS:
            raise self.fail(row, f"{channels} channels at width {self.width} are {width}; a map is at most {MAX_CHANNELS} wide")
        return int(width)


def _literal(value: Any, names: Mapping[str, Any]) -> Any:
    """A string arg as ``parse_model`` reads it: a known name (``nc``), else a Python literal, else itself."""
    if not isinstance(value, str):
        return value
    if value in names:
        return names[value]
    if len(value) > 200:
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


def parse_rows(doc: Document, scale: str) -> ModelRows:
    data = doc.data
    issues: list[Issue] = []
    for section in ("backbone", "head"):
        if not isinstance(data.get(section), list) or not data[section]:
            issues.append(doc.issue((section,) if section in data else (), f"a model yaml needs a non-empty '{section}' list of [from, repeats, module, args] rows"))
    if issues:
        raise SpecError(issues)
    scales = data.get("scales")
    depth, width, max_channels = data.get("depth_multiple", 1.0), data.get("width_multiple", 1.0), math.inf
    if scales:
        if not isinstance(scales, dict):
            raise SpecError([doc.issue(("scales",), "scales maps a letter to [depth, width, max_channels]")])
        if not scale:
            scale = next(iter(scales))
        if scale not in scales:
            raise _fail(f"scale '{scale}' is not among the yaml's scales ({', '.join(map(str, scales))}){did_you_mean(scale, map(str, scales))}")
        triple = scales[scale]
        if not (isinstance(triple, list) and len(triple) == 3 and _finite(triple[0]) and _positive(triple[1]) and _positive(triple[2])):
            raise SpecError([doc.issue(("scales", scale), f"scale '{scale}' is [depth, width, max_channels]: a finite depth and a positive width and max_channels, not {triple!r}")])
        depth, width, max_channels = triple
    # any finite depth builds (a repeated row keeps at least one copy: max(round(n * depth), 1));
    # a width of 0 makes 0-channel convs, which torch refuses
    if not _finite(depth):
        raise SpecError([doc.issue(("depth_multiple",), f"depth_multiple is a finite number, not {depth!r}")])
    if not _positive(width):
        raise SpecError([doc.issue(("width_multiple",), f"width_multiple is a positive number, not {width!r}")])
    act = "silu"
    if data.get("activation"):
        try:
            act = activation_of(data["activation"])
        except ValueError as exc:
            raise SpecError([doc.issue(("activation",), str(exc))]) from None
    names = {"nc": data.get("nc", 80), "None": None}
    rows: list[Row] = []
    entries = [("backbone", k, r) for k, r in enumerate(data["backbone"])] + [("head", k, r) for k, r in enumerate(data["head"])]
    if len(entries) > MAX_ROWS:
        raise _fail(f"the yaml has {len(entries)} rows; at most {MAX_ROWS} are read")
    for index, (section, k, raw) in enumerate(entries):
        where = (section, k)
        if not (isinstance(raw, list) and len(raw) == 4):
            raise SpecError([doc.issue(where, f"layer {index}: a row is [from, repeats, module, args], not {raw!r}")])
        f, n, module, args = raw
        if not isinstance(module, str):
            raise SpecError([doc.issue(where + (2,), f"layer {index}: the module is a name, not {module!r}")])
        froms = [f] if isinstance(f, int) and not isinstance(f, bool) else f
        if not isinstance(froms, list) or not froms or not all(isinstance(j, int) and not isinstance(j, bool) for j in froms):
            raise SpecError([doc.issue(where + (0,), f"layer {index} ({module}): 'from' is a layer index or a list of them, not {f!r}")])
        sources = [index + j if j < 0 else j for j in froms]
        bad = [j for j in sources if not -1 <= j < index or (j == -1 and index > 0)]
        if bad:
            raise SpecError([doc.issue(where + (0,), f"layer {index} ({module}): 'from' {f!r} reads layer {bad[0]}, which is not an earlier layer")])
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_REPEATS:
            raise SpecError([doc.issue(where + (1,), f"layer {index} ({module}): repeats is an integer from 1 to {MAX_REPEATS}, not {n!r}")])
        if not isinstance(args, list):
            raise SpecError([doc.issue(where + (3,), f"layer {index} ({module}): args is a list, not {args!r}")])
        repeats = max(round(n * depth), 1) if n > 1 else n
        if repeats > MAX_REPEATS:
            raise SpecError([doc.issue(where + (1,), f"layer {index} ({module}): {n} repeats at depth {depth} are {repeats}; at most {MAX_REPEATS} are built")])
        name = "nn." + module.removeprefix("torch.").removeprefix("nn.") if module.startswith(("nn.", "torch.nn.")) else module  # torch.nn.X is nn.X
        rows.append(Row(index, sources, repeats, name, [_literal(a, names) for a in args], where))
    return ModelRows(doc, rows, len(data["backbone"]), scale, float(depth), float(width), max_channels, act)


# --- widths and levels of every layer ------------------------------------------------------------

BASE_MODULES = {
    "Classify", "Conv", "ConvTranspose", "GhostConv", "Bottleneck", "GhostBottleneck", "SPP", "SPPF", "C2fPSA", "C2PSA", "DWConv", "Focus", "BottleneckCSP",
    "C1", "C2", "C2f", "C3k2", "RepNCSPELAN4", "ELAN1", "ADown", "AConv", "SPPELAN", "C2fAttn", "C3", "C3TR", "C3Ghost", "nn.ConvTranspose2d", "DWConvTranspose2d",
    "C3x", "RepC3", "PSA", "SCDown", "C2fCIB", "A2C2f",
}
"""Modules whose first argument is their output width, scaled by the width multiple (``parse_model``'s ``base_modules``)."""

REPEAT_MODULES = {"BottleneckCSP", "C1", "C2", "C2f", "C3k2", "C2fAttn", "C3", "C3TR", "C3Ghost", "C3x", "RepC3", "C2fPSA", "C2fCIB", "C2PSA", "A2C2f"}
"""Modules that take the repeat count as their third argument instead of being repeated (``repeat_modules``)."""


def _stride_arg(row: Row, position: int, default: int = 1) -> int:
    value = row.args[position] if len(row.args) > position else default
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _log2(model: ModelRows, row: Row, factor: Any, what: str) -> int:
    if not _positive(factor) or factor < 1 or 2 ** round(math.log2(factor)) != factor:
        raise model.fail(row, f"{what} {factor!r} is not a power of two; pyramid levels are powers of two apart")
    return round(math.log2(factor))


def level_step(model: ModelRows, row: Row) -> int:
    """How many pyramid levels the row moves its input down (negative: up)."""
    module = row.module
    if module in ("Conv", "GhostConv", "DWConv", "SCDown", "DWConvTranspose2d", "ConvTranspose", "nn.ConvTranspose2d", "nn.MaxPool2d", "nn.AvgPool2d"):
        if module == "nn.MaxPool2d" or module == "nn.AvgPool2d":
            stride = row.args[1] if len(row.args) > 1 and row.args[1] is not None else (row.args[0] if row.args else 1)
        elif module in ("nn.ConvTranspose2d", "ConvTranspose", "DWConvTranspose2d"):
            stride = _stride_arg(row, 2, 2 if module == "ConvTranspose" else 1)
        else:
            stride = _stride_arg(row, 2)
        step = _log2(model, row, stride, "stride")
        return -step * row.repeats if "Transpose" in module else step * row.repeats
    if module in ("ADown", "AConv", "Focus"):
        return row.repeats
    if module == "HGStem":
        return 2
    if module == "ResNetLayer":
        return 2 if len(row.args) > 3 and row.args[3] else _log2(model, row, _stride_arg(row, 2), "stride")
    if module == "nn.Upsample":
        scale = row.args[1] if len(row.args) > 1 else None
        if len(row.args) > 0 and row.args[0] is not None:
            raise model.fail(row, "upsampling to a fixed size is not a pyramid level; use scale_factor")
        return -_log2(model, row, scale, "scale factor")
    return 0


def layer_width(model: ModelRows, row: Row, widths: list[int]) -> int:
    """The row's output width, as ``parse_model`` computes ``c2``."""
    module, c1 = row.module, widths[row.sources[0]] if row.sources[0] >= 0 else 3
    if module in BASE_MODULES:
        return model.scaled(row.args[0] if row.args else None, row) if module != "Classify" else row.args[0]
    if module in ("HGStem", "HGBlock"):
        return row.args[1]
    if module == "ResNetLayer":
        return row.args[1] if row.args[3] else row.args[1] * 4
    if module == "Concat":
        return sum(widths[j] for j in row.sources)
    if module == "CBFuse":
        return widths[row.sources[-1]]
    if module in ("CBLinear", "TorchVision", "Index"):
        return row.args[0]
    return c1


def _check_cbfuse(model: ModelRows, row: Row, widths: list[Any]) -> None:
    """``CBFuse`` sums split ``idx[k]`` of each ``CBLinear`` it reads with its last input, so their
    widths must agree. A ``CBLinear``'s splits are not scaled by the width multiple, so a YOLOv9-E
    backbone at another width cannot run (ultralytics fails building it); refused here, though the
    backbone is not converted, because the model the neck belongs to does not exist."""
    target = widths[row.sources[-1]]
    picks = row.args[0] if row.args and isinstance(row.args[0], list) else []
    for k, j in enumerate(row.sources[:-1]):
        splits = widths[j]
        if k >= len(picks) or not isinstance(splits, list) or not isinstance(picks[k], int) or not -len(splits) <= picks[k] < len(splits):
            raise model.fail(row, f"args {row.args!r} do not pick a split of layer {j} for each CBLinear it reads")
        if splits[picks[k]] != target:
            raise model.fail(
                row, f"sums split {picks[k]} of layer {j} ({splits[picks[k]]} channels) with layer {row.sources[-1]} ({target} channels); CBFuse adds maps of one width"
                " (CBLinear's widths are not scaled by the width multiple)"
            )


def measure(model: ModelRows) -> None:
    """Fill every row's width and level (the image is level 0)."""
    widths: list[Any] = []
    levels: list[int] = []
    for row in model.rows:
        try:
            row.width = layer_width(model, row, widths)
        except (IndexError, TypeError):
            raise model.fail(row, f"args {row.args!r} do not fit the module") from None
        first = row.sources[0]
        level = (levels[first] if first >= 0 else 0) + level_step(model, row)
        if row.module == "CBFuse":
            level = levels[row.sources[-1]]
            _check_cbfuse(model, row, widths)
        if level < 0:
            raise model.fail(row, "upsamples finer than the image")
        if level > MAX_LEVEL:
            raise model.fail(row, f"reaches pyramid level {level} (stride 2**{level}); levels go up to {MAX_LEVEL}")
        row.level = level
        widths.append(row.width)
        levels.append(level)


# --- row rules -----------------------------------------------------------------------------------


@dataclass
class Unit:
    """One op a row becomes: its spec item, and the reference's key prefix -> ours (a suffix)."""

    op: str
    params: dict[str, Any]
    width: int
    key: str = ""
    """The row's key under ``model.<i>`` this op holds ('' for the whole row, ``0`` for a repeat)."""
    inner: str = ""
    """The op's module holding the row's tensors, below the op's path (``deconv`` for a transposed conv)."""


@dataclass(frozen=True)
class RowRule:
    """How one ultralytics module becomes spec ops.

    ``kind``: ``post`` (keeps the level), ``resample`` (changes it; an edge op), ``concat``,
    ``upsample`` (a parameter-free resample). ``fields`` names the module's positional args
    after ``c2`` (and after ``n`` for repeat modules), in order. ``fixed`` adds op parameters;
    ``adjust`` rewrites the params with the row and model at hand (scale-letter rules)."""

    op: str
    kind: str = "post"
    fields: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    adjust: Callable[[dict[str, Any], ModelRows, Row], None] | None = None
    unit_act: bool = True
    """Whether the op's ``act`` follows the YAML's ``activation`` (``Conv.default_act``)."""


def _conv_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    padding, dilation, act = params.pop("padding", None), params.pop("dilation", 1), params.pop("act", True)
    if dilation not in (1, None):
        raise model.fail(row, f"dilation {dilation} is not supported")
    kernel = params.get("kernel", 1)
    if not isinstance(kernel, int) or isinstance(kernel, bool):
        raise model.fail(row, f"kernel {kernel!r} is not an integer")
    padding = kernel // 2 if padding is None else padding  # ultralytics' autopad: k // 2 (ours is (k - 1) // 2: they differ for even kernels)
    if padding != (kernel - 1) // 2:
        params["padding"] = padding
    params["act"] = model.act if act is True else None if act is False else _act_arg(model, row, act)
    if params.get("groups") == 1:
        params.pop("groups")
    if params.get("stride") == 1:
        params.pop("stride")


def _act_arg(model: ModelRows, row: Row, act: Any) -> str:
    try:
        return activation_of(str(act))
    except ValueError as exc:
        raise model.fail(row, str(exc)) from None


def _dwconv_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    params["groups"] = math.gcd(model.rows[row.sources[0]].width, row.width)
    _conv_adjust(params, model, row)


def _c3k2_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    if model.scale in ("m", "l", "x"):
        params["c3k"] = True  # parse_model: args[3:4] = [True] for M/L/X


def _a2c2f_extend(args: list[Any], model: ModelRows) -> list[Any]:
    return args + [True, 1.2] if model.scale in ("l", "x") else args  # parse_model: args.extend((True, 1.2)) for L/X


def _upsample_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    params.pop("size", None)
    scale = params.pop("scale_factor", None)
    mode = params.pop("mode", "nearest")
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise model.fail(row, f"upsampling mode {mode!r} is not supported (nearest, bilinear, bicubic)")
    params.update(by="scale", scale=int(scale), mode=mode)


def _deconv_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    kernel, stride, padding = params.get("kernel", 1), params.get("stride", 1), params.pop("padding", 0)
    if padding != (kernel - stride) // 2 or (kernel - stride) % 2:
        raise model.fail(row, f"a transposed conv with kernel {kernel}, stride {stride} and padding {padding} does not grow the map exactly {stride} times")
    for key in list(params):
        if key not in ("kernel", "stride"):
            raise model.fail(row, f"nn.ConvTranspose2d argument '{key}' is not supported")


def _drop_groups(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    params.pop("groups", None)  # C2fCIB takes g but builds its CIB blocks without it


def _aifi_adjust(params: dict[str, Any], model: ModelRows, row: Row) -> None:
    act = params.pop("act", None)
    if act is not None:
        params["act"] = _act_arg(model, row, act)


ROWS: dict[str, RowRule] = {
    "nn.Upsample": RowRule("upsample", "upsample", ("size", "scale_factor", "mode"), adjust=_upsample_adjust),
    "Concat": RowRule("concat", "concat", ("dimension",)),
    "Conv": RowRule("conv_bn_act", "post", ("kernel", "stride", "padding", "groups", "dilation", "act"), adjust=_conv_adjust, unit_act=False),
    "DWConv": RowRule("conv_bn_act", "post", ("kernel", "stride", "dilation", "act"), adjust=_dwconv_adjust, unit_act=False),
    "GhostConv": RowRule("ghost_conv", "post", ("kernel", "stride", "groups", "act"), adjust=_conv_adjust, unit_act=False),
    "nn.ConvTranspose2d": RowRule("deconv", "resample", ("kernel", "stride", "padding"), adjust=_deconv_adjust, unit_act=False),
    "C2f": RowRule("c2f", "post", ("shortcut", "groups", "expansion")),
    "C3k2": RowRule("c3k2", "post", ("c3k", "expansion", "attn", "groups", "shortcut"), adjust=_c3k2_adjust),
    "C3": RowRule("c3", "post", ("shortcut", "groups", "expansion")),
    "C2": RowRule("c2", "post", ("shortcut", "groups", "expansion")),
    "C3Ghost": RowRule("c3ghost", "post", ("shortcut", "groups", "expansion")),
    "Bottleneck": RowRule("bottleneck", "post", ("shortcut", "groups", "kernels", "expansion")),
    "SPP": RowRule("spp", "post", ("kernels",)),
    "SPPF": RowRule("sppf", "post", ("kernel", "repeats", "shortcut")),
    "RepC3": RowRule("rep_c3", "post", ("expansion",)),
    "AIFI": RowRule("aifi", "post", ("hidden", "heads", "dropout", "act", "normalize_before"), adjust=_aifi_adjust, unit_act=False),
    "RepNCSPELAN4": RowRule("rep_ncsp_elan4", "post", ("hidden", "block", "blocks")),
    "ELAN1": RowRule("elan1", "post", ("hidden", "block")),
    "ADown": RowRule("adown", "resample"),
    "AConv": RowRule("aconv", "resample"),
    "SCDown": RowRule("scdown", "resample", ("kernel", "stride")),
    "C2fCIB": RowRule("c2f_cib", "post", ("shortcut", "lk", "groups", "expansion"), adjust=_drop_groups),
    "A2C2f": RowRule("a2c2f", "post", ("a2", "area", "residual", "mlp_ratio", "expansion", "groups", "shortcut")),
}
"""Ultralytics module -> how its rows become spec ops. Adding a module is one entry here (and
its op in :mod:`pyramidgraph.ops`)."""

ARG_EXTENSIONS: dict[str, Callable[[list[Any], ModelRows], list[Any]]] = {"A2C2f": _a2c2f_extend}
"""Modules whose args ``parse_model`` extends by the scale letter before building them."""


def units_of(model: ModelRows, row: Row) -> list[Unit]:
    """The ops ``row`` becomes (one per repeat of a module ultralytics wraps in a Sequential)."""
    rule = ROWS.get(row.module)
    if rule is None:
        if row.module in TEXT_GUIDED:
            raise model.fail(row, f"needs {TEXT_GUIDED[row.module]}, which a neck of feature maps does not take")
        known = sorted(ROWS)
        hint = did_you_mean(row.module, known) or f" (the neck rows it takes: {', '.join(known)})"
        raise model.fail(row, f"module '{row.module}' has no pyramidgraph op{hint}")
    args = list(row.args)
    if row.module in BASE_MODULES:
        args = args[1:]
    if row.module in ARG_EXTENSIONS:
        args = ARG_EXTENSIONS[row.module](args, model)
    if len(args) > len(rule.fields):
        raise model.fail(row, f"takes at most {len(rule.fields) + (row.module in BASE_MODULES)} args ({', '.join((['c2'] if row.module in BASE_MODULES else []) + list(rule.fields))}), got {len(row.args)}")
    params: dict[str, Any] = dict(zip(rule.fields, args))
    if row.module == "Concat":
        if params.get("dimension", 1) != 1:
            raise model.fail(row, f"concatenates along dimension {params['dimension']}; a neck concatenates channels (1)")
        return []
    for key, value in list(params.items()):
        if isinstance(value, list):
            params[key] = tuple(value)
    if row.module in REPEAT_MODULES:
        params = {"blocks": row.repeats, **params}
    params.update(rule.fixed)
    if rule.adjust is not None:
        rule.adjust(params, model, row)
    if rule.unit_act and model.act != "silu" and rule.kind != "upsample":
        params["act"] = model.act
    if rule.kind == "upsample":
        return [Unit(rule.op, params, row.width)]
    copies = 1 if row.module in REPEAT_MODULES else row.repeats
    c1 = model.rows[row.sources[0]].width
    if copies > 1 and c1 != row.width:
        raise model.fail(row, f"repeats {copies} copies of a {c1} -> {row.width} module, which ultralytics builds with the same widths each time; it cannot run")
    inner = "deconv" if rule.op == "deconv" else ""
    return [Unit(rule.op, dict(params), row.width, str(k) if copies > 1 else "", inner) for k in range(copies)]


# --- the normal form -----------------------------------------------------------------------------


@dataclass
class NodeDraft:
    name: str
    level: int
    width: int
    edges: list[dict[str, Any]] = field(default_factory=list)
    post: list[tuple[Unit, int]] = field(default_factory=list)
    """(op, row index)."""
    edge_rows: list[tuple[str, Unit, int]] = field(default_factory=list)
    """(source name, op, row index) of ops on edges."""


def _op_item(unit: Unit, node_width: int | None) -> dict[str, Any]:
    """``{op: params}``, with ``out`` where a post op's width is not its node's."""
    params = dict(unit.params)
    if node_width is not None and unit.width != node_width and unit.op != "upsample":
        params["out"] = unit.width
    return {unit.op: params}


LEVEL_CHANGING = {"resample", "upsample"}


@dataclass
class NeckKeyMap(KeyMap):
    """A :class:`KeyMap` that takes a whole model's ``state_dict`` (``model.0`` to ``model.N``)
    and uses the neck layers' keys: the backbone's and the Detect layer's are left out, so
    ``DetectionModel.state_dict()`` loads as it is."""

    layers: set[int] = field(default_factory=set)

    def convert(self, state_dict, expected, source):
        if not isinstance(state_dict, Mapping):  # refused, with its reason, by the base map's checkpoint check
            return super().convert(state_dict, expected, source)
        kept = {k: v for k, v in state_dict.items() if not (isinstance(k, str) and (m := LAYER_KEY.match(k)) and int(m.group(1)) not in self.layers)}
        return super().convert(kept, expected, source)


LAYER_KEY = re.compile(r"model\.(\d+)\.")
"""A key of ultralytics layer ``i``: ``model.<i>.<tail>``."""


def _kind(row: Row, rows: list[Row]) -> str:
    """The row's rule kind, ``resample`` for a post-kind module that changes the level here (a strided Conv)."""
    kind = ROWS[row.module].kind
    return "resample" if kind == "post" and row.level != rows[row.sources[0]].level else kind


def layer_type(row: Row) -> str:
    """The row's module type as ultralytics reports it (``type(model[i]).__name__``): a
    repeated module that does not take the count itself is a ``Sequential``."""
    return "Sequential" if row.repeats > 1 and row.module not in REPEAT_MODULES else row.module.removeprefix("nn.")


def import_neck(model: ModelRows, in_channels: list[int] | None = None) -> tuple[dict[str, Any], KeyMap, dict[str, Any]]:
    """The spec dict, key map and interface facts of the model's neck."""
    rows = model.rows
    first_head, last = model.backbone, len(rows) - 1
    end = rows[last]
    if end.module not in HEAD_ENDS:
        raise model.fail(end, f"the last head row reads the neck's outputs (one of {', '.join(sorted(HEAD_ENDS))}); it is '{end.module}'")
    neck = rows[first_head:last]
    if not neck:
        raise model.fail(end, "the head has no rows before its last one: the model has no neck")
    outputs = list(end.sources)
    input_layers = sorted({j for row in neck for j in row.sources if j < first_head})
    if any(j < 0 for j in input_layers):
        raise model.fail(neck[0], "a neck row reads the image")
    if in_channels is not None:
        if len(in_channels) != len(input_layers):
            raise _fail(f"in_channels {in_channels} has {len(in_channels)} widths but the neck reads {len(input_layers)} backbone layers ({', '.join(map(str, input_layers))})")
        for j, c in zip(input_layers, in_channels):
            rows[j].width = int(c)
    readers: dict[int, list[int]] = {}
    for row in neck + [end]:
        for j in row.sources:
            readers.setdefault(j, []).append(row.index)
    for row in neck:  # widths of the neck follow from the (given) input widths
        row.width = layer_width(model, row, [r.width for r in rows])
    units = {row.index: units_of(model, row) for row in neck}
    kinds = {row.index: _kind(row, rows) for row in neck}

    inputs: dict[str, dict[str, Any]] = {}
    value_of: dict[int, str] = {}
    for j in input_layers:
        name = f"C{rows[j].level}"
        if name in inputs:
            name = f"C{rows[j].level}_{j}"
        inputs[name] = {"level": rows[j].level}
        value_of[j] = name
    drafts: dict[str, NodeDraft] = {}
    open_chain: dict[int, NodeDraft] = {}  # row index -> the node that ends with it and may grow
    folded: dict[int, tuple[int, Unit]] = {}  # edge-folded row -> (its source, its op)

    def edge_op(draft: NodeDraft, source: int, unit: Unit, index: int, target_level: int) -> dict[str, Any]:
        """The edge from layer ``source`` carrying row ``index``'s op, recorded for the key map."""
        draft.edge_rows.append((value_of[source], unit, index))
        return {"from": value_of[source], "up" if rows[source].level > target_level else "down": _op_item(unit, None)}

    def only_reader_is_concat(row: Row) -> bool:
        users = readers.get(row.index, [])
        return len(users) == 1 and users[0] not in outputs and row.index not in outputs and rows[users[0]].module == "Concat"

    for row in neck:
        kind = kinds[row.index]
        if kind in LEVEL_CHANGING and len(row.sources) == 1 and only_reader_is_concat(row) and len(units[row.index]) == 1:
            folded[row.index] = (row.sources[0], units[row.index][0])
            continue
        if kind == "concat":
            draft = NodeDraft(f"L{row.index}", row.level, row.width)
            for j in row.sources:
                source = j
                unit = None
                if j in folded:
                    source, unit = folded[j]
                if rows[source].level != row.level and unit is None:
                    raise model.fail(row, f"concatenates layer {source} (level {rows[source].level}) with maps at level {row.level}")
                if unit is None:
                    draft.edges.append(value_of[source])
                    continue
                edge = edge_op(draft, source, unit, j, row.level)
                if unit.width != rows[source].width:
                    edge["channels"] = unit.width
                draft.edges.append(edge)
        else:
            source = row.sources[0]
            chain = open_chain.get(source)
            can_extend = (
                chain is not None and kind == "post" and readers.get(source) == [row.index] and source not in outputs
            )
            if can_extend:
                draft = chain
                del drafts[draft.name], open_chain[source]
                draft.name = f"L{row.index}"
                draft.width = row.width
            else:
                draft = NodeDraft(f"L{row.index}", row.level, row.width)
                if kind in LEVEL_CHANGING:
                    if len(units[row.index]) != 1:
                        raise model.fail(row, "a level-changing module cannot be repeated here")
                    draft.edges.append(edge_op(draft, source, units[row.index][0], row.index, row.level))
                else:
                    draft.edges.append(value_of[source])
            if kind == "post":
                draft.post += [(u, row.index) for u in units[row.index]]
        drafts[draft.name] = draft
        value_of[row.index] = draft.name
        if kind != "resample":  # a node that changes the level is that one op (its edge's width is the node's)
            open_chain[row.index] = draft
    # specs: nodes in row order
    nodes: dict[str, Any] = {}
    key_map = NeckKeyMap(layers={row.index for row in neck})
    for draft in drafts.values():
        node: dict[str, Any] = {"level": draft.level, "from": draft.edges, "channels": draft.width}
        node["post"] = [_op_item(u, draft.width) for u, _ in draft.post]
        nodes[draft.name] = node
        for k, (unit, index) in enumerate(draft.post):
            reference = f"model.{index}" + (f".{unit.key}" if unit.key else "")
            key_map.add(reference, f"{draft.name}.post{k}")
        for source, unit, index in draft.edge_rows:
            if ROWS[rows[index].module].kind == "upsample":
                continue
            path = f"{draft.name}.from_{re.sub(r'[^A-Za-z0-9_]', '_', source)}"
            key_map.add(f"model.{index}", f"{path}.{unit.inner}" if unit.inner else path)
    output_names: dict[str, str] = {}
    for j in outputs:
        if j not in value_of:
            raise model.fail(end, f"reads layer {j}, which is not a neck layer")
        name = f"P{rows[j].level}"
        if name in output_names:
            name = f"P{rows[j].level}_{j}"
        output_names[name] = value_of[j]
    spec = {
        "pyramidgraph": 1,
        "name": "ultralytics_neck",
        "inputs": inputs,
        "defaults": {"fuse": "concat", "resample": {"project": "none"}},
        "nodes": nodes,
        "outputs": output_names,
    }
    facts = {
        "layer_indices": [row.index for row in neck],
        "input_layers": input_layers,
        "output_layers": outputs,
        "in_channels": [rows[j].width for j in input_layers],
        "layer_types": [layer_type(row) for row in neck],
    }
    return spec, key_map, facts


@register_reference
class UltralyticsNeck(Reference):
    """The neck of an ultralytics 8.4 model yaml (see the module docstring)."""

    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        refuse_unknown_keys(SOURCE, config, CONFIG_KEYS, "ultralytics.neck")
        doc, scale = read_model(config)
        model = parse_rows(doc, scale)
        given = config.get("in_channels")
        if given is not None:
            if not isinstance(given, (list, tuple)) or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in given):
                raise _fail(f"in_channels is a list of positive widths, not {given!r}")
        measure(model)
        spec, key_map, facts = import_neck(model)
        if given is not None:
            layers = ", ".join(map(str, facts["input_layers"]))
            if len(given) != len(facts["input_layers"]):
                raise _fail(f"in_channels {list(given)} has {len(given)} widths but the neck reads {len(facts['input_layers'])} backbone layers ({layers})")
            if list(given) != facts["in_channels"]:
                # ultralytics builds the neck's layers for the widths its backbone rows give them (parse_model's ch): others cannot run
                raise _fail(f"in_channels {list(given)} differ from the widths the yaml gives layers {layers} ({facts['in_channels']}); ultralytics builds the neck for those")
        for key in ("layer_indices", "input_layers", "output_layers"):
            if key in config and list(config[key]) != facts[key]:
                raise _fail(f"{key} {list(config[key])} differ from the yaml's ({facts[key]})")
        if "layer_types" in config and list(config["layer_types"]) != facts["layer_types"]:
            raise _fail(f"layer_types {list(config['layer_types'])} differ from the yaml's ({facts['layer_types']})")
        return Conversion(spec, facts["in_channels"], {}, key_map, return_type="tuple")
