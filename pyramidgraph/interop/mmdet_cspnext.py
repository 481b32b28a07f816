"""mmdetection's ``CSPNeXtPAFPN`` (``mmdet/models/necks/cspnext_pafpn.py``, RTMDet) as the ``cspnext_pafpn`` spec.

The spec includes ``yolox_pafpn`` (the same wiring) as ``pafpn``, so every key is the
YOLOXPAFPN key of the same module under ``pafpn.`` (:mod:`.mmdet_yolox`'s layout); the
CSPNeXt blocks keep mmdetection's inner names (``blocks.0.conv1.conv``,
``blocks.0.conv2.depthwise_conv.bn``). Constructor arguments followed: ``in_channels``,
``out_channels``, ``num_csp_blocks``, ``use_depthwise``, ``expand_ratio``, ``upsample_cfg``
(``scale_factor: 2``, any of nearest, bilinear, bicubic), ``conv_cfg`` (None), ``norm_cfg`` (BN
or SyncBN, with their ``eps`` and ``momentum``) and ``act_cfg`` (an mmcv activation, LeakyReLU
with its default slope only, or None); ``init_cfg`` changes no module.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion
from .mmcv_cfg import check_keys, conv_module, fail, first_level
from .mmdet import register_neck
from .mmdet_yolox import pafpn_keys

KIND = "CSPNeXtPAFPN"
KEYS = {"in_channels", "out_channels", "num_csp_blocks", "use_depthwise", "expand_ratio", "upsample_cfg", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"}
DEFAULT_NORM = {"type": "BN", "momentum": 0.03, "eps": 0.001}


def _upsample(cfg: Mapping[str, Any] | None) -> str:
    """``nn.Upsample(**upsample_cfg)``: only a factor of 2 lines the levels up."""
    cfg = dict(cfg if cfg is not None else {"scale_factor": 2, "mode": "nearest"})
    unknown = set(cfg) - {"scale_factor", "mode", "align_corners"}
    if unknown or cfg.get("scale_factor") not in (2, 2.0) or cfg.get("align_corners"):
        raise fail(KIND, f"upsample_cfg {cfg} is not supported: scale_factor 2 (levels are a factor 2 apart), a mode, no align_corners")
    mode = cfg.get("mode", "nearest")
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise fail(KIND, f"upsample_cfg mode {mode!r} is not supported (nearest, bilinear, bicubic)")
    return mode


@register_neck(KIND)
def convert_cspnext_pafpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    in_channels = [int(c) for c in cfg["in_channels"]]
    unit = conv_module(KIND, cfg.get("norm_cfg", DEFAULT_NORM), cfg.get("act_cfg", {"type": "Swish"}), cfg.get("conv_cfg"))
    if unit["norm"] != "bn":
        raise fail(KIND, f"norm_cfg {cfg.get('norm_cfg')!r} is not supported (BN or SyncBN: the CSP units are conv-BN-act)")
    if unit["act"] == "leaky_relu" and unit["act_slope"] != 0.01:
        raise fail(KIND, "LeakyReLU with a negative_slope other than 0.01 is not supported")
    expand = cfg.get("expand_ratio", 0.5)
    if isinstance(expand, bool) or not isinstance(expand, (int, float)) or expand <= 0:
        raise fail(KIND, f"expand_ratio must be a positive number, got {expand!r}")
    first = first_level(KIND, strides, len(in_channels), 3)
    params = {
        "out_channels": int(cfg["out_channels"]),
        "first_level": first,
        "num_csp_blocks": int(cfg.get("num_csp_blocks", 3)),
        "expand_ratio": float(expand),
        "use_depthwise": bool(cfg.get("use_depthwise", False)),
        "upsample_by": "scale",
        "upsample_mode": _upsample(cfg.get("upsample_cfg")),
        "norm_eps": unit["norm_eps"],
        "norm_momentum": unit["norm_momentum"],
        "act": unit["act"],
    }
    return Conversion("cspnext_pafpn", in_channels, params, pafpn_keys(first, len(in_channels), "pafpn."), return_type="tuple")
