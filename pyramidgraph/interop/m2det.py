"""M2Det's MLFPN, the authors' code (VDIGPKU/M2Det: ``layers/nn_utils.py`` and the neck part of
``M2Det.forward`` in ``m2det.py``).

The recorded wrapper builds M2Det's modules under M2Det's own attribute names (``reduce``,
``up_reduce``, ``leach.<i>``, ``unet<l>.*``, ``sfam_module.fc<1,2>.<j>``) from a config of the
constructor's architecture arguments (``planes``, ``num_levels``, ``num_scales``, ``smooth``,
``sfam``) and of the widths M2Det hard-codes per backbone family (``shallow_in``, ``deep_in``,
``shallow_out``, ``deep_out``; ``strides`` of the two inputs). It returns the ``num_scales`` maps
finest first, after SFAM, as a list.

Bundled spec: ``specs/m2det.yaml``. Every ``BasicConv`` of the reference (``conv``, ``bn``) is one
``conv_bn_act`` of the spec (``conv``, ``bn``). The reference repeats one module in a
``ModuleList`` (``[BasicConv] * num_levels`` for FFMv2, ``[Conv2d] * num_scales`` for SFAM's two
convs), so its ``state_dict`` holds the same tensors under every index; the spec holds them once
(``leach``, ``A0``) and the key map checks that the repeats are equal before dropping them.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, SharedKeyMap, doubling_strides, refuse_unknown_keys, register_reference

SOURCE = "m2det.MLFPN"
REQUIRED = ("planes", "num_levels", "num_scales", "smooth", "sfam", "shallow_in", "deep_in", "shallow_out", "deep_out")
KNOWN_KEYS = frozenset({*REQUIRED, "strides"})
NOT_THE_NECK = {
    "backbone": "the backbone is not part of the neck: give its two maps' widths as shallow_in and deep_in",
    "net_family": "the family only fixes the widths M2Det hard-codes (vgg: 512 and 1024, res: 512 and 2048): give them as shallow_in and deep_in",
    "base_out": "the backbone's output indices are not part of the neck: give the two maps' widths as shallow_in and deep_in",
    "num_classes": "the heads are not part of the neck",
}
MAX_SCALES = 12


def _integer(config: Mapping[str, Any], key: str, least: int) -> int:
    value = config[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConversionError(SOURCE, f"{key} must be an integer of at least {least}, not {value!r}")
    return value


def _check(config: Mapping[str, Any]) -> None:
    for key in config:
        if key in NOT_THE_NECK:
            raise ConversionError(SOURCE, f"config key '{key}': {NOT_THE_NECK[key]}")
    refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "M2Det's MLFPN")
    missing = [key for key in REQUIRED if key not in config]
    if missing:
        raise ConversionError(SOURCE, f"the config has no {', '.join(repr(k) for k in missing)}, which {SOURCE} needs (the reference has no defaults)")
    for key in ("smooth", "sfam"):
        if not isinstance(config[key], bool):
            raise ConversionError(SOURCE, f"{key} must be true or false, not {config[key]!r}")


def _first_level(strides: Any) -> int:
    """The shallow map's level from ``strides`` ([8, 16]): the deep map must be one level coarser,
    since FFMv1 doubles it by scale to concatenate it with the shallow one."""
    why = "FFMv1 doubles the deep map (nearest, scale 2) to concatenate it with the shallow one, so the deep stride must be twice the shallow one, a power of two ([8, 16])"
    return doubling_strides(SOURCE, "strides", strides, 2, "the two inputs' strides, [shallow, deep]", why)


def _tum_keys(key_map: KeyMap, tum: int, scales: int, first: int, smooth: bool) -> None:
    """``unet<tum>`` of the reference onto the spec's ``T<tum>_*`` nodes (see specs/m2det.yaml)."""
    ref, ours = f"unet{tum}", f"T{tum}"
    strided = max(scales - 2, 1)
    for i in range(strided):  # layers.0 reads the TUM's input; layers.i the previous strided map
        key_map.add(f"{ref}.layers.{i}", f"{ours}_E{first + 1 + i}.from_{ours}_{'in' if i == 0 else f'E{first + i}'}")
    if scales >= 3:  # the unpadded 3x3 conv
        key_map.add(f"{ref}.layers.{strided}", f"{ours}_V.post0")
    key_map.add(f"{ref}.toplayer.0", f"{ours}_out{scales - 1}.post0")
    for i in range(scales - 1):  # decoder step i gives output j = scales - 2 - i, its lateral reads encoder map j
        j = scales - 2 - i
        key_map.add(f"{ref}.latlayer.{i}", f"{ours}_out{j}.from_{ours}_{'in' if j == 0 else f'E{first + j}'}.via0")
        if smooth:
            key_map.add(f"{ref}.smooth.{i}", f"{ours}_out{j}.post0")


@register_reference
class MLFPN(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        _check(config)
        planes = _integer(config, "planes", 2)
        levels = _integer(config, "num_levels", 1)
        scales = _integer(config, "num_scales", 1)
        widths = {key: _integer(config, key, 1) for key in ("shallow_in", "deep_in", "shallow_out", "deep_out")}
        smooth, sfam = config["smooth"], config["sfam"]
        first = _first_level(config.get("strides", [8, 16]))
        if scales == 1:
            raise ConversionError(SOURCE, "num_scales 1 is not supported: the reference's TUM then still returns two maps without smooth (and fails with it), and the neck returns one of them; use num_scales >= 2")
        if scales > MAX_SCALES:
            raise ConversionError(SOURCE, f"num_scales {scales}: at most {MAX_SCALES} (each scale halves the map; 12 already needs images of about 130,000 px)")
        if planes % 2 and (levels > 1 or sfam):
            what = "the next TUM expects planes // 2 + planes channels" if levels > 1 else "SFAM expects planes * num_levels channels"
            raise ConversionError(SOURCE, f"planes {planes} is odd: the reference's TUMs are 2 * (planes // 2) = {planes - 1} wide, but {what}, so it fails; use an even planes")
        if sfam and planes * levels // 16 < 1:
            squeezed = f"sfam with planes * num_levels = {planes * levels}: SFAM squeezes to planes * num_levels // 16 = 0 channels, which the reference cannot build"
            raise ConversionError(SOURCE, f"{squeezed}; use sfam: false or planes * num_levels >= 16")
        key_map = SharedKeyMap()
        for name in ("reduce", "up_reduce"):
            key_map.add(name, f"{name}.post0")
        key_map.add("leach.0", "leach.post0")
        key_map.repeats.update({f"leach.{i}": "leach.0" for i in range(1, levels)})
        for tum in range(1, levels + 1):
            _tum_keys(key_map, tum, scales, first, smooth)
        if sfam:
            for fc in ("fc1", "fc2"):
                key_map.add(f"sfam_module.{fc}.0", f"A0.post0.{fc}")
                key_map.repeats.update({f"sfam_module.{fc}.{j}": f"sfam_module.{fc}.0" for j in range(1, scales)})
        params = {
            "planes": planes - planes % 2,  # an odd planes (one level, no SFAM): the reference's TUMs are planes - 1 wide
            "levels": levels,
            "scales": scales,
            "smooth": smooth,
            "sfam": sfam,
            "shallow_out": widths["shallow_out"],
            "deep_out": widths["deep_out"],
            "first_level": first,
        }
        return Conversion("m2det", [widths["shallow_in"], widths["deep_in"]], params, key_map, return_type="list")
