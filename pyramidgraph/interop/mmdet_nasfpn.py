"""mmdetection's ``NASFPN`` (``mmdet/models/necks/nas_fpn.py``, cells from ``mmcv/ops/merge_cells.py``).

Laterals ``lateral_convs[i]`` (ConvModule 1x1, norm, no activation) on inputs ``start_level ..
backbone_end_level - 1``; ``extra_downsamples[j]`` (``Sequential(ConvModule 1x1, MaxPool2d(2, 2))``)
on the last feature until there are five (the forward unpacks exactly ``p3..p7``); then
``stack_times`` stages ``fpn_stages[k]`` of nine merge cells. A cell with an output conv holds
``out_conv`` (ConvModule 3x3 with bias, order act-conv-norm). ``end_level`` follows mmdet 3.x:
an *inclusive* input index (``-1``: the last input). ``add_extra_convs`` (accepted by mmdet 2.x,
never used there) and ``init_cfg`` do not change the module and are ignored.

Bundled spec: ``specs/nasfpn.yaml``; mmcv's choices (second input gates, average pooling, zero
padding before pooling to an odd size) are its ``gate_input``, ``gate_pool`` and the
``merge_resize`` op.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap
from .mmdet import MMDetNecks, register_neck, used_inputs

SOURCE = MMDetNecks.source

# mmdet's cell name -> (the paper's level of its spec node, 3..7; node suffix; whether it has out_conv)
CELLS = {
    "gp_64_4": (4, "_1", True),
    "sum_44_4": (4, "_2", True),
    "sum_43_3": (3, "_out", True),
    "sum_34_4": (4, "_out", True),
    "gp_43_5": (5, "_gp", False),
    "sum_55_5": (5, "_out", True),
    "gp_54_7": (7, "_gp", False),
    "sum_77_7": (7, "_out", True),
    "gp_75_6": (6, "_out", True),
}


def mmcv_norm(cfg: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """mmcv ``norm_cfg`` -> spec parameters ``norm``, ``norm_groups``, ``norm_eps`` and the
    layer name ConvModule gives it (``bn``, ``gn``)."""
    if cfg is None:
        return {"norm": "none", "norm_groups": 32, "norm_eps": 1e-5, "layer": None}
    kind = str(cfg.get("type", ""))
    eps = float(cfg.get("eps", 1e-5))
    if kind in ("BN", "BN2d", "SyncBN", "naiveSyncBN2d"):
        return {"norm": "bn", "norm_groups": 32, "norm_eps": eps, "layer": "bn"}
    if kind == "GN":
        if "num_groups" not in cfg:
            raise ConversionError(SOURCE, f"{where}: norm_cfg GN needs num_groups")
        return {"norm": "gn", "norm_groups": int(cfg["num_groups"]), "norm_eps": eps, "layer": "gn"}
    raise ConversionError(SOURCE, f"{where}: norm_cfg type {kind!r} is not supported (BN, SyncBN, GN or None)")


def input_levels(strides: list[int], count: int, where: str) -> int:
    """The level of the finest input; inputs must be consecutive powers of two."""
    if len(strides) != count:
        raise ConversionError(SOURCE, f"{where}: {count} inputs but {len(strides)} strides")
    levels = [s.bit_length() - 1 for s in strides]
    if any(2**level != s for level, s in zip(levels, strides)) or levels != list(range(levels[0], levels[0] + count)):
        raise ConversionError(SOURCE, f"{where}: strides must be consecutive powers of two, got {strides}")
    return levels[0]


@register_neck("NASFPN")
def convert_nasfpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    in_channels = list(cfg["in_channels"])
    num_ins = len(in_channels)
    first_level = input_levels(strides, num_ins, "NASFPN")
    stack_times = int(cfg["stack_times"])
    start, used, num_outs = used_inputs("NASFPN", cfg, num_ins)
    if num_outs != 5:
        raise ConversionError(SOURCE, f"NASFPN: the reference's forward unpacks exactly five levels (p3..p7), so num_outs must be 5, got {num_outs}")
    if stack_times < 0:
        raise ConversionError(SOURCE, f"NASFPN: stack_times must be >= 0, got {stack_times}")
    norm = mmcv_norm(cfg.get("norm_cfg"), "NASFPN")
    base = first_level + start
    params: dict[str, Any] = {
        "channels": int(cfg["out_channels"]),
        "first_level": first_level,
        "start": start,
        "used": used,
        "stack_times": stack_times,
        "norm": norm["norm"],
        "norm_groups": norm["norm_groups"],
        "norm_eps": norm["norm_eps"],
        "gate_input": "last",
        "gate_pool": "avg",
        "upsample": "nearest",
    }
    key_map = KeyMap()
    layer = norm["layer"]

    def conv_module(reference: str, node: str, conv_index: int) -> None:
        key_map.add(f"{reference}.conv", f"{node}.post{conv_index}")
        if layer:
            key_map.add(f"{reference}.{layer}", f"{node}.post{conv_index + 1}")

    for i in range(used):
        conv_module(f"lateral_convs.{i}", f"P{base + i}", 0)
    for j in range(5 - used):
        conv_module(f"extra_downsamples.{j}.0", f"P{base + used + j}_conv", 0)
    for k in range(stack_times):
        for cell, (paper_level, suffix, with_conv) in CELLS.items():
            if with_conv:  # post0 is the relu, post1 the conv
                conv_module(f"fpn_stages.{k}.{cell}.out_conv", f"stage{k}.P{base + paper_level - 3}{suffix}", 1)
    return Conversion("nasfpn", in_channels, params, key_map, return_type="tuple")
