"""efficientdet-pytorch's ``BiFpn`` (``effdet/efficientdet.py``, 0.4.1), as the bundled ``bifpn`` spec.

The fixtures' ``config`` is ``{base_config, in_channels, reductions, overrides}``: a model name
of effdet's ``model_config.py`` (``efficientdet_d0``, ``tf_efficientdet_d3``...), the backbone's
``feature_info`` widths and strides, and config keys set on top (``c[k] = v`` after
``get_efficientdet_config``, so ``num_levels`` keeps the model's value unless overridden).
:data:`MODEL_CONFIGS` holds, for every model, the keys ``BiFpn`` reads.

How effdet builds the neck, and the spec parameter each choice becomes:

* levels ``min_level .. max_level``; backbone levels beyond the inputs are made by
  ``resample.<i>`` (``ResampleFeatureMap``: a 1x1 ``ConvBnAct2d`` where widths differ, then
  ``downsample_type``) from the level below: the spec's extra nodes ``P<l>``;
* ``fpn_cell_repeats`` cells (``cell.<k>``; none: the levels are returned as they are), each with the nodes of ``get_fpn_config(fpn_name)``
  (``fnode.<j>``): ``combine`` resamples every input separately (``resample.<offset>``) and
  weighs them (``fastattn``, ``attn``, ``sum``: the spec's ``fusion`` fast, softmax, sum), then
  ``after_combine`` runs act -> conv -> BN (``conv_bn_relu_pattern``: conv -> BN -> act);
  ``bifpn_*`` is the spec's ``layout: bifpn``, ``pan_fa``/``pan_sum`` its ``layout: pan``, whose
  two one-input nodes keep effdet's single ``edge_weights`` (the spec's ``input_weight`` op),
  ``qufpn_fa``/``qufpn_sum`` its ``layout: qufpn`` (the final sums weigh fast in both, as effdet);
* ``pad_type 'same'`` gives the stride-2 pools TensorFlow's padding (``padding: same``); the
  3x3 convs pad 1 either way;
* the node convs have a bias when ``redundant_bias`` (pre-activation only), the projections
  when ``not apply_resample_bn or redundant_bias``;
* every BatchNorm takes ``norm_kwargs`` (eps 1e-3, momentum 0.01 for every model).

Not covered (a :func:`ConversionError` says so): a custom ``fpn_config`` or ``norm_layer``, activations the
spec language lacks (elu, selu, celu, prelu, hard_sigmoid, gelu_tanh...: effdet runs them), and
images so small or so thin that effdet itself skips a resampling (one side stops halving before
the other; average pooling of a 1x1 map: effdet runs those, but its maps then differ from the
sizes it computes for their levels, which the spec cannot follow).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import SpecError, did_you_mean
from .base import Conversion, ConversionError, KeyMap, Reference, register_reference

__all__ = ["EffdetBiFpn", "MODEL_CONFIGS", "DEFAULT_CONFIG", "effdet_config"]

DEFAULT_CONFIG: dict[str, Any] = {
    "image_size": (640, 640),
    "min_level": 3,
    "max_level": 7,
    "pad_type": "same",
    "act_type": "swish",
    "norm_layer": None,
    "norm_kwargs": {"eps": 1e-3, "momentum": 1e-2},
    "fpn_cell_repeats": 3,
    "fpn_channels": 88,
    "separable_conv": True,
    "apply_resample_bn": True,
    "conv_bn_relu_pattern": False,
    "downsample_type": "max",
    "upsample_type": "nearest",
    "redundant_bias": True,
    "fpn_name": None,
    "fpn_config": None,
}
"""effdet's ``default_detection_model_configs``: the keys ``BiFpn`` reads."""


def _model(image: int, channels: int, cells: int, **changes: Any) -> dict[str, Any]:
    return {"image_size": (image, image), "fpn_channels": channels, "fpn_cell_repeats": cells, **changes}


_TORCH = {"pad_type": "", "redundant_bias": False}  # effdet's PyTorch-friendly models
_BILINEAR = {"downsample_type": "bilinear", "upsample_type": "bilinear"}
_CONV = {"act_type": "leaky_relu", "separable_conv": False}
_LITE = {"fpn_name": "bifpn_sum", "act_type": "relu6"}
_TF = {name: _model(*size) for name, size in {
    "tf_efficientdet_d0": (512, 64, 3),
    "tf_efficientdet_d1": (640, 88, 4),
    "tf_efficientdet_d2": (768, 112, 5),
    "tf_efficientdet_d3": (896, 160, 6),
    "tf_efficientdet_d4": (1024, 224, 7),
    "tf_efficientdet_d5": (1280, 288, 7),
}.items()}

MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "efficientdet_d0": _model(512, 64, 3, **_TORCH),
    "efficientdet_d1": _model(640, 88, 4, **_TORCH),
    "efficientdet_d2": _model(768, 112, 5, **_TORCH),
    "efficientdet_d3": _model(896, 160, 6, **_TORCH),
    "efficientdet_d4": _model(1024, 224, 7),  # TF padding and redundant bias: effdet sets neither
    "efficientdet_d5": _model(1280, 288, 7),
    "efficientdetv2_dt": _model(768, 128, 5, **_TORCH, **_BILINEAR),
    "efficientdetv2_ds": _model(1024, 256, 7, **_TORCH, **_BILINEAR),
    "resdet50": _model(640, 88, 4, **_TORCH, act_type="relu", separable_conv=False),
    "cspresdet50": _model(768, 88, 4, **_TORCH, **_CONV, **_BILINEAR),
    "cspresdext50": _model(640, 88, 4, **_TORCH, **_CONV),
    "cspresdext50pan": _model(640, 88, 3, **_TORCH, **_CONV, fpn_name="pan_fa"),
    "cspdarkdet53": _model(640, 88, 4, **_TORCH, **_CONV),
    "cspdarkdet53m": _model(768, 96, 4, **_TORCH, **_CONV, **_BILINEAR, fpn_name="qufpn_fa"),
    "mixdet_m": _model(512, 64, 3, **_TORCH),
    "mixdet_l": _model(640, 88, 4, **_TORCH),
    "mobiledetv2_110d": _model(384, 48, 3, **_TORCH, act_type="relu6"),
    "mobiledetv2_120d": _model(512, 56, 3, **_TORCH, act_type="relu6"),
    "mobiledetv3_large": _model(512, 64, 3, **_TORCH, act_type="hard_swish"),
    "efficientdet_q0": _model(512, 64, 3, **_TORCH, fpn_name="qufpn_fa"),
    "efficientdet_q1": _model(640, 88, 3, **_TORCH, **_BILINEAR, fpn_name="qufpn_fa"),
    "efficientdet_q2": _model(768, 112, 4, **_TORCH, fpn_name="qufpn_fa"),
    "efficientdet_w0": _model(512, 80, 3, **_TORCH),
    "efficientdet_es": _model(512, 72, 3, **_TORCH, act_type="relu", separable_conv=False),
    "efficientdet_em": _model(640, 96, 4, **_TORCH, act_type="relu", separable_conv=False),
    "efficientdet_lite0": _model(384, 64, 3, act_type="relu6", redundant_bias=False),
    **_TF,
    "tf_efficientdet_d6": _model(1280, 384, 8, fpn_name="bifpn_sum"),
    "tf_efficientdet_d7": _model(1536, 384, 8, fpn_name="bifpn_sum"),
    "tf_efficientdet_d7x": _model(1536, 384, 8, fpn_name="bifpn_sum", max_level=8),
    **{f"{name}_ap": dict(config) for name, config in _TF.items()},
    "tf_efficientdet_lite0": _model(320, 64, 3, **_LITE),
    "tf_efficientdet_lite1": _model(384, 88, 4, **_LITE),
    "tf_efficientdet_lite2": _model(448, 112, 5, **_LITE),
    "tf_efficientdet_lite3": _model(512, 160, 6, **_LITE),
    "tf_efficientdet_lite3x": _model(640, 200, 6, **_LITE),
    "tf_efficientdet_lite4": _model(640, 224, 7, **_LITE),
}
"""effdet's ``efficientdet_model_param_dict``: what each model changes of :data:`DEFAULT_CONFIG`."""

_WEIGHTS = {"bifpn_fa": "fast", "bifpn_attn": "softmax", "bifpn_sum": "sum", "pan_fa": "fast", "pan_sum": "sum", "qufpn_fa": "fast", "qufpn_sum": "sum"}
"""effdet's layouts the spec reproduces -> the spec's ``fusion`` (``layout``: the name's prefix)."""
_ACTS = {
    "swish": "silu", "silu": "silu", "relu": "relu", "relu6": "relu6", "leaky_relu": "leaky_relu", "mish": "mish",
    "hard_swish": "hardswish", "hardswish": "hardswish", "gelu": "gelu", "sigmoid": "sigmoid", "tanh": "tanh", "identity": "identity",
    "elu": "elu", "selu": "selu", "celu": "celu", "hard_sigmoid": "hardsigmoid", "gelu_tanh": "gelu_tanh", "quick_gelu": "quick_gelu", "hard_mish": "hard_mish",
}
"""timm's ``get_act_layer`` names -> the spec's activations (``leaky_relu``: nn.LeakyReLU's slope 0.01)."""
_POOLS = ("max", "avg")
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")  # effdet passes align_corners=False to other modes, which F.interpolate refuses for area


