"""mmdetection's ``SSDNeck`` (``mmdet/models/necks/ssd_neck.py``) as the ``ssd_neck`` spec.

Constructor arguments followed: ``in_channels``, ``out_channels`` (the inputs' widths, as
mmdetection asserts, then one per extra layer: the spec's ``widths``), ``level_strides`` (1 or
2: a stride-2 layer is the next level, a stride-1 one stays at its input's level),
``level_paddings``, ``l2_norm_scale`` (falsy: no L2Norm), ``last_kernel_size``,
``use_depthwise``, ``conv_cfg`` (None), ``norm_cfg`` (None, BN, SyncBN or GN) and ``act_cfg``;
``init_cfg`` changes no module, but with an L2Norm it must be a list, as the reference appends
the L2Norm's initialiser to it (None or a dict make its constructor raise). Keys: ``l2_norm.weight`` is ``N<first>.post0.weight``;
``extra_layers.k.0`` is ``H<k>.post0``; ``extra_layers.k.1`` is on the edge
``X<k>.from_H<k>`` when its stride is 2, else ``X<k>.post0``; with ``use_depthwise`` its
``depthwise_conv`` is ``D<k>`` (on the edge ``D<k>.from_H<k>``, or ``D<k>.post0``) and its
``pointwise_conv`` ``X<k>.post0``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, fail, first_level, spec_params
from .mmdet import register_neck

KIND = "SSDNeck"
KEYS = {"in_channels", "out_channels", "level_strides", "level_paddings", "l2_norm_scale", "last_kernel_size", "use_depthwise", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"}


def _ints(cfg: Mapping[str, Any], key: str) -> list[int]:
    values = cfg[key]
    if not isinstance(values, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise fail(KIND, f"{key} must be a list of integers, got {values!r}")
    return list(values)


@register_neck(KIND)
def convert_ssd_neck(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    in_channels, out_channels = _ints(cfg, "in_channels"), _ints(cfg, "out_channels")
    level_strides, paddings = _ints(cfg, "level_strides"), _ints(cfg, "level_paddings")
    n = len(in_channels)
    if not n:
        raise fail(KIND, "in_channels is empty")
    if len(out_channels) <= n or out_channels[:n] != in_channels:
        raise fail(KIND, f"out_channels {out_channels} must start with in_channels {in_channels} and add at least one extra layer")
    extra = out_channels[n:]
    if len(level_strides) != len(extra) or len(paddings) != len(extra):
        raise fail(KIND, f"{len(extra)} extra layers need as many level_strides and level_paddings, got {len(level_strides)} and {len(paddings)}")
    if any(s not in (1, 2) for s in level_strides):
        raise fail(KIND, f"level_strides {level_strides}: only 1 (same level) and 2 (the next level) line up with pyramid levels")
    if any(p < 0 for p in paddings):
        raise fail(KIND, f"level_paddings must be >= 0, got {paddings}")
    last_kernel = cfg.get("last_kernel_size", 3)
    if isinstance(last_kernel, bool) or not isinstance(last_kernel, int) or last_kernel < 1:
        raise fail(KIND, f"last_kernel_size must be a positive integer, got {last_kernel!r}")
    scale = cfg.get("l2_norm_scale", 20.0)
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float))):
        raise fail(KIND, f"l2_norm_scale must be a number or None, got {scale!r}")
    if scale and not isinstance(cfg.get("init_cfg", []), (list, tuple)):
        # the reference appends the L2Norm's initialiser to init_cfg (`self.init_cfg += [...]`), which only a list takes
        raise fail(KIND, f"init_cfg must be a list when l2_norm_scale is set (the reference appends the L2Norm's init to it), got {cfg['init_cfg']!r}")
    depthwise = bool(cfg.get("use_depthwise", False))
    unit = conv_module(KIND, cfg.get("norm_cfg"), cfg.get("act_cfg", {"type": "ReLU"}), cfg.get("conv_cfg"))
    first = first_level(KIND, strides, n, 3)
    params = {
        "first_level": first,
        "widths": extra,
        "strides": level_strides,
        "paddings": paddings,
        "l2norm": float(scale) if scale else None,
        "last_kernel": last_kernel,
        "depthwise": depthwise,
        **spec_params(unit),
    }
    key_map = KeyMap()
    if scale:
        key_map.add("l2_norm", f"N{first}.post0")
    for k, stride in enumerate(level_strides):
        key_map.add(f"extra_layers.{k}.0", f"H{k}.post0")
        if depthwise:
            key_map.add(f"extra_layers.{k}.1.depthwise_conv", f"D{k}.from_H{k}" if stride == 2 else f"D{k}.post0")
            key_map.add(f"extra_layers.{k}.1.pointwise_conv", f"X{k}.post0")
        else:
            key_map.add(f"extra_layers.{k}.1", f"X{k}.from_H{k}" if stride == 2 else f"X{k}.post0")
    return Conversion("ssd_neck", in_channels, params, key_map, return_type="tuple")
