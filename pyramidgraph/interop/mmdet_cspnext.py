"""mmdetection's ``CSPNeXtPAFPN`` (``mmdet/models/necks/cspnext_pafpn.py``, RTMDet) as the ``cspnext_pafpn`` spec.

The spec includes ``yolox_pafpn`` (the same wiring) as ``pafpn``, so every key is the
YOLOXPAFPN key of the same module under ``pafpn.`` (:mod:`.mmdet_yolox`'s layout); the
CSPNeXt blocks keep mmdetection's inner names (``blocks.0.conv1.conv``,
``blocks.0.conv2.depthwise_conv.bn``). Constructor arguments followed: ``in_channels`` (one or
more levels), ``out_channels``, ``num_csp_blocks``, ``use_depthwise``, ``expand_ratio`` (a
positive number), and ``upsample_cfg``, ``conv_cfg``, ``norm_cfg`` and ``act_cfg`` as
:mod:`.mmdet_yolox` reads them (``scale_factor: 2`` in any 2-D mode with its ``align_corners``;
plain conv; BN, SyncBN, GN with ``num_groups`` or None; an mmcv activation with LeakyReLU's
slope, or None); ``init_cfg`` changes no module. The neck takes no ``channel_attention`` (its CSP
layers run without), so that, like any argument it does not take, is refused.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion
from .mmcv_cfg import check_keys, fail, first_level
from .mmdet import register_neck
from .mmdet_yolox import csp_count, pafpn_keys, unit_params, upsample_params

KIND = "CSPNeXtPAFPN"
KEYS = {"in_channels", "out_channels", "num_csp_blocks", "use_depthwise", "expand_ratio", "upsample_cfg", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"}


@register_neck(KIND)
def convert_cspnext_pafpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    in_channels = [int(c) for c in cfg["in_channels"]]
    expand = cfg.get("expand_ratio", 0.5)
    if isinstance(expand, bool) or not isinstance(expand, (int, float)) or expand <= 0:
        raise fail(KIND, f"expand_ratio must be a positive number, got {expand!r}")
    first = first_level(KIND, strides, len(in_channels), 3)
    params = {
        "out_channels": int(cfg["out_channels"]),
        "first_level": first,
        "num_csp_blocks": csp_count(KIND, cfg),
        "expand_ratio": float(expand),
        "use_depthwise": bool(cfg.get("use_depthwise", False)),
        **upsample_params(KIND, cfg.get("upsample_cfg")),
        **unit_params(KIND, cfg),
    }
    return Conversion("cspnext_pafpn", in_channels, params, pafpn_keys(first, len(in_channels), "pafpn."), return_type="tuple")
