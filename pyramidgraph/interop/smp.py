"""segmentation-models-pytorch's Pyramid Attention Network decoder (``smp.PANDecoder``, 0.6.0).

``PANDecoder(encoder_channels, encoder_depth, decoder_channels, interpolation_mode)`` is called
with the encoder's whole feature list and drops its first two maps (the image and stride 2);
the neck takes the maps it uses, ``features[2:]`` (``encoder_channels[2:]`` wide), finest first,
and returns a tuple of its one map at stride 4. Bundled spec: ``specs/pan_attention.yaml``:
``fpa`` on the deepest map, then one ``gau`` per finer map, coarsest first (smp's ``gau3``,
``gau2``, ``gau1`` are nodes ``P4``, ``P3``, ``P2``).

The recorded cases add ``strides``, the input strides: smp's PAN runs its encoder at output
stride 16 by default (``[4, 8, 16, 16]``: the two deepest maps have one size) or 32
(``[4, 8, 16, 32]``). The spec is the same for both (every GAU upsamples to the finer map's
size), so ``strides`` is only checked. ``upscale_mode`` is ``PAN``'s deprecated name of the
decoder's interpolation mode and is read as ``interpolation_mode``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import did_you_mean
from .base import Conversion, ConversionError, KeyMap, Reference, refuse_unknown_keys, register_reference

SOURCE = "smp.PANDecoder"
KNOWN_KEYS = frozenset({"encoder_channels", "encoder_depth", "decoder_channels", "interpolation_mode", "upscale_mode", "strides"})
MODES = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")
"""The interpolation modes ``F.interpolate`` takes for 4-D maps (smp documents these five)."""

_FPA_UNITS = {"branch1.1": "pooled", "mid.0": "mid", "down1.1": "down1", "down2.1": "down2", "down3.1": "down3.0", "down3.2": "down3.1", "conv2": "conv2", "conv1": "conv1"}
"""smp's ``FPABlock`` units (``ConvBnRelu``: ``conv``, ``bn``) -> the ``fpa`` op's."""


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConversionError(SOURCE, f"{key} must be a positive integer, not {value!r}")
    return value


def _mode(config: Mapping[str, Any]) -> str:
    if "upscale_mode" in config and "interpolation_mode" in config and config["upscale_mode"] != config["interpolation_mode"]:
        raise ConversionError(SOURCE, f"upscale_mode {config['upscale_mode']!r} and interpolation_mode {config['interpolation_mode']!r} disagree; upscale_mode is the deprecated name of interpolation_mode, give one")
    mode = config.get("interpolation_mode", config.get("upscale_mode", "bilinear"))
    if mode not in MODES:
        raise ConversionError(SOURCE, f"interpolation_mode {mode!r} is not one of {', '.join(MODES)}{did_you_mean(str(mode), MODES)}")
    return mode


def _check_strides(strides: Any, count: int) -> None:
    """The input strides of an encoder at output stride 16 or 32: ``min(4 * 2**i, stride)``."""
    layouts = {stride: [min(4 * 2**i, stride) for i in range(count)] for stride in (16, 32)}
    if not isinstance(strides, (list, tuple)) or list(strides) not in layouts.values():
        raise ConversionError(SOURCE, f"strides {strides!r} are not the {count} input strides of an encoder at output stride 16 ({layouts[16]}) or 32 ({layouts[32]}), the two PAN supports")


@register_reference
class PANDecoder(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "PANDecoder")
        for key in ("encoder_channels", "encoder_depth", "decoder_channels"):
            if key not in config:
                raise ConversionError(SOURCE, f"the config has no '{key}', which PANDecoder needs")
        depth = config["encoder_depth"]
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ConversionError(SOURCE, f"encoder_depth must be 3, 4 or 5, not {depth!r}")
        if depth < 3:
            raise ConversionError(SOURCE, f"Encoder depth for PAN decoder cannot be less than 3, got {depth} (smp's own refusal)")
        if depth > 5:
            raise ConversionError(SOURCE, f"encoder_depth {depth}: PANDecoder builds its GAUs for depths 3 to 5 (gau1..gau3); a deeper encoder's extra map would be skipped")
        channels = config["encoder_channels"]
        if not isinstance(channels, (list, tuple)) or len(channels) != depth + 1:
            raise ConversionError(SOURCE, f"encoder_channels must list the encoder's {depth + 1} widths (the image and every stage, as smp's encoder.out_channels), not {channels!r}")
        in_channels = [_positive_int(f"encoder_channels[{i}]", c) for i, c in enumerate(channels)][2:]
        width = _positive_int("decoder_channels", config["decoder_channels"])
        mode = _mode(config)
        if "strides" in config:
            _check_strides(config["strides"], len(in_channels))
        top = 2 + len(in_channels) - 1  # the deepest input's node, P<top>
        key_map = KeyMap()
        for ref, ours in _FPA_UNITS.items():
            key_map.add(f"fpa.{ref}", f"P{top}.post0.{ours}")
        for k in range(1, len(in_channels)):  # gau<k> reads features[2:][k - 1]: node P<k + 1>
            key_map.add(f"gau{k}.conv2", f"P{k + 1}.op.conv")
            key_map.add(f"gau{k}.conv1.1", f"P{k + 1}.op.gate")
        params = {"channels": width, "first_level": 2, "mode": mode}
        return Conversion("pan_attention", in_channels, params, key_map, return_type="tuple")
