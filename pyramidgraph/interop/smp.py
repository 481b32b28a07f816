"""segmentation-models-pytorch's Pyramid Attention Network decoder (``smp.PANDecoder``, 0.6.0).

``PANDecoder(encoder_channels, encoder_depth, decoder_channels, interpolation_mode)`` is called
with the encoder's whole feature list and drops its first two maps (the image and stride 2);
the neck takes the maps it uses, ``features[2:]`` (``encoder_channels[2:]`` wide), finest first,
and returns a tuple of its one map at stride 4. Bundled spec: ``specs/pan_attention.yaml``:
``fpa`` on the deepest map, then one ``gau`` per finer map, coarsest first (smp's ``gau3``,
``gau2``, ``gau1`` are nodes ``P4``, ``P3``, ``P2``). smp builds ``gau3`` at encoder_depth 5
only, so from depth 6 (or with more widths than ``encoder_depth + 1``) some maps are never read:
the spec's ``gau_inputs`` lists the ones that are, the rest are optional inputs. Refused: too
few widths for the GAUs (smp's IndexError), and a GAU that would read the FPA's own map (depth 5
with three maps: smp runs it, the spec's chain cannot express it).

The recorded cases add ``strides``, the input strides: smp's PAN runs its encoder at output
stride 16 by default (``[4, 8, 16, 16]``: the two deepest maps have one size) or 32
(``[4, 8, 16, 32]``), and an encoder may start at stride 8 (``[8, 16, 32, 64]``). The decoder
never reads them (every GAU upsamples to the finer map's size, the FPA pools and resizes by its
input's size), so any non-decreasing strides run; the finest one, a power of two, sets the spec's
``first_level`` (the nodes are ``P<level>``: ``P2`` for stride 4). ``upscale_mode``, ``smp.PAN``'s
deprecated name of the interpolation mode, is refused as ``PANDecoder`` itself refuses it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import did_you_mean
from .base import Conversion, ConversionError, KeyMap, Reference, refuse_unknown_keys, register_reference

SOURCE = "smp.PANDecoder"
KNOWN_KEYS = frozenset({"encoder_channels", "encoder_depth", "decoder_channels", "interpolation_mode", "strides"})
MODES = ("nearest", "bilinear", "bicubic", "area", "nearest-exact")
"""The interpolation modes ``F.interpolate`` takes for 4-D maps (smp documents these five)."""

_FPA_UNITS = {"branch1.1": "pooled", "mid.0": "mid", "down1.1": "down1", "down2.1": "down2", "down3.1": "down3.0", "down3.2": "down3.1", "conv2": "conv2", "conv1": "conv1"}
"""smp's ``FPABlock`` units (``ConvBnRelu``: ``conv``, ``bn``) -> the ``fpa`` op's."""


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConversionError(SOURCE, f"{key} must be a positive integer, not {value!r}")
    return value


def _mode(config: Mapping[str, Any]) -> str:
    mode = config.get("interpolation_mode", "bilinear")
    if mode not in MODES:
        raise ConversionError(SOURCE, f"interpolation_mode {mode!r} is not one of {', '.join(MODES)}{did_you_mean(str(mode), MODES)}")
    return mode


def _first_level(strides: Any, count: int) -> int:
    """The finest input's level from the input strides: ``count`` positive integers, finest
    first and never finer than the one before (an encoder at output stride 16 repeats its last),
    the first a power of two. PANDecoder resizes by the maps themselves, so nothing else matters."""
    if not isinstance(strides, (list, tuple)) or len(strides) != count or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in strides):
        raise ConversionError(SOURCE, f"strides must list the {count} input strides (positive integers, one per map of encoder_channels[2:]), not {strides!r}")
    if any(b < a for a, b in zip(strides, strides[1:])):
        raise ConversionError(SOURCE, f"strides {list(strides)} must not decrease: PANDecoder reads the encoder's maps finest first")
    first = strides[0]
    if first & (first - 1):
        raise ConversionError(SOURCE, f"strides[0] {first} must be a power of two: it sets the finest input's level")
    return first.bit_length() - 1


def _gaus(depth: int, count: int, channels: list) -> list[int]:
    """The GAUs PANDecoder builds, coarsest first: ``gau3`` at depth 5 only, ``gau2`` from depth
    4, ``gau1`` always; ``gau<k>`` reads ``features[2:][k - 1]`` and the FPA the last map."""
    gaus = [k for k, built in ((3, depth == 5), (2, depth >= 4), (1, True)) if built]
    for k in gaus:
        if k > count:
            raise ConversionError(SOURCE, f"encoder_channels {channels}: at encoder_depth {depth} PANDecoder's gau{k} reads features[2:][{k - 1}], and these give {count} maps (smp fails with an IndexError)")
        if k == count:
            raise ConversionError(SOURCE, f"encoder_channels {channels}: at encoder_depth {depth} gau{k} reads the deepest map, the FPA's input; the spec's GAUs read finer maps only (give encoder_depth + 1 widths)")
    return gaus


@register_reference
class PANDecoder(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        if "upscale_mode" in config:
            raise ConversionError(SOURCE, "PANDecoder takes no upscale_mode (smp.PAN's deprecated name of the mode, which PAN passes on as interpolation_mode): give interpolation_mode")
        refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "PANDecoder")
        for key in ("encoder_channels", "encoder_depth", "decoder_channels"):
            if key not in config:
                raise ConversionError(SOURCE, f"the config has no '{key}', which PANDecoder needs")
        depth = config["encoder_depth"]
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise ConversionError(SOURCE, f"encoder_depth must be an integer, 3 or more, not {depth!r}")
        if depth < 3:
            raise ConversionError(SOURCE, f"Encoder depth for PAN decoder cannot be less than 3, got {depth} (smp's own refusal)")
        channels = config["encoder_channels"]
        if not isinstance(channels, (list, tuple)) or len(channels) < 3:
            raise ConversionError(SOURCE, f"encoder_channels must list the encoder's widths (the image, stride 2 and the maps PANDecoder reads, as smp's encoder.out_channels), not {channels!r}")
        in_channels = [_positive_int(f"encoder_channels[{i}]", c) for i, c in enumerate(channels)][2:]
        gaus = _gaus(depth, len(in_channels), list(channels))
        width = _positive_int("decoder_channels", config["decoder_channels"])
        mode = _mode(config)
        first = _first_level(config["strides"], len(in_channels)) if "strides" in config else 2
        top = first + len(in_channels) - 1  # the deepest input's node, P<top>
        key_map = KeyMap()
        for ref, ours in _FPA_UNITS.items():
            key_map.add(f"fpa.{ref}", f"P{top}.post0.{ours}")
        for k in gaus:  # gau<k> reads features[2:][k - 1]: node P<first + k - 1>
            key_map.add(f"gau{k}.conv2", f"P{first + k - 1}.op.conv")
            key_map.add(f"gau{k}.conv1.1", f"P{first + k - 1}.op.gate")
        params: dict[str, Any] = {"channels": width, "first_level": first, "mode": mode}
        if [k - 1 for k in gaus] != list(range(len(in_channels) - 2, -1, -1)):
            params["gau_inputs"] = [k - 1 for k in gaus]  # some maps are not read
        return Conversion("pan_attention", in_channels, params, key_map, return_type="tuple")
