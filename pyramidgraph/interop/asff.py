"""ASFF, the authors' code (GOATmessi7/ASFF, ``models/network_blocks.py``, class ``ASFF``).

YOLOv3-ASFF builds ``level_0_fusion``, ``level_1_fusion`` and ``level_2_fusion`` (``ASFF(level=l)``,
level 0 the coarsest) and calls each with the maps coarsest first; the recorded case takes the
inputs finest first and returns the outputs finest first (``output_order: fine_to_coarse``), as
a list (the three fusions' outputs collected, as the recorded wrapper does).
The reference hard-codes its widths (inputs 256, 256, 512; outputs 256, 512, 1024), so
``in_channels`` and ``out_channels`` in a config only describe them and must be those. ``rfb``
halves the weight branches (``compress_c`` 8 instead of 16); ``vis`` (which returns the fusion
weights too) is not a neck's output and is refused.

Bundled spec: ``specs/asff.yaml``. Every ``add_conv`` of the reference (``conv``,
``batch_norm``) is one ``conv_bn_act`` of the spec (``conv``, ``bn``).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, refuse_unknown_keys, register_reference

SOURCE = "asff.ASFF"
IN_CHANNELS = [256, 256, 512]
OUT_CHANNELS = [256, 512, 1024]
KNOWN_KEYS = frozenset({"in_channels", "out_channels", "strides", "rfb", "vis", "output_order"})

_UNITS = {
    # reference level: (our fused node, our output node, {reference unit: our module path})
    0: ("L5_fused", "L5", {"stride_level_1": "L5_fused.from_C4.via0", "stride_level_2": "L5_fused.from_C3.via1"}),
    1: ("L4_fused", "L4", {"compress_level_0": "L4_fused.from_C5.via0", "stride_level_2": "L4_fused.from_C3.via0"}),
    2: ("L3_fused", "L3", {"compress_level_0": "L3_fused.from_C5.via0"}),
}


def _add_conv(key_map: KeyMap, reference: str, ours: str) -> None:
    """The reference's ``add_conv`` (``conv``, ``batch_norm``) onto a ``conv_bn_act`` (``conv``, ``bn``)."""
    key_map.add(f"{reference}.conv", f"{ours}.conv")
    key_map.add(f"{reference}.batch_norm", f"{ours}.bn")


@register_reference
class ASFF(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "ASFF")
        for key, fixed in (("in_channels", IN_CHANNELS), ("out_channels", OUT_CHANNELS)):
            if key in config and list(config[key]) != fixed:
                raise ConversionError(SOURCE, f"the reference hard-codes {key} {fixed}; got {list(config[key])}")
        if config.get("vis"):
            raise ConversionError(SOURCE, "vis=True returns the fusion weights as well as the maps; a neck returns the maps only (set vis: false)")
        if config.get("output_order", "fine_to_coarse") != "fine_to_coarse":
            raise ConversionError(SOURCE, f"output_order {config['output_order']!r} is not supported; the outputs are finest first (fine_to_coarse)")
        if config.get("strides", [8, 16, 32]) != [8, 16, 32]:
            raise ConversionError(SOURCE, f"ASFF fuses the maps of strides 8, 16 and 32, not {config['strides']}")
        key_map = KeyMap()
        for level, (fused, output, units) in _UNITS.items():
            prefix = f"level_{level}_fusion"
            for unit, ours in units.items():
                _add_conv(key_map, f"{prefix}.{unit}", ours)
            _add_conv(key_map, f"{prefix}.expand", f"{output}.post0")
            for i in range(3):
                _add_conv(key_map, f"{prefix}.weight_level_{i}", f"{fused}.fuse.weight_level_{i}")
            key_map.add(f"{prefix}.weight_levels", f"{fused}.fuse.weight_levels")
        params = {"compress": 8 if config.get("rfb") else 16}
        return Conversion("asff", list(IN_CHANNELS), params, key_map, return_type="list")
