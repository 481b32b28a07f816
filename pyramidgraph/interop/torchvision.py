"""torchvision's ``FeaturePyramidNetwork`` (``torchvision/ops/feature_pyramid_network.py``).

Lateral ``inner_blocks[i]`` and output ``layer_blocks[i]`` (each a ``Conv2dNormActivation``
holding one conv at index 0), nearest upsampling to the lateral's size, and an optional extra
block: ``LastLevelMaxPool`` (``max_pool2d(kernel 1, stride 2)``, output ``pool``) or
``LastLevelP6P7`` (``p6`` = 3x3/2 conv on C5, or on P5 when its in and out widths are equal;
``p7`` = 3x3/2 conv on ``relu(p6)``). Inputs and outputs are OrderedDicts keyed by feature name.
A zero width is refused, as torchvision's constructor refuses it. ``strides`` (not an argument of
torchvision's, which sizes nothing by them) name the inputs ``c<level>`` and must be consecutive
powers of two: the ``fpn`` spec's levels are consecutive. Any other key is refused rather than
ignored: torchvision's ``norm_layer`` (a norm after every conv but the extra blocks') is not
modelled, and dropping it silently would give other numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, refuse_unknown_keys, register_reference

KEYS = {"in_channels_list", "out_channels", "extra_blocks", "p6p7_in_channels", "strides"}


@register_reference
class TorchvisionFPN(Reference):
    source = "torchvision.FeaturePyramidNetwork"

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        if "norm_layer" in config and config["norm_layer"] is not None:
            raise ConversionError(self.source, f"norm_layer {config['norm_layer']!r} is not supported (None: the convs without a norm)")
        refuse_unknown_keys(self.source, {k: v for k, v in config.items() if k != "norm_layer"}, KEYS, "the config")
        in_channels = list(config["in_channels_list"])
        if any(isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1 for c in in_channels):
            raise ConversionError(self.source, f"in_channels_list widths must be positive integers (torchvision refuses 0), got {in_channels}")
        channels = int(config["out_channels"])
        strides = list(config.get("strides") or [2 ** (2 + i) for i in range(len(in_channels))])
        levels = [int(math.log2(s)) for s in strides]
        if any(2**level != s for level, s in zip(levels, strides)) or levels != list(range(levels[0], levels[0] + len(levels))):
            raise ConversionError(self.source, f"strides must be consecutive powers of two, got {strides}")
        first, last = levels[0], levels[-1]
        names = [f"c{level}" for level in levels]
        key_map = KeyMap()
        for i, level in enumerate(levels):
            key_map.add(f"inner_blocks.{i}.0", f"L{level}.post0")
            key_map.add(f"layer_blocks.{i}.0", f"P{level}.post0")
        extra = config.get("extra_blocks")
        params: dict[str, Any] = {"channels": channels, "first_level": first, "init": "kaiming_uniform"}
        if extra in (None, "None"):
            params["extra"] = "none"
            output_names = list(names)
        elif extra == "LastLevelMaxPool":
            params.update(extra="maxpool", extra_levels=1)
            output_names = names + ["pool"]
        elif str(extra).startswith("LastLevelP6P7"):
            p6_in = int(config.get("p6p7_in_channels", in_channels[-1]))
            from_output = p6_in == channels
            if not from_output and p6_in != in_channels[-1]:
                raise ConversionError(self.source, f"LastLevelP6P7 reads C5 ({in_channels[-1]} channels) but was built for {p6_in}")
            params.update(extra="conv", extra_levels=2, extra_from="output" if from_output else "input", extra_relu=True)
            key_map.add("extra_blocks.p6", f"P{last + 1}.from_{'P' if from_output else 'C'}{last}.conv")
            key_map.add("extra_blocks.p7", f"P{last + 2}.from_P{last + 1}_relu.conv")
            output_names = names + ["p6", "p7"]
        else:
            raise ConversionError(self.source, f"unknown extra_blocks {extra!r}; known: None, LastLevelMaxPool, LastLevelP6P7")
        return Conversion("fpn", in_channels, params, key_map, input_names=names, output_names=output_names, return_type="dict")
