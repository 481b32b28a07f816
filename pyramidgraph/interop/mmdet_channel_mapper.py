"""mmdetection's ``ChannelMapper`` (``mmdet/models/necks/channel_mapper.py``) as the ``channel_mapper`` spec.

``convs[i]``: a ConvModule ``kernel_size`` x ``kernel_size`` (padding ``(kernel_size - 1) // 2``)
from each input to ``out_channels``; with ``num_outs`` above the number of inputs,
``extra_convs[j]``: ConvModules 3x3 stride 2 (padding 1), the first on the last *input*, the
others on the previous extra level. ``num_outs`` None or at most the inputs adds nothing (the
reference ignores a smaller value). Every ConvModule takes the neck's ``conv_cfg`` (None),
``norm_cfg`` (None, BN, SyncBN or GN), ``act_cfg`` (None or an mmcv activation; default ReLU)
and ``bias`` (``'auto'``: only without a norm; any other value is handed to ``nn.Conv2d``, which
tests its truth, so it is read as ``bool(bias)``, as the reference runs it). ``in_channels``
must be a list (the reference asserts exactly that: a tuple or an int is refused). ``init_cfg``
changes no architecture (the spec inits its convs xavier-uniform, as the reference's default).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, fail, first_level, spec_params, widths
from .mmdet import register_neck

KIND = "ChannelMapper"
KEYS = {"in_channels", "out_channels", "kernel_size", "conv_cfg", "norm_cfg", "act_cfg", "bias", "num_outs", "init_cfg"}


@register_neck(KIND)
def convert_channel_mapper(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    if not isinstance(cfg["in_channels"], list):
        raise fail(KIND, f"in_channels must be a list (the reference asserts it), got {cfg['in_channels']!r}")
    in_channels = widths(cfg)
    if not in_channels:
        raise fail(KIND, "in_channels must list at least one input")
    kernel = cfg.get("kernel_size", 3)
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1:
        raise fail(KIND, f"kernel_size must be a positive integer (the reference pads by (kernel_size - 1) // 2), got {kernel!r}")
    num_outs = cfg.get("num_outs")
    num_outs = len(in_channels) if num_outs is None else int(num_outs)
    extra = max(num_outs - len(in_channels), 0)
    bias = cfg.get("bias", "auto")
    bias = bias if isinstance(bias, str) and bias == "auto" else bool(bias)  # nn.Conv2d's `if bias:`
    unit = conv_module(KIND, cfg.get("norm_cfg"), cfg.get("act_cfg", {"type": "ReLU"}), cfg.get("conv_cfg"), bias)
    first = first_level(KIND, strides, len(in_channels), 3)
    params: dict[str, Any] = {
        "channels": int(cfg["out_channels"]),
        "first_level": first,
        "kernel": kernel,
        "extra_levels": extra,
        **spec_params(unit),
    }
    top = first + len(in_channels) - 1
    key_map = KeyMap()
    for i in range(len(in_channels)):
        key_map.add(f"convs.{i}", f"P{first + i}.post0")
    for j in range(extra):
        level = top + 1 + j
        source = f"C{top}" if j == 0 else f"P{level - 1}"
        key_map.add(f"extra_convs.{j}", f"P{level}.from_{source}.via0")
    return Conversion("channel_mapper", in_channels, params, key_map, return_type="tuple")
