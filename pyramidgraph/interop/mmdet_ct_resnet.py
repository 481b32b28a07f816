"""mmdetection's ``CTResNetNeck`` (CenterNet, ``mmdet/models/necks/ct_resnet_neck.py``) as the ``ct_resnet_neck`` spec.

The reference reads only ``x[-1]`` and runs ``deconv_layers``, a Sequential of, per stage ``i``,
a ConvModule 3x3 (padding 1, BN, ReLU, no bias) to ``num_deconv_filters[i]`` at ``2i`` and a
ConvModule with ``conv_cfg=dict(type='deconv')`` (``nn.ConvTranspose2d`` of kernel
``num_deconv_kernels[i]``, stride 2, padding 1, no bias; BN, ReLU) at ``2i + 1``; it returns a
1-tuple. ``use_dcn`` (default True, as the reference) makes the 3x3 conv at ``2i`` mmcv's DCNv2
(``conv_cfg=dict(type='DCNv2')``: ``ModulatedDeformConv2dPack``, no bias before the BN, with
its ``conv_offset``), the spec's ``modulated_deform_conv`` post op followed by ``bn`` and
``relu``; with ``use_dcn: false`` it is the spec's ``conv_module``. The reference tests
``use_dcn`` for truth; the converter takes a bool, a number or None as the reference reads
them, and refuses a string (``'false'`` is true there). Checkpoints from before mmcv's
``ModulatedDeformConv2dPack`` version 2 name the offset conv ``deconv_layers.{2i}.conv_offset``
(mmcv renames it on load): those load too. ``init_cfg`` changes no architecture.
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
    missing = sorted({"in_channels", "num_deconv_filters", "num_deconv_kernels"} - set(cfg))
    if missing:
        raise fail(KIND, f"'{missing[0]}' is required (the reference's constructor has no default for it)")
    use_dcn = cfg.get("use_dcn", True)
    if use_dcn is not None and not isinstance(use_dcn, (bool, int)):
        # the reference tests it for truth: a number or None reads as it does there, but a string ("false") would build DCNs
        raise fail(KIND, f"use_dcn must be true or false, got {use_dcn!r} (the reference only tests it for truth, so a string such as 'false' means true there; write the bool)")
    use_dcn = bool(use_dcn)
    for key in ("num_deconv_filters", "num_deconv_kernels"):
        if not isinstance(cfg[key], (list, tuple)):
            raise fail(KIND, f"{key} must be a list with one entry per stage (the reference indexes it), got {cfg[key]!r}")
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
        if use_dcn:  # ConvModule's conv (with its conv_offset) and bn: the spec's dcn and bn post ops
            key_map.add(f"deconv_layers.{2 * i}.conv", f"S{i}.post0")
            key_map.add(f"deconv_layers.{2 * i}.bn", f"S{i}.post1")
            # checkpoints of mmcv's ModulatedDeformConv2dPack before its version 2 name the offset conv conv_offset beside conv (mmcv renames it on load)
            key_map.add(f"deconv_layers.{2 * i}.conv_offset", f"S{i}.post0.conv_offset")
        else:
            key_map.add(f"deconv_layers.{2 * i}", f"S{i}.post0")
        key_map.add(f"deconv_layers.{2 * i + 1}.conv", f"U{i}.from_S{i}.via0.deconv")
        key_map.add(f"deconv_layers.{2 * i + 1}.bn", f"U{i}.post0")
    params = {"filters": filters, "kernels": kernels, "use_dcn": use_dcn, "level": level}
    return Conversion("ct_resnet_neck", [int(cfg["in_channels"])], params, key_map, return_type="tuple")
