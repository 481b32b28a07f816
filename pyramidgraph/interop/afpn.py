"""AFPN, the authors' mmdetection neck (gyyang23/AFPN: ``mmdetection/mmdet/models/necks/afpn.py``,
class ``AFPN``).

The constructor takes ``in_channels`` (four widths, C2..C5 of a ResNet by default
``[256, 512, 1024, 2048]``; the reference reads the first four of a longer list and ignores the
rest, and so does the converter) and ``out_channels`` (256); everything else is hard-coded (fusion
widths ``in_channels // 8``, ``compress_c`` 8, four BasicBlocks per stage). ``strides`` (the
inputs' strides, ``[4, 8, 16, 32]`` by default) is not the reference's: it only places the maps
in the pyramid (four consecutive levels). The neck takes the four maps finest first (a tuple)
and returns five, finest first, the fifth a kernel-1 stride-2 max pool of the fourth. No image
is assumed: the compiled neck checks the sizes it is given and runs at every size where each map
is exactly twice the next, as the reference does (others fail there with a ``NeckInputError``
that states the rule).

Bundled spec: ``specs/afpn.yaml``. Key names: the reference's ``BasicConv`` (``conv``, ``bn``)
is one ``conv_bn_act`` of the spec (``conv``, ``bn``), its ``Sequential`` of ``BasicBlock``
(``<i>.conv1``...) one ``basic_block`` with the same inner names, ``ASFF_2/3/4`` one
``pixel_weights`` fusion. ``BlockBody`` sits in a ``Sequential`` (``body.0.*``). Its modules are
named by level (``scalezero`` .. ``scalethree``) and stage; the weight branches of ``ASFF_2``
and ``ASFF_3`` are numbered from 1 (``weight_level_1``...), those of ``ASFF_4`` from 0, ours from
0 in every stage.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, doubling_strides, refuse_unknown_keys, register_reference

SOURCE = "afpn.AFPN"
KNOWN_KEYS = frozenset({"in_channels", "out_channels", "strides"})
DEFAULT_IN_CHANNELS = [256, 512, 1024, 2048]
DEFAULT_STRIDES = [4, 8, 16, 32]
REDUCTION = 8
"""The reference's fusion widths are ``in_channels // 8``."""
SCALE_NAMES = ("zero", "one", "two", "three")
"""How the reference names its four levels, finest first (``blocks_scalezero1``...)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _in_channels(config: Mapping[str, Any]) -> list[int]:
    widths = config.get("in_channels", DEFAULT_IN_CHANNELS)
    if not isinstance(widths, (list, tuple)):
        raise ConversionError(SOURCE, f"in_channels must be a list of the four input widths, not {widths!r}")
    if len(widths) < 4:
        raise ConversionError(SOURCE, f"AFPN fuses exactly four maps (C2..C5, finest first): in_channels must list 4 widths, got {len(widths)}")
    widths = widths[:4]  # the reference reads in_channels[0..3] and never looks at more
    for index, width in enumerate(widths):
        if not _is_int(width) or width < REDUCTION:
            raise ConversionError(SOURCE, f"in_channels[{index}] must be an integer of at least {REDUCTION} (the reference works at in_channels // {REDUCTION}), not {width!r}")
    return list(widths)


def _first_level(strides: Any) -> int:
    """The finest input's level from ``strides``: four powers of two, each twice the one before
    (the reference resamples between its maps by exact factors of 2, 4 and 8)."""
    why = "AFPN resamples between its maps by exact factors of 2, 4 and 8, so the strides must be powers of two, each twice the one before ([4, 8, 16, 32])"
    return doubling_strides(SOURCE, "strides", strides, 4, "the four inputs' strides, finest first ([4, 8, 16, 32])", why)


def _source(stage: int, index: int, level: int) -> str:
    """Our node that stage ``stage`` reads at level index ``index`` (pyramid level ``level``): the
    previous stage's output, or, for the level the stage adds (and in stage 1), the level's 1x1
    units ``R<level>``."""
    return f"S{stage - 1}_{level}" if stage > 1 and index < stage else f"R{level}"


def _key_map(first: int) -> KeyMap:
    key_map = KeyMap()
    for i in range(4):
        level = first + i
        key_map.add(f"conv{i}", f"R{level}.post0")
        key_map.add(f"body.0.blocks_scale{SCALE_NAMES[i]}1.0", f"R{level}.post1")
        key_map.add(f"conv{i}{i}", f"P{level}.post0")
    for stage in (1, 2, 3):
        offset = 0 if stage == 3 else 1  # ASFF_4 numbers its branches from 0, ASFF_2 and ASFF_3 from 1
        for target in range(stage + 1):
            ours = f"S{stage}_{first + target}"
            asff = f"body.0.asff_scale{SCALE_NAMES[target]}{stage}"
            for branch in range(stage + 1):
                key_map.add(f"{asff}.weight_level_{branch + offset}", f"{ours}.fuse.weight_level_{branch}")
            key_map.add(f"{asff}.weight_levels", f"{ours}.fuse.weight_levels")
            key_map.add(f"{asff}.conv", f"{ours}.post0")
            key_map.add(f"body.0.blocks_scale{SCALE_NAMES[target]}{stage + 1}", f"{ours}.post1")
            for index in range(stage + 1):
                if index == target:
                    continue
                edge = f"{ours}.from_{_source(stage, index, first + index)}.via0"
                factor = 2 ** abs(index - target)
                if index < target:
                    key_map.add(f"body.0.downsample_scale{SCALE_NAMES[index]}{stage}_{factor}.downsample.0", edge)
                else:
                    key_map.add(f"body.0.upsample_scale{SCALE_NAMES[index]}{stage}_{factor}.upsample.0", edge)
    return key_map


@register_reference
class AFPN(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "AFPN")
        in_channels = _in_channels(config)
        out_channels = config.get("out_channels", 256)
        if not _is_int(out_channels) or out_channels < 1:
            raise ConversionError(SOURCE, f"out_channels must be a positive integer, not {out_channels!r}")
        first = _first_level(config.get("strides", DEFAULT_STRIDES))
        params = {"out_channels": out_channels, "first_level": first}
        return Conversion("afpn", in_channels, params, _key_map(first), return_type="tuple")
