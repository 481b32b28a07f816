"""mmdetection's ``SSH`` (``mmdet/models/necks/ssh.py``) as the ``ssh`` spec.

``ssh_module{i}`` (an ``SSHDetModule``) per level: ``conv3x3`` (ConvModule 3x3 to
``out_channels[i] // 2``, no activation) and ``context_module`` (``conv5x5_1`` with ReLU to a
quarter, then ``conv5x5_2`` without activation, and ``conv7x7_2`` with ReLU then
``conv7x7_3`` without, each to a quarter), concatenated and passed through ReLU. The
ConvModules take ``conv_cfg`` (None) and ``norm_cfg`` (BN by default; None, BN, SyncBN or GN),
a bias only without a norm. ``num_scales``, ``in_channels`` and ``out_channels`` must agree in
length and each width be a multiple of 4, as the reference asserts. ``init_cfg`` changes no
architecture.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, fail, first_level, scales_widths, spec_params
from .mmdet import register_neck

KIND = "SSH"
KEYS = {"num_scales", "in_channels", "out_channels", "conv_cfg", "norm_cfg", "init_cfg"}
# the reference's ConvModules -> the spec's node of each level
MODULES = {"conv3x3": "A{l}", "context_module.conv5x5_1": "B{l}", "context_module.conv5x5_2": "F5_{l}", "context_module.conv7x7_2": "D{l}", "context_module.conv7x7_3": "F7_{l}"}


@register_neck(KIND)
def convert_ssh(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    scales, in_channels, widths = scales_widths(KIND, cfg, "num_scales ({scales}), in_channels ({ins} widths) and out_channels ({outs} widths) must agree, as the reference asserts")
    odd = [w for w in widths if w % 4]
    if odd:
        raise fail(KIND, f"out_channels must be multiples of 4 (a half and two quarters are concatenated), got {odd[0]}")
    unit = conv_module(KIND, cfg.get("norm_cfg", {"type": "BN"}), None, cfg.get("conv_cfg"))
    first = first_level(KIND, strides, scales, 3)
    params: dict[str, Any] = {
        "widths": widths,
        "first_level": first,
        **spec_params(unit, act=False, bias=False),
    }
    key_map = KeyMap()
    for i in range(scales):
        for reference, node in MODULES.items():
            key_map.add(f"ssh_module{i}.{reference}", f"{node.format(l=first + i)}.post0")
    return Conversion("ssh", in_channels, params, key_map, return_type="tuple")
