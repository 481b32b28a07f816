"""mmdetection's ``FPN`` and ``PAFPN`` (``mmdet/models/necks/fpn.py``, ``pafpn.py``; mmcv ``ConvModule``).

Both follow mmdetection 3.3's constructor: ``lateral_convs[i]`` (1x1 ConvModule) and
``fpn_convs[i]`` (3x3 ConvModule) for inputs ``start_level .. backbone_end_level - 1``, where
``end_level`` is an *inclusive* input index (``-1``: the last input; any other value needs
``num_outs == end_level - start_level + 1``). Inputs outside that range are accepted and
ignored. ``num_outs`` beyond the inputs used adds extra levels: ``max_pool2d(kernel 1, stride
2)`` of the last output when ``add_extra_convs`` is false, else ConvModules 3x3/2 appended to
``fpn_convs``, the first on ``'on_input'`` (``True``), ``'on_lateral'`` or ``'on_output'``, the
others on the previous extra level (after ``F.relu`` with ``relu_before_extra_convs``).
FPN's ``upsample_cfg`` resizes to the finer lateral's size, or by ``scale_factor`` (2) when
given. PAFPN adds ``downsample_convs[i]`` (3x3/2 ConvModule on the previous bottom-up sum) and
``pafpn_convs[i]`` (3x3 ConvModule), and upsamples nearest by size.

A ConvModule is conv, norm, act (``conv_cfg`` None; ``norm_cfg`` None, BN or GN, the conv
without bias when normed, none on the laterals with ``no_norm_on_lateral``; ``act_cfg`` None or
an mmcv activation). ``init_cfg`` does not change the module; the specs init like mmdetection
(xavier uniform).

Bundled specs: ``specs/fpn.yaml`` and ``specs/pafpn.yaml`` (the same parameters).
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap
from .mmcv_cfg import mmcv_act, norm_momentum
from .mmdet import MMDetNecks, register_neck, used_inputs
from .mmdet_nasfpn import input_levels, mmcv_norm

SOURCE = MMDetNecks.source

EXTRA_CONVS = {False: None, True: "input", "on_input": "input", "on_lateral": "lateral", "on_output": "output"}
FPN_KEYS = set("type in_channels out_channels num_outs start_level end_level add_extra_convs relu_before_extra_convs no_norm_on_lateral conv_cfg norm_cfg act_cfg upsample_cfg init_cfg".split())
PAFPN_KEYS = FPN_KEYS - {"upsample_cfg"}


def _fail(kind: str, message: str) -> Exception:
    return ConversionError(SOURCE, f"{kind}: {message}")


def _first_level(strides: list[int], count: int, kind: str) -> int:
    """The level of the finest input (2, a ResNet's C2, when no strides are given)."""
    return input_levels(strides, count, kind) if strides else 2


def _act(cfg: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """The spec's ``act`` (``'none'`` without one), and ``act_slope`` for LeakyReLU only."""
    act, slope = mmcv_act(kind, cfg)
    return {"act": act or "none", **({"act_slope": slope} if act == "leaky_relu" else {})}


def _upsample(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """FPN's ``upsample_cfg``: F.interpolate arguments, ``size`` added unless ``scale_factor`` is given."""
    cfg = dict(cfg if cfg is not None else {"mode": "nearest"})
    unknown = set(cfg) - {"mode", "scale_factor", "align_corners"}
    if unknown:
        raise _fail("FPN", f"upsample_cfg keys {sorted(unknown)} are not supported (mode, scale_factor, align_corners)")
    mode = cfg.get("mode", "nearest")
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise _fail("FPN", f"upsample_cfg mode {mode!r} is not supported (nearest, bilinear, bicubic)")
    params: dict[str, Any] = {"upsample": mode, "upsample_by": "size", "align_corners": cfg.get("align_corners")}
    if "scale_factor" in cfg:
        if cfg["scale_factor"] not in (2, 2.0):
            raise _fail("FPN", f"upsample_cfg scale_factor {cfg['scale_factor']!r}: levels are a factor 2 apart, so only 2 lines up")
        params["upsample_by"] = "scale"
    if params["align_corners"] is not None and mode == "nearest":
        raise _fail("FPN", "upsample_cfg align_corners applies to bilinear and bicubic modes only")
    return params


def _convert(cfg: Mapping[str, Any], strides: list[int], kind: str) -> Conversion:
    fpn = kind != "PAFPN"  # FPN, or a neck built as one (FPN_DropBlock, without its plugin)
    unknown = set(cfg) - (FPN_KEYS if fpn else PAFPN_KEYS)
    if unknown:
        raise _fail(kind, f"unknown arguments {sorted(unknown)}")
    in_channels = [int(c) for c in cfg["in_channels"]]
    num_ins = len(in_channels)
    start, used, num_outs = used_inputs(kind, cfg, num_ins)
    extra_convs = cfg.get("add_extra_convs", False)
    if not isinstance(extra_convs, (bool, str)) or extra_convs not in EXTRA_CONVS:
        raise _fail(kind, f"add_extra_convs must be a bool, 'on_input', 'on_lateral' or 'on_output', got {extra_convs!r}")
    if cfg.get("conv_cfg") not in (None, {"type": "Conv2d"}, {"type": "Conv"}):
        raise _fail(kind, f"conv_cfg {cfg['conv_cfg']!r} is not supported (plain Conv2d only)")
    extra_levels = num_outs - used
    extra_from = EXTRA_CONVS[extra_convs]
    norm = mmcv_norm(cfg.get("norm_cfg"), kind)
    lateral_norm = "none" if cfg.get("no_norm_on_lateral", False) else norm["norm"]
    params: dict[str, Any] = {
        "channels": int(cfg["out_channels"]),
        "first_level": _first_level(strides, num_ins, kind),
        "start": start,
        "used": used,
        "extra": "none" if extra_levels == 0 else "conv" if extra_from else "maxpool",
        "extra_levels": extra_levels,
        "extra_from": extra_from or "input",
        "extra_relu": bool(cfg.get("relu_before_extra_convs", False)),
        "norm": norm["norm"],
        "lateral_norm": lateral_norm,
        "norm_groups": norm["norm_groups"],
        "norm_eps": norm["norm_eps"],
        "norm_momentum": norm_momentum(kind, cfg.get("norm_cfg")),
        "init": "xavier_uniform",
        **_act(cfg.get("act_cfg"), kind),
    }
    if fpn:
        params.update(_upsample(cfg.get("upsample_cfg")))
    base = params["first_level"] + start
    top = base + used - 1
    out = "P" if fpn else "N"
    layer = norm["layer"]
    key_map = KeyMap()

    def conv_module(reference: str, conv: str, norm_module: str | None) -> None:
        """A ConvModule: its ``conv`` and, when normed, its norm layer (``bn``/``gn``)."""
        key_map.add(f"{reference}.conv", conv)
        if norm_module is not None:
            key_map.add(f"{reference}.{layer}", norm_module)

    for i in range(used):
        level = base + i
        conv_module(f"lateral_convs.{i}", f"L{level}.post0", f"L{level}.post1" if lateral_norm != "none" else None)
        conv_module(f"fpn_convs.{i}", f"P{level}.post0", f"P{level}.post1" if layer else None)
    if kind == "PAFPN":
        for i in range(used - 1):
            level = base + 1 + i
            conv_module(f"downsample_convs.{i}", f"D{level}.from_N{level - 1}_pre.conv", f"D{level}.post0" if layer else None)
            conv_module(f"pafpn_convs.{i}", f"N{level}.post0", f"N{level}.post1" if layer else None)
    if params["extra"] == "conv":
        first_source = {"input": "C", "lateral": "L", "output": out}[extra_from] + str(top)
        for j in range(extra_levels):
            level = top + 1 + j
            source = first_source if j == 0 else f"{out}{level - 1}" + ("_relu" if params["extra_relu"] else "")
            conv_module(f"fpn_convs.{used + j}", f"{out}{level}.from_{source}.conv", f"{out}{level}.post0" if layer else None)
    spec = "fpn" if fpn else "pafpn"
    return Conversion(spec, in_channels, params, key_map, return_type="tuple")


@register_neck("FPN")
def convert_fpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    return _convert(cfg, strides, "FPN")


@register_neck("PAFPN")
def convert_pafpn(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    return _convert(cfg, strides, "PAFPN")
