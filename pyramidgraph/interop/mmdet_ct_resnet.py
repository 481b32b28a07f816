"""mmdetection's ``CTResNetNeck`` (CenterNet, ``mmdet/models/necks/ct_resnet_neck.py``) as the ``ct_resnet_neck`` spec.

The reference reads only ``x[-1]`` and runs ``deconv_layers``, a Sequential of, per stage ``i``,
a ConvModule 3x3 (padding 1, BN, ReLU, no bias) to ``num_deconv_filters[i]`` at ``2i`` and a
ConvModule with ``conv_cfg=dict(type='deconv')`` (``nn.ConvTranspose2d`` of kernel
``num_deconv_kernels[i]``, stride 2, padding 1, no bias; BN, ReLU) at ``2i + 1``; it returns a
1-tuple. ``use_dcn`` defaults to True in the reference (a DCNv2 3x3 conv at ``2i``), which the
spec library does not model yet: the converter refuses it; give ``use_dcn: false`` (mmdetection's
CenterNet R18 config does). ``init_cfg`` changes no architecture.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, fail
from .mmdet import register_neck
from .mmdet_dilated_encoder import single_level

KIND = "CTResNetNeck"
KEYS = {"in_channels", "num_deconv_filters", "num_deconv_kernels", "use_dcn", "init_cfg"}


@register_neck(KIND)
def convert_ct_resnet_neck(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    if cfg.get("use_dcn", True):
        raise fail(KIND, "use_dcn=True (the reference's default) puts a modulated deformable conv (DCNv2) in every stage, which no op models yet; only use_dcn: false converts")
    filters = [int(f) for f in cfg["num_deconv_filters"]]
    kernels = [int(k) for k in cfg["num_deconv_kernels"]]
    if len(filters) != len(kernels):
        raise fail(KIND, f"num_deconv_filters ({len(filters)}) and num_deconv_kernels ({len(kernels)}) must have the same length, as the reference asserts")
    if not filters:
        raise fail(KIND, "num_deconv_filters is empty: the neck would return its input unchanged, which a spec with no node cannot express")
    odd = [k for k in kernels if k != 4]
    if odd:
        raise fail(KIND, f"num_deconv_kernels {odd[0]}: with the reference's fixed stride 2 and padding 1 a transposed conv of kernel k gives 2 * size + k - 4, so only 4 makes the next pyramid level")
    level = single_level(KIND, strides)
    if len(filters) > level:
        raise fail(KIND, f"{len(filters)} stages would go {len(filters)} levels finer than the input's level {level}")
    key_map = KeyMap()
    for i in range(len(filters)):
        key_map.add(f"deconv_layers.{2 * i}", f"S{i}.post0")
        key_map.add(f"deconv_layers.{2 * i + 1}.conv", f"U{i}.from_S{i}.via0.deconv")
        key_map.add(f"deconv_layers.{2 * i + 1}.bn", f"U{i}.post0")
    params = {"filters": filters, "kernels": kernels, "level": level}
    return Conversion("ct_resnet_neck", [int(cfg["in_channels"])], params, key_map, return_type="tuple")
