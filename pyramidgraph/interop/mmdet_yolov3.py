"""mmdetection's ``YOLOV3Neck`` (``mmdet/models/necks/yolo_neck.py``) as the ``yolov3_neck`` spec.

mmdetection lists ``in_channels`` and ``out_channels`` coarsest first (``detect1`` reads
``feats[-1]``) and returns its outputs coarsest first; the inputs are fed finest first, as to
every neck. So the spec's inputs are ``in_channels`` reversed, its ``widths`` ``out_channels``
reversed, and its outputs in ``order: coarse_first``. Constructor arguments followed:
``num_scales`` (must equal both lists' lengths, as mmdetection asserts), ``in_channels``,
``out_channels``, ``conv_cfg`` (None or plain ``Conv2d``), ``norm_cfg`` (BN, SyncBN, GN with its
``num_groups``, or None) and ``act_cfg`` (an activation mmcv's registry has, LeakyReLU with its
slope, or None);
``init_cfg`` changes no module. The upsampling is fixed (``scale_factor=2``, nearest): the
constructor takes no ``upsample_cfg``. Keys: ``detect<k>.conv<j>`` is
``O<level>.post<j - 1>`` and ``conv<k>`` is ``U<level>.post0``, each ConvModule's ``conv`` and
``bn``/``gn`` kept.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, first_level, scales_widths, spec_params
from .mmdet import register_neck

KIND = "YOLOV3Neck"
KEYS = {"num_scales", "in_channels", "out_channels", "conv_cfg", "norm_cfg", "act_cfg", "init_cfg"}
DEFAULT_NORM = {"type": "BN", "requires_grad": True}
DEFAULT_ACT = {"type": "LeakyReLU", "negative_slope": 0.1}


@register_neck(KIND)
def convert_yolov3_neck(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    scales, in_channels, out_channels = scales_widths(KIND, cfg, "num_scales {scales} must equal the lengths of in_channels ({ins}) and out_channels ({outs}), and be >= 1")
    unit = conv_module(KIND, cfg.get("norm_cfg", DEFAULT_NORM), cfg.get("act_cfg", DEFAULT_ACT), cfg.get("conv_cfg"))
    first = first_level(KIND, strides, scales, 3)  # strides of the inputs as fed, finest first
    params = {
        "first_level": first,
        "widths": list(reversed(out_channels)),
        "order": "coarse_first",
        "upsample_by": "scale",
        **spec_params(unit),
    }
    top = first + scales - 1
    key_map = KeyMap()
    for k in range(scales):
        level = top - k
        for j in range(5):
            key_map.add(f"detect{k + 1}.conv{j + 1}", f"O{level}.post{j}")
        if k:
            key_map.add(f"conv{k}", f"U{level + 1}.post0")
    return Conversion("yolov3_neck", list(reversed(in_channels)), params, key_map, return_type="tuple")
