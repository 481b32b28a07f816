"""RT-DETR's HybridEncoder, the authors' code (lyuwenyu/RT-DETR,
``rtdetrv2_pytorch/src/zoo/rtdetr/hybrid_encoder.py``, class ``HybridEncoder``).

The config is the constructor's keyword arguments (``in_channels``, ``feat_strides``,
``hidden_dim``, ``nhead``, ``dim_feedforward``, ``dropout``, ``enc_act``, ``use_encoder_idx``,
``num_encoder_layers``, ``pe_temperature``, ``expansion``, ``depth_mult``, ``act``,
``eval_spatial_size``, ``version``), with the constructor's defaults for what it leaves out. The
reference takes a list of maps, finest first, and returns a list, finest first.

Bundled spec: ``specs/rtdetr_hybrid_encoder.yaml``, at the official code's settings: PyTorch's
BatchNorm defaults (eps 1e-5, momentum 0.1) and its w-major position embedding (``wh``: on a
non-square map token ``k`` gets the embedding of column ``k // H``, row ``k % H``). Every
``ConvNormLayer`` (``conv``, ``norm``) is one ``conv_bn_act`` (``conv``, ``bn``); the input
projections are ``input_proj.<i>.conv``/``.norm`` in v2 and ``input_proj.<i>.0``/``.1`` in v1.
``eval_spatial_size`` only makes the reference keep the embedding of that image size in a
non-persistent buffer (no checkpoint key): the neck recomputes it from each map, which gives
the same numbers wherever the reference can run.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, doubling_strides, refuse_unknown_keys, register_reference

SOURCE = "rtdetr.HybridEncoder"
DEFAULTS: dict[str, Any] = {
    "in_channels": [512, 1024, 2048],
    "feat_strides": [8, 16, 32],
    "hidden_dim": 256,
    "nhead": 8,
    "dim_feedforward": 1024,
    "dropout": 0.0,
    "enc_act": "gelu",
    "use_encoder_idx": [2],
    "num_encoder_layers": 1,
    "pe_temperature": 10000,
    "expansion": 1.0,
    "depth_mult": 1.0,
    "act": "silu",
    "eval_spatial_size": None,
    "version": "v2",
}
ACTIVATIONS = {"silu": "silu", "swish": "silu", "relu": "relu", "leaky_relu": "leaky_relu", "gelu": "gelu", "hardsigmoid": "hardsigmoid"}
"""``get_activation``'s names (it lower-cases them) and ours."""
MAX_LAYERS = 64


