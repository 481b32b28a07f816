"""mmdetection's ``DilatedEncoder`` (YOLOF, ``mmdet/models/necks/dilated_encoder.py``) as the ``dilated_encoder`` spec.

The reference reads only ``feature[-1]``: ``lateral_conv`` (1x1 ``nn.Conv2d`` with bias) and
``lateral_norm`` (BN), ``fpn_conv`` (3x3 with bias) and ``fpn_norm``, then
``dilated_encoder_blocks[k]`` (``Bottleneck``: ConvModules ``conv1`` 1x1, ``conv2`` 3x3 with
dilation and padding ``block_dilations[k]``, ``conv3`` 1x1, each conv-BN-ReLU, then the identity
added). mmdetection 3.3's constructor takes exactly ``in_channels``, ``out_channels``,
``block_mid_channels``, ``num_residual_blocks`` and ``block_dilations`` (all required; the norm
is always BN, the activation always ReLU); the first ``num_residual_blocks`` dilations are read
(a negative count builds no block, as the reference's ``range`` does).
The case's ``strides`` name the one map the neck reads (default: 32, a ResNet's C5).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, fail, first_level
from .mmdet import register_neck

KIND = "DilatedEncoder"
KEYS = {"in_channels", "out_channels", "block_mid_channels", "num_residual_blocks", "block_dilations"}


def single_level(kind: str, strides: list[int]) -> int:
    """The level of the one map a neck that reads ``feature[-1]`` is given (default 5)."""
    if len(strides) > 1:
        raise fail(kind, f"the reference reads only the last feature map (feature[-1]); give that one alone (strides [{strides[-1]}]), not {len(strides)} ({strides})")
    return first_level(kind, strides, 1, 5)


@register_neck(KIND)
def convert_dilated_encoder(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    missing = sorted(KEYS - set(cfg))
    if missing:
        raise fail(KIND, f"'{missing[0]}' is required (the reference's constructor has no default for it)")
    blocks = max(int(cfg["num_residual_blocks"]), 0)  # the reference loops over range(num_residual_blocks): a negative count builds none
    dilations = [int(d) for d in cfg["block_dilations"]]
    if len(dilations) < blocks:
        raise fail(KIND, f"block_dilations lists {len(dilations)} dilations for {blocks} residual blocks (the reference reads block_dilations[i] for each)")
    if any(d < 1 for d in dilations[:blocks]):
        raise fail(KIND, f"block_dilations must be positive, got {dilations[:blocks]}")
    level = single_level(KIND, strides)
    params = {"channels": int(cfg["out_channels"]), "mid": int(cfg["block_mid_channels"]), "blocks": blocks, "dilations": dilations[:blocks] or [1], "level": level}
    key_map = KeyMap()
    key_map.add("lateral_conv", "L.post0.conv")
    key_map.add("lateral_norm", "L.post0.bn")
    key_map.add("fpn_conv", "F.post0.conv")
    key_map.add("fpn_norm", "F.post0.bn")
    for k in range(blocks):
        for conv in ("conv1", "conv2", "conv3"):
            key_map.add(f"dilated_encoder_blocks.{k}.{conv}", f"E{k}.{conv}.post0")
    return Conversion("dilated_encoder", [int(cfg["in_channels"])], params, key_map, return_type="tuple")
