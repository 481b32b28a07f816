"""DAMO-YOLO's RepGFPN, the authors' code (tinyvision/DAMO-YOLO, ``GiraffeNeckV2`` in
``damo/base_models/necks/giraffe_fpn_btn.py``, its blocks in ``damo/base_models/core/ops.py``).

The config is the constructor's keyword arguments, as a DAMO-YOLO config's ``GiraffeNeckV2``
dict holds them (its ``name`` too, which ``build_neck`` pops): ``depth``, ``hidden_ratio``,
``in_features`` (unused by the code), ``in_channels``, ``out_channels``, ``act``, ``spp``,
``block_name`` and ``depthwise``, with the code's defaults for missing ones; ``strides`` (the
inputs', [8, 16, 32]) places the inputs only. The neck takes the list [s8, s16, s32] and
returns the tuple (x5, x7, x6), finest first, as the code does. ``hidden_ratio`` is read only by
the non-depthwise blocks: where nothing reads it (``depthwise``, or no block) the code accepts any
value, and the spec is given 1.0.

Bundled spec: ``specs/giraffe_neck_v2.yaml``. Each ``bu_conv<ij>`` of the reference is the
strided ``conv_bn_act`` edge of a node of its own (``conv``, ``bn``; with ``depthwise`` the code's
``DepthwiseConv`` has ``depthwise``/``dwnorm``/``pointwise``/``pwnorm``, our
``depthwise_conv.{conv,bn}``/``pointwise_conv.{conv,bn}``), and each ``merge_<k>`` one
``csp_stage`` post op whose submodules carry the code's names, so the map is by prefix.

What the code cannot do is refused with its reason: ``spp: true`` with blocks fails in the code
itself (without blocks it adds nothing and runs), ``block_name`` other than
``BasicBlock_3x3_Reverse`` raises NotImplementedError there when the stages have blocks (the
constructor's default, ``BasicBlock``, too), ``act: null`` with (non-depthwise) blocks makes
their RepConv call None, widths that leave a stage's convolutions empty (a stage width of 1, or
``int(width * hidden_ratio)`` of 0 in its blocks) fail in its forward.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap, Reference, doubling_strides, refuse_unknown_keys, register_reference

SOURCE = "damoyolo.GiraffeNeckV2"
DEFAULTS: dict[str, Any] = {  # GiraffeNeckV2.__init__'s defaults
    "depth": 1.0,
    "hidden_ratio": 1.0,
    "in_features": [2, 3, 4],
    "in_channels": [256, 512, 1024],
    "out_channels": [256, 512, 1024],
    "act": "silu",
    "spp": False,
    "block_name": "BasicBlock",
    "depthwise": False,
}
KNOWN_KEYS = frozenset({*DEFAULTS, "strides"})
BLOCK = "BasicBlock_3x3_Reverse"
ACTIVATIONS: dict[Any, str | None] = {  # the code's get_activation names -> ours
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",  # x * sigmoid(x), in place
    "lrelu": "leaky_relu",  # LeakyReLU(0.1)
    "hardsigmoid": "hardsigmoid",
    "identity": None,
    None: None,
}
LRELU_SLOPE = 0.1

# reference module -> (our node, the edge its strided conv sits on)
STRIDED = {
    "bu_conv13": "C4_down.from_C4",
    "bu_conv24": "C3_down.from_C3",
    "bu_conv57": "P3_down.from_P3_out",
    "bu_conv46": "P4_td_down.from_P4_td",
    "bu_conv76": "P4_down.from_P4_out",
}
MERGES = {"merge_3": "P5_td", "merge_4": "P4_td", "merge_5": "P3_out", "merge_7": "P4_out", "merge_6": "P5_out"}
DEPTHWISE_PARTS = {"depthwise": "depthwise_conv.conv", "dwnorm": "depthwise_conv.bn", "pointwise": "pointwise_conv.conv", "pwnorm": "pointwise_conv.bn"}


def _widths(config: Mapping[str, Any], key: str) -> list[int]:
    value = config[key]
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
        raise ConversionError(SOURCE, f"{key} must be three positive widths (s8, s16, s32), not {value!r}")
    return list(value)


def _number(config: Mapping[str, Any], key: str) -> float:
    value = config[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise ConversionError(SOURCE, f"{key} must be a number, not {value!r}")
    return value


def _flag(config: Mapping[str, Any], key: str) -> bool:
    if not isinstance(config[key], bool):
        raise ConversionError(SOURCE, f"{key} must be true or false, not {config[key]!r}")
    return config[key]


def _activation(name: Any) -> str | None:
    if not (name is None or isinstance(name, str)) or name not in ACTIVATIONS:
        raise ConversionError(SOURCE, f"act {name!r} is not one of the reference's activations (relu, silu, swish, lrelu, hardsigmoid, identity); the reference raises AttributeError 'Unsupported act type: {name}'")
    return ACTIVATIONS[name]


def _first_level(strides: Any) -> int:
    """The finest input's level from ``strides``: three strides, each twice the one before
    (the code joins the levels with stride-2 convs and x2 upsampling)."""
    why = "the neck joins its levels with stride-2 convs and x2 upsampling, so each stride must be twice the one before, powers of two ([8, 16, 32])"
    return doubling_strides(SOURCE, "strides", strides, 3, "the three inputs' strides, finest first ([8, 16, 32])", why)


@register_reference
class GiraffeNeckV2(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        refuse_unknown_keys(SOURCE, config, KNOWN_KEYS, "GiraffeNeckV2", unlisted=("name",))
        if "name" in config and config["name"] != "GiraffeNeckV2":
            raise ConversionError(SOURCE, f"name {config['name']!r}: this converter reproduces 'GiraffeNeckV2', the one neck DAMO-YOLO's build_neck knows")
        config = {**DEFAULTS, **config}
        in_channels, out_channels = _widths(config, "in_channels"), _widths(config, "out_channels")
        depth, hidden_ratio = _number(config, "depth"), _number(config, "hidden_ratio")
        spp, depthwise = _flag(config, "spp"), _flag(config, "depthwise")
        act = _activation(config["act"])
        if depth < 0:
            raise ConversionError(SOURCE, f"depth must be at least 0, not {depth!r}")
        blocks = round(3 * depth)
        if spp and blocks:
            raise ConversionError(
                SOURCE,
                "spp=True is broken in the reference itself: CSPStage appends the SPP output to the maps it concatenates, so conv3 gets more channels than it "
                "was built for and the forward fails with a RuntimeError; use spp: false (every released config does)",
            )
        if blocks and config["block_name"] != BLOCK:
            raise ConversionError(
                SOURCE, f"block_name {config['block_name']!r}: the reference's CSPStage builds only {BLOCK!r} blocks and raises NotImplementedError for any other name (the constructor's default 'BasicBlock' too)"
            )
        hidden_used = blocks > 0 and not depthwise  # the Nano blocks and a stage without blocks never read it
        if hidden_used and hidden_ratio <= 0:
            raise ConversionError(SOURCE, f"hidden_ratio must be above 0, not {hidden_ratio!r}")
        if blocks and not depthwise and config["act"] is None:
            raise ConversionError(SOURCE, "act None: every block's RepConv calls its activation, which is then None, so the reference's forward fails (TypeError); use 'identity' for no activation")
        stages = {"merge_3": in_channels[2], "merge_4": in_channels[1], "merge_5": out_channels[0], "merge_7": out_channels[1], "merge_6": out_channels[2]}
        for stage, width in stages.items():  # widths the reference builds as empty convolutions, which its forward cannot run
            if width < 2:
                raise ConversionError(SOURCE, f"{stage} outputs {width} channel(s): its conv1 gets {width} // 2 = 0 channels, so the reference's forward fails; give it at least 2")
            if hidden_used and int((width - width // 2) * hidden_ratio) < 1:
                raise ConversionError(
                    SOURCE, f"hidden_ratio {hidden_ratio!r}: the blocks of {stage} ({width - width // 2} channels) get int({width - width // 2} * {hidden_ratio!r}) = 0 hidden channels, so the reference's forward fails"
                )
        first = _first_level(config.get("strides", [8, 16, 32]))
        key_map = KeyMap()
        for reference, ours in STRIDED.items():
            if depthwise:
                for part, local in DEPTHWISE_PARTS.items():
                    key_map.add(f"{reference}.{part}", f"{ours}.{local}")
            else:
                key_map.add(reference, ours)
        for reference, node in MERGES.items():
            key_map.add(reference, f"{node}.post0")
        params = {
            "depth": depth,
            "hidden_ratio": hidden_ratio if hidden_used else 1.0,
            "out3": out_channels[0],
            "out4": out_channels[1],
            "out5": out_channels[2],
            "act": act,
            "slope": LRELU_SLOPE,
            "depthwise": depthwise,
            "first_level": first,
        }
        return Conversion("giraffe_neck_v2", in_channels, params, key_map, return_type="tuple")
