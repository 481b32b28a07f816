"""mmdetection's ``NASFCOS_FPN`` (``mmdet/models/necks/nasfcos_fpn.py``) as the ``nasfcos_fpn`` spec.

The searched cell graph reads exactly three adapted levels and mmdetection resizes the outputs
to ``inputs[1]``, ``inputs[2]`` and ``inputs[3]``, so the converter needs ``start_level`` 1 and
three inputs used from it (``end_level`` -1 with four inputs, or ``end_level`` 3). Arguments
followed: ``in_channels``, ``out_channels``, ``num_outs`` (three plus the stride-2 conv extra
levels), ``start_level``, ``end_level``, ``norm_cfg`` (the cells' input convs: None, BN, SyncBN
or GN) and ``conv_cfg`` (None or Conv2d: plain convs; the paper's DCNv2 is refused). ``add_extra_convs``
is stored by mmdetection and never read (the extra levels are always convs), so any value is
accepted; ``init_cfg`` must be None, as mmdetection asserts. Keys: ``adapt_convs.i`` is
``f<i>.post0``, ``fpn.<cell>.input<k>_conv`` is ``<cell>_in<k>.post0``, ``fpn.<cell>.out_conv``
is ``<cell>.post0`` and ``extra_downsamples.i`` is on the edge ``P<l>.from_P<l - 1>``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import PLAIN_CONVS, check_keys, conv_module, fail, first_level
from .mmdet import register_neck, used_inputs

KIND = "NASFCOS_FPN"
KEYS = {"in_channels", "out_channels", "num_outs", "start_level", "end_level", "add_extra_convs", "conv_cfg", "norm_cfg", "init_cfg"}
CELLS = {"c22_1": (1, 2), "c22_2": (1, 2), "c32": (1,), "c02": (1,), "c42": (1, 2), "c36": (1, 2), "c61": (1, 2)}
"""mmdetection's cells, in its order, with the inputs that have a 3x3 input conv."""


@register_neck(KIND)
def convert_nasfcos_fpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    if cfg.get("init_cfg") is not None:
        raise fail(KIND, "init_cfg must be None (mmdetection asserts it)")
    if not isinstance(cfg["in_channels"], list):
        raise fail(KIND, "in_channels must be a list (mmdetection asserts it)")
    in_channels = [int(c) for c in cfg["in_channels"]]
    start, used, num_outs = used_inputs(KIND, cfg, len(in_channels))
    if start != 1 or used != 3:
        raise fail(KIND, f"the searched cells read exactly three levels and mmdetection resizes the outputs to inputs[1..3], so start_level must be 1 with three inputs used; got start_level {start} with {used} used")
    if cfg.get("conv_cfg") not in PLAIN_CONVS:
        raise fail(KIND, f"conv_cfg {cfg['conv_cfg']!r} is not supported (None or Conv2d: plain convs; the paper's DCNv2 is not modelled)")
    unit = conv_module(KIND, cfg.get("norm_cfg"), {"type": "ReLU"}, None, bias=True)
    first = first_level(KIND, strides, len(in_channels), 2)
    params = {
        "channels": int(cfg["out_channels"]),
        "first_level": first,
        "start": start,
        "extra_levels": num_outs - used,
        "norm": unit["norm"] or "none",
        "norm_groups": unit["norm_groups"],
        "norm_eps": unit["norm_eps"],
        "norm_momentum": unit["norm_momentum"],
    }
    b = first + start
    key_map = KeyMap()
    for i in range(3):
        key_map.add(f"adapt_convs.{i}", f"f{i}.post0")
    for cell, convs in CELLS.items():
        for k in convs:
            key_map.add(f"fpn.{cell}.input{k}_conv", f"{cell}_in{k}.post0")
        key_map.add(f"fpn.{cell}.out_conv", f"{cell}.post0")
    for i in range(num_outs - used):
        key_map.add(f"extra_downsamples.{i}", f"P{b + 3 + i}.from_P{b + 2 + i}")
    return Conversion("nasfcos_fpn", in_channels, params, key_map, return_type="tuple")
