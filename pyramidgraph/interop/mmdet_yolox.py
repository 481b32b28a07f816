"""mmdetection's ``YOLOXPAFPN`` (``mmdet/models/necks/yolox_pafpn.py``) as the ``yolox_pafpn`` spec.

Constructor arguments followed: ``in_channels``, ``out_channels``, ``num_csp_blocks``,
``use_depthwise``, ``upsample_cfg`` (``scale_factor: 2`` with any interpolation mode, or
``size``-free configs only), ``norm_cfg`` (BN or SyncBN, which are the same in inference,
with their ``eps`` and ``momentum``), ``act_cfg`` (Swish/SiLU, ReLU, LeakyReLU, ...,
or None) and ``conv_cfg`` (None). ``init_cfg`` changes no architecture. Keys: each
``ConvModule`` keeps its ``conv``/``bn`` tail and each ``CSPLayer`` its inner names, so
every reference module maps to one spec module by prefix.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap
from .mmdet import register_neck

_ACTS = {"Swish": "silu", "SiLU": "silu", "ReLU": "relu", "ReLU6": "relu6", "LeakyReLU": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HSwish": "hardswish", "GELU": "gelu", "Mish": "mish"}


def _fail(message: str) -> Exception:
    return ConversionError("mmdet", f"YOLOXPAFPN: {message}")


def _norm(cfg: Mapping[str, Any] | None) -> tuple[float, float]:
    cfg = dict(cfg if cfg is not None else {"type": "BN", "momentum": 0.03, "eps": 0.001})
    if cfg.get("type") not in ("BN", "BN2d", "SyncBN"):
        raise _fail(f"norm_cfg type {cfg.get('type')!r} is not supported (BN or SyncBN)")
    return float(cfg.get("eps", 1e-5)), float(cfg.get("momentum", 0.1))


def _act(cfg: Mapping[str, Any] | None) -> str | None:
    if cfg is None:
        return None
    kind = cfg.get("type")
    if kind not in _ACTS:
        raise _fail(f"act_cfg type {kind!r} is not supported ({', '.join(_ACTS)} or None)")
    if kind == "LeakyReLU" and cfg.get("negative_slope", 0.01) != 0.01:
        raise _fail("LeakyReLU with a negative_slope other than 0.01 is not supported")
    return _ACTS[kind]


def _upsample(cfg: Mapping[str, Any] | None) -> str:
    cfg = dict(cfg if cfg is not None else {"scale_factor": 2, "mode": "nearest"})
    if cfg.get("size") is not None or cfg.get("scale_factor") not in (2, 2.0):
        raise _fail(f"upsample_cfg {cfg} is not supported: levels are a factor 2 apart, so scale_factor must be 2")
    if cfg.get("align_corners"):
        raise _fail("upsample_cfg align_corners is not supported")
    mode = cfg.get("mode", "nearest")
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise _fail(f"upsample mode {mode!r} is not supported (nearest, bilinear, bicubic)")
    return mode


@register_neck("YOLOXPAFPN")
def yolox_pafpn(config: Mapping[str, Any], strides: list[int]) -> Conversion:
    in_channels = [int(c) for c in config["in_channels"]]
    if config.get("conv_cfg") is not None:
        raise _fail("conv_cfg must be None (plain Conv2d)")
    first = (strides[0].bit_length() - 1) if strides else 3
    if strides and (2**first != strides[0] or list(strides) != [2 ** (first + i) for i in range(len(strides))]):
        raise _fail(f"strides must be consecutive powers of two, got {strides}")
    if strides and len(strides) != len(in_channels):
        raise _fail(f"{len(strides)} strides for {len(in_channels)} inputs")
    eps, momentum = _norm(config.get("norm_cfg"))
    act = _act(config.get("act_cfg", {"type": "Swish"}))
    params = {
        "out_channels": int(config["out_channels"]),
        "first_level": first,
        "num_csp_blocks": int(config.get("num_csp_blocks", 3)),
        "use_depthwise": bool(config.get("use_depthwise", False)),
        "upsample_by": "scale",
        "upsample_mode": _upsample(config.get("upsample_cfg")),
        "norm_eps": eps,
        "norm_momentum": momentum,
        "act": act,
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
