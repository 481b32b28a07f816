"""mmdetection's ``RFP``, DetectoRS' Recursive Feature Pyramid (``mmdet/models/necks/rfp.py``),
with the backbone it owns, ``DetectoRS_ResNet`` (``mmdet/models/backbones/detectors_resnet.py``).

The recorded config (source ``mmdet.rfp``) is ``{"strides": [1, 4, 8, 16, 32], "image_channels":
3, "necks": [RFP config]}``: the neck takes the image first, then C2..C5, and returns a list of
``num_outs`` maps. ``RFP`` is an ``FPN`` (its FPN arguments convert as :mod:`.mmdet_fpn`'s) plus
``rfp_steps - 1`` ResNets (``rfp_modules.<s>``, built from ``rfp_backbone``), one ``ASPP``
(``rfp_aspp``, ``aspp_out_channels`` per branch, ``aspp_dilations``) and one 1x1 gate conv
(``rfp_weight``) shared by every level and step. Each step feeds the ASPP of the pyramid's
outputs 1..3 into the ResNet's stages 2..4 (``rfp_conv`` in block 0, before the last ReLU),
runs the same FPN on the ResNet's stages and blends the result into the pyramid.

Bundled spec: ``specs/rfp.yaml`` (the FPN is the bundled ``fpn``, included twice with one set of
weights). Refused, with the key named: switchable atrous convolution (``sac``), other convs than
plain ones (``conv_cfg``, e.g. ConvAWS), other depths than 50/101/152, ``style='caffe'``, and the
ResNet variants the spec does not build (``deep_stem``, ``avg_down``, ``dcn``, ``plugins``,
other ``strides``/``dilations``/``num_stages``/``out_indices``). ``frozen_stages``, ``norm_eval``,
``with_cp``, ``zero_init_residual``, ``pretrained`` and ``init_cfg`` change training or the
initial weights only, and are accepted.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import Issue, SpecError
from .base import Conversion, ConversionError, KeyMap, Reference, register_reference
from .mmdet_fpn import FPN_KEYS, convert_fpn

SOURCE = "mmdet.rfp"
DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
RFP_KEYS = {"rfp_steps", "rfp_backbone", "aspp_out_channels", "aspp_dilations"}
MAX_STEPS = 8  # the spec's bound on steps

# rfp_backbone arguments the spec reproduces only at these values (DetectoRS_ResNet / ResNet defaults)
FIXED = {
    "num_stages": 4,
    "strides": [1, 2, 2, 2],
    "dilations": [1, 1, 1, 1],
    "out_indices": [0, 1, 2, 3],
    "style": "pytorch",
    "deep_stem": False,
    "avg_down": False,
    "dcn": None,
    "plugins": None,
    "sac": None,
    "conv_cfg": None,
}
WHY = {
    "style": "only style 'pytorch' (the stride on the 3x3 conv) is supported, not 'caffe' (the stride on the first 1x1 conv)",
    "sac": "switchable atrous convolution (SAC) is not supported; set sac None",
    "conv_cfg": "only plain convolutions (conv_cfg None) are supported, not weight-standardised ones (ConvAWS) or other conv layers",
    "dcn": "deformable convolutions are not supported; set dcn None",
    "plugins": "ResNet plugins are not supported; set plugins None",
    "deep_stem": "only the 7x7 stem is supported (deep_stem False)",
    "avg_down": "only strided 1x1 downsample convs are supported (avg_down False)",
}
# accepted as anything: training-only or initialisation-only arguments
FREE = {"type", "depth", "base_channels", "stem_channels", "in_channels", "norm_cfg", "rfp_inplanes", "frozen_stages", "norm_eval", "with_cp",
        "zero_init_residual", "pretrained", "init_cfg", "stage_with_sac", "stage_with_dcn", "output_img"}


def _fail(message: str) -> SpecError:
    return ConversionError(SOURCE, message)


def _same(value: Any, fixed: Any) -> bool:
    if isinstance(fixed, list):
        return isinstance(value, (list, tuple)) and list(value) == fixed
    if fixed is None and isinstance(value, Mapping) and value.get("type") in ("Conv2d", "Conv"):
        return True  # conv_cfg naming the plain conv
    return value == fixed and type(value) is type(fixed)


def _int(value: Any, key: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(f"{key} must be an integer >= {low}, got {value!r}")
    return value


def _backbone(cfg: Mapping[str, Any], image_channels: int) -> dict[str, Any]:
    """The ``rfp_backbone`` config -> the spec's ResNet parameters."""
    if not isinstance(cfg, Mapping):
        raise _fail(f"rfp_backbone must be a backbone config (a mapping), not {type(cfg).__name__}")
    if cfg.get("type") != "DetectoRS_ResNet":
        raise _fail(f"rfp_backbone.type {cfg.get('type')!r} is not supported; RFP's backbone is DetectoRS_ResNet")
    unknown = sorted(set(cfg) - set(FIXED) - FREE)
    if unknown:
        raise _fail(f"rfp_backbone: unknown arguments {unknown}")
    for key, fixed in FIXED.items():
        if key in cfg and not _same(cfg[key], fixed):
            raise _fail(f"rfp_backbone.{key} {cfg[key]!r}: {WHY.get(key, f'only {fixed!r} is supported')}")
    depth = cfg.get("depth")
    if depth not in DEPTHS or isinstance(depth, bool):
        raise _fail(f"rfp_backbone.depth {depth!r} is not supported; DetectoRS_ResNet has depths {', '.join(map(str, DEPTHS))} (Bottleneck stages)")
    base = _int(cfg.get("base_channels", 64), "rfp_backbone.base_channels")
    stem = cfg.get("stem_channels")
    stem = base if stem is None else _int(stem, "rfp_backbone.stem_channels")
    if cfg.get("in_channels", 3) != image_channels:
        raise _fail(f"rfp_backbone.in_channels {cfg.get('in_channels', 3)!r} is not the image's channels, image_channels {image_channels}")
    norm = cfg.get("norm_cfg") or {"type": "BN"}
    if not isinstance(norm, Mapping) or norm.get("type") not in ("BN", "BN2d", "SyncBN"):
        raise _fail(f"rfp_backbone.norm_cfg {norm!r} is not supported (type BN or SyncBN)")
    unknown_norm = sorted(set(norm) - {"type", "requires_grad", "eps", "momentum"})
    if unknown_norm:
        raise _fail(f"rfp_backbone.norm_cfg: unknown arguments {unknown_norm}")
    eps, momentum = norm.get("eps", 1e-5), norm.get("momentum", 0.1)
    for key, value in (("eps", eps), ("momentum", momentum)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(f"rfp_backbone.norm_cfg {key} must be a number, got {value!r}")
    return {"base_channels": base, "stem_channels": stem, "stage_blocks": list(DEPTHS[depth]), "bn_eps": float(eps), "bn_momentum": float(momentum)}


def _module_of(ir, node: str, role: str) -> str:
    """Where the weights of spec node ``node``'s ``role`` op (``apply``, ``post``, ``fuse``) live."""
    return next(op.module for op in ir.ops if op.meta.get("node") == node and op.meta.get("role") == role)


@register_reference
class MMDetRFP(Reference):
    source = SOURCE

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        from ..compiler import analyze

        necks = config["necks"]
        if not isinstance(necks, (list, tuple)) or len(necks) != 1 or not isinstance(necks[0], Mapping) or necks[0].get("type") != "RFP":
            raise _fail("necks must be one RFP config ([{type: RFP, ...}]); an RFP takes the image, so it cannot follow another neck")
        cfg = necks[0]
        unknown = sorted(set(cfg) - FPN_KEYS - RFP_KEYS)
        if unknown:
            raise _fail(f"RFP: unknown arguments {unknown}")
        strides = list(config.get("strides") or [1, 4, 8, 16, 32])
        if strides != [1, 4, 8, 16, 32]:
            raise _fail(f"strides must be [1, 4, 8, 16, 32] (the image, then C2..C5: the ResNet's stages line up with them), got {strides}")
        image_channels = _int(config.get("image_channels", 3), "image_channels")
        steps = _int(cfg["rfp_steps"], "rfp_steps", 1)
        if steps < 2:
            raise _fail("rfp_steps 1 runs the FPN alone (the ASPP, rfp_weight and no ResNet are built, none used); convert it as an mmdet FPN, or set rfp_steps >= 2")
        if steps > MAX_STEPS:
            raise _fail(f"rfp_steps {steps} is over {MAX_STEPS}, the most the rfp spec unrolls")
        aspp_out = _int(cfg["aspp_out_channels"], "aspp_out_channels")
        dilations = cfg.get("aspp_dilations", [1, 3, 6, 1])
        if not isinstance(dilations, (list, tuple)) or len(dilations) < 2 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dilations):
            raise _fail(f"aspp_dilations must be a list of at least two positive integers, got {dilations!r}")
        if dilations[-1] != 1:
            raise _fail(f"aspp_dilations {list(dilations)}: the last branch reads the global average pool, so its dilation must be 1 (mmdet asserts it)")
        resnet = _backbone(cfg["rfp_backbone"], image_channels)
        base = resnet["base_channels"]

        fpn_cfg = {k: v for k, v in cfg.items() if k in FPN_KEYS}
        fpn_cfg["type"] = "FPN"
        try:
            fpn = convert_fpn(fpn_cfg, strides[1:])
        except SpecError as exc:  # the FPN converter's messages, under this source
            raise SpecError([Issue(SOURCE, 0, 0, "config", f"RFP's {issue.message}") for issue in exc.issues]) from None
        stage_widths = [base * 4 * 2**i for i in range(4)]
        if fpn.in_channels != stage_widths:
            raise _fail(f"in_channels {fpn.in_channels} must be the rfp_backbone's stage widths {stage_widths} (base_channels {base} * 4 * 2**i): the FPN runs on both")
        if fpn.params["start"] != 0 or fpn.params["used"] != 4:
            raise _fail("RFP feeds the FPN's outputs 1..3 back into the ResNet's stages 2..4, so the FPN must use all of C2..C5 (start_level 0, end_level -1)")
        aspp_width = len(dilations) * aspp_out
        rfp_inplanes = cfg["rfp_backbone"].get("rfp_inplanes")
        if rfp_inplanes != aspp_width:
            raise _fail(
                f"rfp_backbone.rfp_inplanes {rfp_inplanes!r} must be the ASPP's width, len(aspp_dilations) * aspp_out_channels = {aspp_width}"
                + ("; with None the ResNet ignores the feedback, which the rfp spec does not reproduce" if rfp_inplanes is None else "")
            )
        params: dict[str, Any] = {k: v for k, v in fpn.params.items() if k not in ("first_level", "start", "used")}
        params.update(resnet)
        params.update({"steps": steps, "aspp_channels": aspp_out, "aspp_dilations": list(dilations)})
        in_channels = [image_channels, *fpn.in_channels]

        ir = analyze("rfp", in_channels, params=params).ir
        key_map = KeyMap()
        for reference, ours in fpn.key_map.prefixes.items():
            key_map.add(reference, f"fpn.{ours}")
        key_map.leaves.update(fpn.key_map.leaves)
        for s in range(steps - 1):
            stem = _module_of(ir, f"R{s}_stem", "apply")
            key_map.add(f"rfp_modules.{s}.conv1", f"{stem}.conv1")
            key_map.add(f"rfp_modules.{s}.bn1", f"{stem}.bn1")
            for i in range(1, 5):
                key_map.add(f"rfp_modules.{s}.layer{i}", _module_of(ir, f"R{s}_layer{i}", "apply"))
        key_map.add("rfp_aspp.aspp", _module_of(ir, "A3_0", "post"))
        key_map.add("rfp_weight", _module_of(ir, "X2_1", "fuse"))
        return Conversion("rfp", in_channels, params, key_map, return_type="list")
