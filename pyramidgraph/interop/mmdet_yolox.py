"""mmdetection's ``YOLOXPAFPN`` (``mmdet/models/necks/yolox_pafpn.py``) as the ``yolox_pafpn`` spec.

Constructor arguments followed: ``in_channels`` (one or more levels), ``out_channels``,
``num_csp_blocks``, ``use_depthwise``, ``upsample_cfg`` (:func:`upsample_params`: ``nn.Upsample``
by ``scale_factor: 2``, the only factor that lines the levels up, in any 2-D mode, with its
``align_corners``), ``conv_cfg`` (None or plain ``Conv2d``), ``norm_cfg`` (BN or SyncBN, the
same in inference, GN with its ``num_groups``, or None: a conv bias instead, as mmcv's
``ConvModule``), ``act_cfg`` (an activation mmcv's registry has, LeakyReLU with its
``negative_slope``, or None); ``init_cfg`` changes no module. An argument the constructor does
not take, a norm, activation or conv type mmcv's registry does not have, and GN without
``num_groups`` are refused as mmdetection refuses them. Keys: each ``ConvModule`` keeps its
``conv``/``bn``/``gn`` tail and each ``CSPLayer`` its inner names, so every reference module
maps to one spec module by prefix.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, fail, first_level
from .mmdet import register_neck

KIND = "YOLOXPAFPN"
KEYS = {"in_channels", "out_channels", "num_csp_blocks", "use_depthwise", "upsample_cfg", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"}
DEFAULT_NORM = {"type": "BN", "momentum": 0.03, "eps": 0.001}


def unit_params(kind: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``conv_cfg``, ``norm_cfg`` and ``act_cfg`` of a YOLOX-style neck (the same for every
    ``ConvModule`` and CSP layer) as the ``yolox_pafpn`` spec's unit parameters."""
    unit = conv_module(kind, cfg.get("norm_cfg", DEFAULT_NORM), cfg.get("act_cfg", {"type": "Swish"}), cfg.get("conv_cfg"))
    return {
        "norm": unit["norm"] or "none",
        "norm_groups": unit["norm_groups"],
        "norm_eps": unit["norm_eps"],
        "norm_momentum": unit["norm_momentum"],
        "act": unit["act"],
        "act_slope": unit["act_slope"],
    }


def upsample_params(kind: str, cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``nn.Upsample(**upsample_cfg)`` as the spec's ``upsample_*`` parameters. Only a factor of
    2 lines the levels up (any other fails at the concatenation on every input), so ``size`` and
    other factors are refused. ``nearest-exact`` and ``area`` at an integer factor of 2 pick
    exactly the pixels ``nearest`` picks (source ``floor(i / 2)``), so they are ``nearest``."""
    cfg = dict(cfg if cfg is not None else {"scale_factor": 2, "mode": "nearest"})
    unknown = set(cfg) - {"scale_factor", "mode", "align_corners", "size", "recompute_scale_factor"}
    if unknown:
        raise fail(kind, f"upsample_cfg key {sorted(unknown)[0]!r} is not an nn.Upsample argument")
    if cfg.get("size") is not None or cfg.get("scale_factor") not in (2, 2.0) or isinstance(cfg.get("scale_factor"), bool):
        raise fail(kind, f"upsample_cfg {cfg} is not supported: levels are a factor 2 apart, so scale_factor must be 2 (no size)")
    mode = cfg.get("mode", "nearest")
    modes = {"nearest": "nearest", "nearest-exact": "nearest", "area": "nearest", "bilinear": "bilinear", "bicubic": "bicubic"}
    if mode not in modes:
        raise fail(kind, f"upsample_cfg mode {mode!r} is not supported ({', '.join(modes)}: the 2-D modes)")
    align = cfg.get("align_corners")
    if align is not None and modes[mode] == "nearest" or align is not None and not isinstance(align, bool):
        raise fail(kind, f"upsample_cfg align_corners {align!r} is not supported: true or false, with bilinear or bicubic only (as nn.Upsample)")
    return {"upsample_by": "scale", "upsample_mode": modes[mode], "upsample_align_corners": align}


def csp_count(kind: str, cfg: Mapping[str, Any]) -> int:
    """``num_csp_blocks``: a count of at least 0 (``range`` of a negative count builds none, which
    ours would refuse; a float fails in mmdetection's ``range``)."""
    count = cfg.get("num_csp_blocks", 3)
    if isinstance(count, bool) or not isinstance(count, int):
        raise fail(kind, f"num_csp_blocks must be an integer, got {count!r}")
    return max(count, 0)


@register_neck(KIND)
def yolox_pafpn(config: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, config, KEYS)
    in_channels = [int(c) for c in config["in_channels"]]
    first = first_level(KIND, strides, len(in_channels), 3)
    params = {
        "out_channels": int(config["out_channels"]),
        "first_level": first,
        "num_csp_blocks": csp_count(KIND, config),
        "use_depthwise": bool(config.get("use_depthwise", False)),
        **upsample_params(KIND, config.get("upsample_cfg")),
        **unit_params(KIND, config),
    }
    return Conversion("yolox_pafpn", in_channels, params, pafpn_keys(first, len(in_channels)), return_type="tuple")


def pafpn_keys(first: int, levels: int, prefix: str = "") -> KeyMap:
    """The key map of mmdetection's YOLOX-style PAFPN (``reduce_layers``, ``top_down_blocks``,
    ``downsamples``, ``bottom_up_blocks``, ``out_convs``) onto the ``yolox_pafpn`` spec's nodes
    (under ``prefix`` where another spec includes it: CSPNeXtPAFPN's ``pafpn.``)."""
    last = first + levels - 1
    key_map = KeyMap()
    for k in range(levels - 1):
        key_map.add(f"reduce_layers.{k}", f"{prefix}R{last - k}.post0")
        key_map.add(f"top_down_blocks.{k}", f"{prefix}T{last - 1 - k}.post0")
        key_map.add(f"downsamples.{k}", f"{prefix}D{first + 1 + k}.from_B{first + k}")
        key_map.add(f"bottom_up_blocks.{k}", f"{prefix}B{first + 1 + k}.post0")
    for i in range(levels):
        key_map.add(f"out_convs.{i}", f"{prefix}O{first + i}.post0")
    return key_map
