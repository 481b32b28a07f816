"""mmdetection's ``BFP``, the Balanced Feature Pyramid of Libra R-CNN (``mmdet/models/necks/bfp.py``).

Gather every input to the size of input ``refine_level`` (``adaptive_max_pool2d`` for finer
inputs, nearest ``interpolate`` for coarser ones), average, refine, and add the refined map
back to every input at its size (nearest ``interpolate`` to finer, ``adaptive_max_pool2d`` to
coarser). ``refine_type``: ``None``; ``'conv'``, ``refine`` = ConvModule 3x3 (conv, norm, relu);
``'non_local'``, ``refine`` = mmcv ``NonLocal2d(reduction=1, use_scale=False)`` with
``g``/``theta``/``phi``/``conv_out`` ConvModules (the norm only on ``conv_out``).

Bundled spec: ``specs/bfp.yaml``. In Libra R-CNN it follows an FPN (``necks: [FPN, BFP]``,
chained by :mod:`.mmdet`).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap
from .mmdet import register_neck
from .mmdet_nasfpn import SOURCE, input_levels, mmcv_norm


@register_neck("BFP")
def convert_bfp(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    channels = int(cfg["in_channels"])
    num_levels = int(cfg["num_levels"])
    refine_level = int(cfg.get("refine_level", 2))
    refine = cfg.get("refine_type")
    if not 0 <= refine_level < num_levels:
        raise ConversionError(SOURCE, f"BFP: refine_level {refine_level} must be an input index (0..{num_levels - 1})")
    if refine not in (None, "conv", "non_local"):
        raise ConversionError(SOURCE, f"BFP: refine_type must be None, 'conv' or 'non_local', got {refine!r}")
    if cfg.get("conv_cfg") not in (None, {"type": "Conv2d"}, {"type": "Conv"}):
        raise ConversionError(SOURCE, f"BFP: conv_cfg {cfg['conv_cfg']!r} is not supported (plain Conv2d only)")
    first_level = input_levels(strides, num_levels, "BFP")
    norm = mmcv_norm(cfg.get("norm_cfg"), "BFP")
    params: dict[str, Any] = {
        "first_level": first_level,
        "refine_level": refine_level,
        "refine": "none" if refine is None else refine,
        "norm": norm["norm"],
        "norm_groups": norm["norm_groups"],
        "norm_eps": norm["norm_eps"],
    }
    key_map = KeyMap()
    layer = norm["layer"]
    if refine == "conv":
        key_map.add("refine.conv", "refined.post0")
        if layer:
            key_map.add(f"refine.{layer}", "refined.post1")
    elif refine == "non_local":
        for part in ("g", "theta", "phi", "conv_out"):
            key_map.add(f"refine.{part}.conv", f"refined.post0.{part}")
        if layer:
            key_map.add(f"refine.conv_out.{layer}", "refined.post0.norm")
    return Conversion("bfp", [channels] * num_levels, params, key_map, return_type="tuple")