def effdet_config(base_config: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``get_efficientdet_config(base_config)`` with ``overrides`` set on top (the keys BiFpn reads)."""
    if base_config not in MODEL_CONFIGS:
        raise ConversionError(EffdetBiFpn.source, f"unknown base_config '{base_config}'{did_you_mean(str(base_config), MODEL_CONFIGS)}")
    config = {**DEFAULT_CONFIG, **MODEL_CONFIGS[base_config]}
    config["num_levels"] = config["max_level"] - config["min_level"] + 1
    config.update(overrides or {})
    return config


def _size(value: Any) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ConversionError(EffdetBiFpn.source, f"image_size must be (H, W) positive integers, got {value!r}")
    return size  # type: ignore[return-value]


def _pan_nodes(lo: int, hi: int) -> list[tuple[str, list[tuple[int, str]]]]:
    """effdet's ``panfpn_config`` nodes in order, as :func:`_effdet_nodes`: top-down from the
    coarsest level (one input there), then bottom-up from the finest (one input there)."""
    count = hi - lo + 1
    nodes: list[tuple[str, list[tuple[int, str]]]] = []
    for j, level in enumerate(range(hi, lo - 1, -1)):
        inputs = [(level - lo, f"P{level}")] + ([(count + j - 1, f"P{level + 1}_pan_td")] if level < hi else [])
        nodes.append((f"P{level}_pan_td", inputs))
    for j, level in enumerate(range(lo, hi + 1)):
        inputs = [(count + hi - level, f"P{level}_pan_td")] + ([(2 * count + j - 1, f"P{level - 1}_pan_out")] if level > lo else [])
        nodes.append((f"P{level}_pan_out", inputs))
    return nodes


def _quad_nodes(lo: int, hi: int) -> list[tuple[str, list[tuple[int, str]]]]:
    """effdet's ``qufpn_config`` nodes in order, as :func:`_effdet_nodes`. effdet tracks, per
    level, the nodes made there (``node_ids``) and repeats an entry where a path skips a level;
    so does ``ids`` here, holding (offset, spec name) pairs."""
    ids = {level: [(level - lo, f"P{level}")] for level in range(lo, hi + 1)}
    nodes: list[tuple[str, list[tuple[int, str]]]] = []

    def add(level: int, name: str, inputs: list[tuple[int, str]]) -> None:
        ids[level].append((hi - lo + 1 + len(nodes), name))
        nodes.append((name, inputs))

    for level in range(hi - 1, lo - 1, -1):  # path 1, top-down
        add(level, f"P{level}_q1", [ids[level][-1], ids[level + 1][-1]])
    ids[hi].append(ids[hi][-1])
    for level in range(lo + 1, hi):  # path 2, bottom-up
        add(level, f"P{level}_q2", ids[level] + [ids[level - 1][-1]])
    add(hi, f"P{hi}_q2", [ids[hi][0], ids[hi - 1][-1]])
    ids[lo].append(ids[lo][-1])
    for level in range(lo + 1, hi + 1):  # path 3, bottom-up from the inputs
        add(level, f"P{level}_q3", [ids[level][0], ids[level - 1][-1] if level != lo + 1 else ids[level - 1][0]])
    ids[lo].append(ids[lo][-1])
    for level in range(hi - 1, lo, -1):  # path 4, top-down
        add(level, f"P{level}_q4", [ids[level][0], ids[level][-1], ids[level + 1][-1]])
    add(lo, f"P{lo}_q4", [ids[lo][0], ids[lo + 1][-1]])
    ids[hi].append(ids[hi][-1])
    for level in range(lo, hi + 1):  # the sum of paths 2 and 4 (1 and 4 at the finest, 2 and 3 at the coarsest)
        add(level, f"P{level}_quad", [ids[level][2], ids[level][4]])
    return nodes


def _effdet_nodes(lo: int, hi: int) -> list[tuple[str, list[tuple[int, str]]]]:
    """effdet's ``bifpn_config`` nodes in order (``fnode.<j>``), each as the spec node that
    computes it and its inputs: (effdet's input offset, the spec's ``from`` entry)."""
    last = {level: level - lo for level in range(lo, hi + 1)}
    count = hi - lo + 1
    nodes: list[tuple[str, list[tuple[int, str]]]] = []
    tds: dict[int, int] = {}
    for level in range(hi - 1, lo - 1, -1):  # top-down; the finest one is the spec's P<lo>_out
        name = f"P{level}_td" if level > lo else f"P{lo}_out"
        coarser = f"P{level + 1}_td" if level + 1 < hi else f"P{hi}"  # P<hi>_td is P<hi>
        nodes.append((name, [(last[level], f"P{level}"), (last[level + 1], coarser)]))
        last[level] = tds[level] = count
        count += 1
    for level in range(lo + 1, hi + 1):  # bottom-up
        inputs = [(level - lo, f"P{level}")] + ([(tds[level], f"P{level}_td")] if level in tds else []) + [(last[level - 1], f"P{level - 1}_out")]
        nodes.append((f"P{level}_out", inputs))
        last[level] = count
        count += 1
    return nodes


@register_reference
class EffdetBiFpn(Reference):
    source = "effdet.BiFpn"

    def fail(self, message: str) -> SpecError:
        return ConversionError(self.source, message)

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        c = effdet_config(config["base_config"], config.get("overrides"))
        in_channels = [int(v) for v in config["in_channels"]]
        lo, hi, num_levels = int(c["min_level"]), int(c["max_level"]), int(c["num_levels"])
        if num_levels != hi - lo + 1:
            raise self.fail(f"num_levels is {num_levels} but min_level {lo} .. max_level {hi} is {hi - lo + 1} levels; effdet wires its nodes by offsets and needs them equal (override num_levels too)")
        if num_levels < 2:
            raise self.fail(f"a BiFPN needs two levels or more, got min_level {lo} .. max_level {hi}")
        reductions = list(config.get("reductions") or [2 ** (lo + i) for i in range(len(in_channels))])
        if not 1 <= len(in_channels) <= num_levels or len(reductions) != len(in_channels):
            raise self.fail(f"{len(in_channels)} inputs with {len(reductions)} reductions for {num_levels} levels; effdet takes one to num_levels backbone levels, each with its reduction")
        expected = [2 ** (lo + i) for i in range(len(in_channels))]
        if reductions != expected:
            raise self.fail(f"effdet places input i at level min_level + i, so the reductions must be {expected}, got {reductions}")

        if c.get("fpn_config") is not None:
            raise self.fail("a custom fpn_config is not supported; use fpn_name bifpn_fa, bifpn_attn or bifpn_sum")
        fpn_name = c.get("fpn_name") or "bifpn_fa"
        if fpn_name not in _WEIGHTS:
            raise self.fail(f"fpn_name '{fpn_name}' is not one of effdet's layouts the bifpn spec reproduces: {', '.join(_WEIGHTS)}")
        layout = fpn_name.split("_")[0]
        if c.get("norm_layer") is not None:
            raise self.fail("only effdet's default norm_layer (BatchNorm2d) is supported")
        norm = dict(c.get("norm_kwargs") or {})
        if set(norm) - {"eps", "momentum"}:
            raise self.fail(f"norm_kwargs {sorted(set(norm) - {'eps', 'momentum'})} are not supported (eps and momentum are)")
        act_type = c.get("act_type") or "swish"  # effdet: get_act_layer(act_type) or SiLU
        act = _ACTS.get(str(act_type).lower())
        if act is None:
            raise self.fail(f"act_type '{act_type}' is not supported; supported: {', '.join(sorted(_ACTS))}")
        pad_type = c.get("pad_type") or ""
        if not isinstance(pad_type, str) or pad_type.lower() == "valid":
            raise self.fail(f"pad_type {pad_type!r} is not supported: 'same' (TensorFlow) or '' (symmetric)")
        padding = "same" if pad_type.lower() == "same" else "symmetric"  # timm: any other string is symmetric
        down = c.get("downsample_type") or "max"
        up = c.get("upsample_type") or "nearest"
        if down not in _POOLS + _INTERPOLATIONS:
            raise self.fail(f"downsample_type '{down}' is not supported: {', '.join(_POOLS + _INTERPOLATIONS)}")
        if up not in _INTERPOLATIONS:
            raise self.fail(f"upsample_type '{up}' is not supported: {', '.join(_INTERPOLATIONS)}")
        cells = int(c["fpn_cell_repeats"])
        if cells < 0:
            raise self.fail(f"fpn_cell_repeats must be 0 or more, got {cells}")
        image = _size(c["image_size"])
        self.check_sizes(image, lo, hi, down)

        pre_act = not c["conv_bn_relu_pattern"]
        redundant_bias = bool(c["redundant_bias"])
        separable = bool(c["separable_conv"])
        resample_bn = bool(c["apply_resample_bn"])
        params: dict[str, Any] = {
            "channels": int(c["fpn_channels"]),
            "cells": cells,
            "first_level": lo,
            "max_level": hi,
            "fusion": _WEIGHTS[fpn_name],
            "act": act,
            "order": "act_conv_bn" if pre_act else "conv_bn_act",
            "separable": separable,
            "conv_bias": redundant_bias and pre_act,
            "bn_eps": float(norm.get("eps", 1e-5)),
            "bn_momentum": float(norm.get("momentum", 0.1)),
            "resample_bn": resample_bn,
            "resample_bias": not resample_bn or redundant_bias,
            "down": down,
            "up": up,
            "padding": padding,
            "layout": layout,
        }
        key_map = self.key_map(lo, hi, len(in_channels), cells, pre_act, separable, layout, params["fusion"] != "sum")
        return Conversion("bifpn", in_channels, params, key_map, return_type="list", image=image)

    def check_sizes(self, image: tuple[int, int], lo: int, hi: int, down: str) -> None:
        """effdet resamples by the sizes it computes (``get_feat_sizes``), the spec by levels:
        they agree while both sides halve at every level. A 1x1 map that stays 1x1 is not
        resampled by effdet; pooling it is the identity too, except for average pooling."""
        sizes = [image]
        for _ in range(hi):
            sizes.append(((sizes[-1][0] - 1) // 2 + 1, (sizes[-1][1] - 1) // 2 + 1))
        for level in range(lo + 1, hi + 1):
            (h0, w0), (h1, w1) = sizes[level - 1], sizes[level]
            if (h0 > h1) != (w0 > w1):
                raise self.fail(
                    f"image {image[0]}x{image[1]}: level {level - 1} ({h0}x{w0}) to level {level} ({h1}x{w1}) halves one side only, "
                    "where effdet skips resampling and its maps stop matching its own level sizes"
                )
            if h0 == h1 and down == "avg":
                raise self.fail(f"image {image[0]}x{image[1]}: level {level - 1} is 1x1 and so is level {level}; effdet leaves it as is, average pooling would divide it by 9")

    @staticmethod
    def key_map(lo: int, hi: int, num_inputs: int, cells: int, pre_act: bool, separable: bool, layout: str = "bifpn", weighted: bool = True) -> KeyMap:
        """effdet's keys -> the spec's. A node of one input has no fuse op: its ``edge_weights``
        is the ``input_weight`` op, ``post0``, before the node's other post ops."""
        key_map = KeyMap(leaves={"edge_weights": "weight"})
        for index in range(num_inputs, hi - lo + 1):
            level = lo + index
            key_map.add(f"resample.{index}.conv", f"P{level}.from_P{level - 1}")
        for k in range(cells):
            for j, (name, inputs) in enumerate({"bifpn": _effdet_nodes, "pan": _pan_nodes, "qufpn": _quad_nodes}[layout](lo, hi)):
                ref, ours = f"cell.{k}.fnode.{j}", f"cell{k}.{name}"
                first = 1 if len(inputs) == 1 and weighted else 0
                conv, bn = (f"post{first + 1}", f"post{first + 2}") if pre_act else (f"post{first}", f"post{first + 1}")
                key_map.add(f"{ref}.combine", f"{ours}.{'fuse' if len(inputs) > 1 else 'post0'}")
                for offset, source in inputs:
                    key_map.add(f"{ref}.combine.resample.{offset}.conv", f"{ours}.from_{source}")
                if separable:
                    key_map.add(f"{ref}.after_combine.conv.conv_dw", f"{ours}.{conv}.dw")
                    key_map.add(f"{ref}.after_combine.conv.conv_pw", f"{ours}.{conv}.pw")
                else:
                    key_map.add(f"{ref}.after_combine.conv.conv", f"{ours}.{conv}")
                key_map.add(f"{ref}.after_combine.conv.bn", f"{ours}.{bn}")
        return key_map
