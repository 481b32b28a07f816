"""mmdetection's ``HRFPN`` (``mmdet/models/necks/hrfpn.py``) as the ``hrfpn`` spec.

``reduction_conv`` (ConvModule 1x1 with bias, no norm, no activation) on the concatenation of
every input bilinearly upsampled by ``2**i`` to the first; ``fpn_convs[i]`` (ConvModule 3x3,
padding 1, ``stride``, bias, no activation) on the reduced map average- or max-pooled by
``2**i`` (``pooling_type``: exactly ``'MAX'`` max-pools, any other value averages, as the
reference compares), for ``i < num_outs``. ``conv_cfg`` reaches the ConvModules (plain
Conv2d only); ``norm_cfg`` is stored by the reference and never used, so it is accepted and
changes nothing; ``with_cp`` (gradient checkpointing, any value: the reference only tests its truth) saves
training memory only and ``init_cfg`` changes no architecture: both are accepted. Refused:
``num_outs`` 0 (the reference returns an empty tuple; a neck here has outputs) and output conv
strides other than 1, 2, 4, 8 (the outputs would not be pyramid levels).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, fail, first_level, plain_conv
from .mmdet import register_neck

KIND = "HRFPN"
KEYS = {"in_channels", "out_channels", "num_outs", "pooling_type", "conv_cfg", "norm_cfg", "with_cp", "stride", "init_cfg"}
STRIDES = (1, 2, 4, 8)


@register_neck(KIND)
def convert_hrfpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    if not isinstance(cfg["in_channels"], list) or not cfg["in_channels"]:
        raise fail(KIND, f"in_channels must be a non-empty list (the reference asserts a list), got {cfg['in_channels']!r}")
    in_channels = [int(c) for c in cfg["in_channels"]]
    num_outs = int(cfg.get("num_outs", 5))
    if num_outs < 1:
        raise fail(KIND, f"num_outs must be at least 1, got {num_outs}")
    pooling = "max" if cfg.get("pooling_type", "AVG") == "MAX" else "avg"  # the reference compares with 'MAX' exactly and averages otherwise ('max' too)
    stride = cfg.get("stride", 1)
    if stride not in STRIDES or isinstance(stride, bool):
        raise fail(KIND, f"stride {stride!r} is not supported: the output convs' stride must be 1, 2, 4 or 8 so that each output stays a pyramid level")
    plain_conv(KIND, cfg.get("conv_cfg"))
    first = first_level(KIND, strides, len(in_channels), 2)
    params = {"channels": int(cfg["out_channels"]), "first_level": first, "num_outs": num_outs, "pooling": pooling, "stride": stride}
    step = stride.bit_length() - 1
    key_map = KeyMap()
    key_map.add("reduction_conv", "R.post0")
    for i in range(num_outs):
        source = "R" if i == 0 else f"S{first + i}"
        key_map.add(f"fpn_convs.{i}", f"P{first + step + i}.from_{source}.via0")
    return Conversion("hrfpn", in_channels, params, key_map, return_type="tuple")