def _integer(key: str, value: Any, least: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
        raise ConversionError(SOURCE, f"{key} must be an integer{f' of at least {least}' if least is not None else ''}, not {value!r}")
    return value


def _number(key: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConversionError(SOURCE, f"{key} must be a number, not {value!r}")
    return float(value)


def _activation(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in ACTIVATIONS:
        return ACTIVATIONS[value.lower()]
    raise ConversionError(SOURCE, f"{key} {value!r}: the reference's get_activation knows silu, swish, relu, leaky_relu, gelu and hardsigmoid (or null), so it cannot build this")


def _first_level(strides: Any, levels: int) -> int:
    """The finest input's level from ``feat_strides``: one stride per input, doubling from
    level to level, since the reference upsamples by 2 and downsamples by stride 2 between
    neighbours (the strides themselves only size the eval_spatial_size buffers)."""
    if not isinstance(strides, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in strides):
        raise ConversionError(SOURCE, f"feat_strides must be a list of positive integers, not {strides!r}")
    if len(strides) != levels:
        raise ConversionError(SOURCE, f"feat_strides lists {len(strides)} strides for {levels} inputs; give one stride per in_channels entry")
    doubling = "the reference upsamples by 2 and downsamples by stride 2 between neighbouring inputs, so the strides must be powers of two, each twice the previous ([8, 16, 32])"
    return doubling_strides(SOURCE, "feat_strides", strides, levels, "one positive integer per input", doubling)


def _conv_norm(key_map: KeyMap, reference: str, ours: str) -> None:
    """A ``ConvNormLayer`` (``conv``, ``norm``) onto a ``conv_bn_act`` (``conv``, ``bn``)."""
    key_map.add(f"{reference}.conv", f"{ours}.conv")
    key_map.add(f"{reference}.norm", f"{ours}.bn")


def _csp_rep_layer(key_map: KeyMap, reference: str, ours: str, blocks: int, has_conv3: bool) -> None:
    """A ``CSPRepLayer`` (``conv1``, ``conv2``, ``bottlenecks.<b>.conv1|conv2``, ``conv3``) onto a
    ``rep_c3`` (``cv1``, ``cv2``, ``m.<b>.conv1|conv2``, ``cv3``)."""
    _conv_norm(key_map, f"{reference}.conv1", f"{ours}.cv1")
    _conv_norm(key_map, f"{reference}.conv2", f"{ours}.cv2")
    for b in range(blocks):
        for branch in ("conv1", "conv2"):
            _conv_norm(key_map, f"{reference}.bottlenecks.{b}.{branch}", f"{ours}.m.{b}.{branch}")
    if has_conv3:
        _conv_norm(key_map, f"{reference}.conv3", f"{ours}.cv3")


def _check(config: Mapping[str, Any]) -> dict[str, Any]:
    refuse_unknown_keys(SOURCE, config, DEFAULTS, "HybridEncoder")
    c = {**DEFAULTS, **config}
    if c["version"] not in ("v1", "v2"):
        raise ConversionError(SOURCE, f"version {c['version']!r}: the reference builds its input projections for 'v1' or 'v2' only (any other raises AttributeError)")
    widths = c["in_channels"]
    if not isinstance(widths, (list, tuple)) or not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise ConversionError(SOURCE, f"in_channels must be a non-empty list of positive widths, one per input, not {widths!r}")
    for key in ("hidden_dim", "nhead", "dim_feedforward"):
        _integer(key, c[key], 1)
    if c["hidden_dim"] % c["nhead"]:
        raise ConversionError(SOURCE, f"hidden_dim {c['hidden_dim']} does not divide into nhead {c['nhead']} heads, so the reference's nn.MultiheadAttention cannot be built")
    if not 0.0 <= _number("dropout", c["dropout"]) <= 1.0:
        raise ConversionError(SOURCE, f"dropout must be between 0 and 1, not {c['dropout']!r} (nn.Dropout refuses it)")
    indices = c["use_encoder_idx"]
    if not isinstance(indices, (list, tuple)):
        raise ConversionError(SOURCE, f"use_encoder_idx must be a list of input indices, not {indices!r}")
    for index in indices:
        if not isinstance(index, int) or isinstance(index, bool) or not -len(widths) <= index < len(widths):
            raise ConversionError(SOURCE, f"use_encoder_idx entry {index!r} names no input: the reference indexes its {len(widths)} projected maps with it (an IndexError in forward)")
    layers = _integer("num_encoder_layers", c["num_encoder_layers"])
    if layers > MAX_LAYERS:
        raise ConversionError(SOURCE, f"num_encoder_layers {layers}: at most {MAX_LAYERS}")
    encodes = layers > 0 and len(indices) > 0
    if encodes and c["hidden_dim"] % 4:
        raise ConversionError(SOURCE, f"hidden_dim {c['hidden_dim']} is not divisible by 4, which the 2-D sin-cos position embedding needs: the reference's forward fails its assertion")
    if not _number("pe_temperature", c["pe_temperature"]) > 0 and encodes:
        raise ConversionError(SOURCE, f"pe_temperature must be positive, not {c['pe_temperature']!r}: the embedding's frequencies are temperature ** -(i / (hidden_dim / 4))")
    expansion = _number("expansion", c["expansion"])
    if int(c["hidden_dim"] * expansion) < 1:
        raise ConversionError(SOURCE, f"expansion {c['expansion']!r}: the CSPRepLayers' hidden width int(hidden_dim * expansion) is {int(c['hidden_dim'] * expansion)}; the reference builds empty convolutions")
    _number("depth_mult", c["depth_mult"])
    size = c["eval_spatial_size"]
    if size is not None and not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)):
        raise ConversionError(SOURCE, f"eval_spatial_size must be null or [height, width], not {size!r}")
    return c


@register_reference
class HybridEncoder(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        c = _check(config)
        widths = list(c["in_channels"])
        n = len(widths)
        first = _first_level(c["feat_strides"], n)
        top = first + n - 1
        layers = max(c["num_encoder_layers"], 0)
        indices = [index % n for index in c["use_encoder_idx"]] if layers else []
        blocks = max(round(3 * c["depth_mult"]), 0)
        has_conv3 = int(c["hidden_dim"] * c["expansion"]) != c["hidden_dim"]
        projected = [f"S{first + i}" if i < n - 1 else f"Y{top}" for i in range(n)]

        key_map = KeyMap()
        for i, node in enumerate(projected):
            if c["version"] == "v1":
                key_map.add(f"input_proj.{i}.0", f"{node}.post0.conv")
                key_map.add(f"input_proj.{i}.1", f"{node}.post0.bn")
            else:
                _conv_norm(key_map, f"input_proj.{i}", f"{node}.post0")
        stacked = [0] * n  # AIFI layers so far on each level: encoders on one level run in order
        for j, index in enumerate(indices):
            for k in range(layers):
                stacked[index] += 1
                ours = f"{projected[index]}.post{stacked[index]}"
                for reference, mine in (("self_attn", "ma"), ("linear1", "fc1"), ("linear2", "fc2"), ("norm1", "norm1"), ("norm2", "norm2")):
                    key_map.add(f"encoder.{j}.layers.{k}.{reference}", f"{ours}.{mine}")
        for m in range(n - 1):  # lateral_convs[m] and fpn_blocks[m] work on level index n-1-m and its finer neighbour
            coarse = n - 1 - m
            lateral = f"Y{top}.post{1 + stacked[-1]}" if coarse == n - 1 else f"Y{first + coarse}.post1"
            _conv_norm(key_map, f"lateral_convs.{m}", lateral)
            fused = coarse - 1
            _csp_rep_layer(key_map, f"fpn_blocks.{m}", f"{'P' if fused == 0 else 'Y'}{first + fused}.post0", blocks, has_conv3)
        for m in range(n - 1):  # downsample_convs[m] and pan_blocks[m] give level index m+1
            _conv_norm(key_map, f"downsample_convs.{m}", f"P{first + m + 1}.from_P{first + m}")
            _csp_rep_layer(key_map, f"pan_blocks.{m}", f"P{first + m + 1}.post0", blocks, has_conv3)

        params = {
            "first_level": first,
            "hidden_dim": c["hidden_dim"],
            "nhead": c["nhead"],
            "dim_feedforward": c["dim_feedforward"],
            "dropout": float(c["dropout"]),
            "enc_act": _activation("enc_act", c["enc_act"]),
            "use_encoder_idx": indices,
            "num_encoder_layers": layers,
            "pe_temperature": float(c["pe_temperature"]),
            "embedding": "wh",
            "expansion": float(c["expansion"]),
            "depth_mult": max(float(c["depth_mult"]), 0.0),  # fewer than zero RepVGG units: none, as range() gives
            "act": _activation("act", c["act"]),
            "bn_eps": 1e-5,
            "bn_momentum": 0.1,
        }
        return Conversion("rtdetr_hybrid_encoder", widths, params, key_map, return_type="list")
