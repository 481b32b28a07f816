"""mmdetection's ``DyHead`` (``mmdet/models/necks/dyhead.py``) as the ``dyhead`` spec.

Constructor arguments followed: ``in_channels`` (one width for every level, as mmdet's),
``out_channels`` (a multiple of 16: each DCN's GroupNorm has 16 groups), ``num_blocks`` (0 or
more) and ``zero_init_offset`` (initialisation only). ``init_cfg`` must be None, as mmdet
asserts. mmdet's DyHead runs on as many levels as it is given, so the config's ``strides``
(consecutive powers of two) say how many and where they start; in the usual chain
``[FPN, DyHead]`` they are the FPN's outputs. Keys: block ``i``'s modules
(``dyhead_blocks.i.spatial_conv_high.conv.weight``...) are the ``dyhead_block`` op's of node
``B<i>`` under the same names (``B<i>.op.spatial_conv_high.conv.weight``).

With one level only the mid conv runs, but the low and high convs exist, as in mmdet (whose
checkpoints hold them). mmcv-lite's modulated deformable conv has no CPU kernel, so the
recordings (``tests/interop/fixtures/mmdet_dyhead_*.pt``, the sweep ``tests/sweeps/mmdet_dyhead.py``)
run mmdet's own DyHead with that conv's function done by torchvision's ``deform_conv2d``;
``tests/test_dyhead.py`` also checks the spec against a direct computation and loads a
state_dict of mmdet's key names and shapes strictly. An argument the constructor does not take
is refused, as its ``TypeError``.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, fail, first_level, no_init_cfg
from .mmdet import register_neck

__all__ = ["dyhead"]

KIND = "DyHead"
KNOWN_KEYS = ("in_channels", "out_channels", "num_blocks", "zero_init_offset", "init_cfg")


def _count(config: Mapping[str, Any], key: str, default: int | None, least: int) -> int:
    if key not in config and default is None:
        raise fail(KIND, f"'{key}' is required")
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        why = " (mmdet's DyHead takes one width for every level)" if key == "in_channels" and isinstance(value, (list, tuple)) else ""
        raise fail(KIND, f"{key} must be an integer, not {value!r}{why}")
    if value < least:
        raise fail(KIND, f"{key} must be at least {least}, got {value}")
    return value


@register_neck(KIND)
def dyhead(config: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, config, KNOWN_KEYS)
    no_init_cfg(KIND, config, "mmdet asserts it: the blocks initialise themselves")
    in_channels = _count(config, "in_channels", None, 1)
    out_channels = _count(config, "out_channels", None, 1)
    if out_channels % 16:
        raise fail(KIND, f"out_channels {out_channels} is not a multiple of 16: each DCN's GroupNorm has 16 groups")
    num_blocks = _count(config, "num_blocks", 6, 0)
    zero_init_offset = config.get("zero_init_offset", True)
    if not isinstance(zero_init_offset, bool):
        raise fail(KIND, f"zero_init_offset must be true or false, not {zero_init_offset!r}")
    if not strides:
        raise fail(KIND, "the config gives no strides: DyHead runs on as many levels as it is given, so 'strides' must list them (e.g. [8, 16, 32, 64, 128])")
    params = {"out_channels": out_channels, "num_blocks": num_blocks, "zero_init_offset": zero_init_offset, "first_level": first_level(KIND, strides, len(strides), 3)}
    key_map = KeyMap()
    for block in range(num_blocks):
        key_map.add(f"dyhead_blocks.{block}", f"B{block}.op")
    return Conversion("dyhead", [in_channels] * len(strides), params, key_map, return_type="tuple")
