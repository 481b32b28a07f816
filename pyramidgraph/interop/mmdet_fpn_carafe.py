"""mmdetection's ``FPN_CARAFE`` (``mmdet/models/necks/fpn_carafe.py``; mmcv ``ConvModule``, ``CARAFEPack``).

The reference, for inputs ``start_level .. backbone_end_level - 1`` (``end_level`` an inclusive
input index, ``-1`` the last; any other value allows no extra level): ``lateral_convs[i]`` (1x1
ConvModule), ``fpn_convs[i]`` (3x3 ConvModule) and, between consecutive levels,
``upsample_modules[i]``; then for each of the ``num_outs - used`` extra levels one more of each,
the lateral a 3x3/2 ConvModule on the coarsest input used (the first) or on the previous extra
lateral. The top-down sum runs over every level, extra ones included, and cuts each upsampled
map to the finer one's size (``slice_as``). Every ConvModule has the neck's ``norm_cfg``,
``act_cfg`` and ``order`` (``('conv', 'norm', 'act')`` or ``('act', 'conv', 'norm')``), a bias
exactly without a norm. ``upsample_cfg`` types, each by a factor 2:

* ``carafe``: ``CARAFEPack`` with ``up_kernel``, ``up_group``, ``encoder_kernel``,
  ``encoder_dilation``, ``compressed_channels`` (mmcv's defaults 5, 1, 3, 1, 64);
* ``deconv``: ``nn.ConvTranspose2d(kernel upsample_kernel, stride 2, padding and output_padding
  (k - 1) // 2)``, the ``deconv_padded`` op: kernels 2, 3 and 4 (4's extra row and column
  ``slice_as`` cuts off); kernel 1 makes each map one short of the finer one, so the reference's
  sum fails on every input, and from 5 on PyTorch refuses the reference's output padding;
* ``pixel_shuffle``: ``PixelShufflePack`` (``upsample_conv``, kernel ``upsample_kernel`` with
  padding ``(k - 1) // 2``, then ``F.pixel_shuffle``): odd kernels (an even one shrinks the map
  and the reference's sum fails);
* ``nearest``, ``bilinear``: ``nn.Upsample(scale_factor=2)`` (``align_corners=False`` for
  bilinear).

``deconv`` and ``pixel_shuffle`` read ``upsample_kernel`` by attribute, so the reference needs
``upsample_cfg`` to be an mmengine ``ConfigDict`` (a config file's); a plain dict here is fine.
Keys of ``upsample_cfg`` that the reference gives only the first levels' upsamplers (the extra
levels' are built from a fresh dict) are refused; ``scale_factor``, ``mode`` and
``align_corners``, which it overwrites, are ignored for nearest and bilinear.

Bundled spec: ``specs/fpn_carafe.yaml``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import did_you_mean
from .base import Conversion, KeyMap
from .mmcv_cfg import check_keys, conv_module, fail, first_level, no_init_cfg, spec_params, widths
from .mmdet import register_neck, used_inputs

KIND = "FPN_CARAFE"
KEYS = {"in_channels", "out_channels", "num_outs", "start_level", "end_level", "norm_cfg", "act_cfg", "order", "upsample_cfg", "init_cfg"}
ORDERS = {("conv", "norm", "act"): "conv_norm_act", ("act", "conv", "norm"): "act_conv_norm"}
UPSAMPLERS = ("nearest", "bilinear", "deconv", "pixel_shuffle", "carafe")
# CARAFEPack's arguments (the spec's names) and mmcv's defaults
CARAFE_ARGS = {"up_kernel": ("up_kernel", 5), "up_group": ("up_group", 1), "encoder_kernel": ("encoder_kernel", 3), "encoder_dilation": ("encoder_dilation", 1), "compressed_channels": ("compressed", 64)}
# upsample_cfg keys that FPN_CARAFE sets itself on the first levels' upsamplers
OVERWRITTEN = {"nearest": {"scale_factor", "mode", "align_corners"}, "bilinear": {"scale_factor", "mode", "align_corners"}, "carafe": {"channels", "scale_factor"}}
DEFAULT_UPSAMPLE = {"type": "carafe", "up_kernel": 5, "up_group": 1, "encoder_kernel": 3, "encoder_dilation": 1}


def _positive(cfg: Mapping[str, Any], key: str, default: int) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(KIND, f"upsample_cfg {key} must be a positive integer, got {value!r}")
    return value


def _upsample(cfg: Mapping[str, Any], channels: int, extra_levels: int) -> dict[str, Any]:
    """``upsample_cfg`` -> the spec's ``upsample`` parameters."""
    if not isinstance(cfg, Mapping):
        raise fail(KIND, f"upsample_cfg must be a mapping with a type, got {cfg!r}")
    kind = cfg.get("type")
    if kind is None:
        raise fail(KIND, "upsample_cfg type None (no upsampling) is not supported: the reference still builds an upsampler per level and mmcv has no layer type None")
    if kind not in UPSAMPLERS:
        raise fail(KIND, f"upsample_cfg type {kind!r} is not one the reference accepts{did_you_mean(str(kind), UPSAMPLERS)} ({', '.join(UPSAMPLERS)})")
    known = {"type"} | OVERWRITTEN.get(kind, set())
    if kind == "carafe":
        known |= set(CARAFE_ARGS)
    elif kind in ("deconv", "pixel_shuffle"):
        known.add("upsample_kernel")
    extra = sorted(set(cfg) - known)
    if extra:
        raise fail(
            KIND,
            f"upsample_cfg key '{extra[0]}' is not supported for type {kind!r}: the reference passes it to the upsamplers between the inputs' levels "
            f"but builds the extra levels' without it (supported: {', '.join(sorted(known))})",
        )
    params: dict[str, Any] = {"upsample": kind}
    if kind == "carafe":
        passed_twice = sorted(set(cfg) & OVERWRITTEN["carafe"])
        if passed_twice and extra_levels:
            raise fail(KIND, f"upsample_cfg key '{passed_twice[0]}': FPN_CARAFE sets it itself, and the extra levels' CARAFEPack then gets it twice (a TypeError in the reference); remove it")
        for key, (name, default) in CARAFE_ARGS.items():
            params[name] = _positive(cfg, key, default)
        if params["up_kernel"] % 2 == 0:
            raise fail(KIND, f"upsample_cfg up_kernel must be odd (mmcv's carafe asserts it), got {params['up_kernel']}")
        if channels % params["up_group"]:
            raise fail(KIND, f"upsample_cfg up_group {params['up_group']} must divide out_channels {channels} (mmcv's carafe asserts it)")
        if (params["encoder_kernel"] - 1) * params["encoder_dilation"] % 2:
            what = f"encoder_kernel {params['encoder_kernel']} with encoder_dilation {params['encoder_dilation']}"
            raise fail(KIND, f"upsample_cfg {what}: the content encoder's padding int((k - 1) * d / 2) shrinks the map, and mmcv's carafe refuses the mask")
    elif kind in ("deconv", "pixel_shuffle"):
        if "upsample_kernel" not in cfg:
            raise fail(KIND, f"upsample_cfg type {kind!r} needs upsample_kernel (the reference asserts it is there and > 0)")
        kernel = _positive(cfg, "upsample_kernel", 1)
        if kind == "deconv" and kernel not in (2, 3, 4):
            why = (
                "PyTorch refuses the reference's output_padding (k - 1) // 2, which is not smaller than the stride 2"
                if kernel >= 5
                else "with padding and output_padding 0 each upsampled map is one row and column short of the finer map, so the reference's top-down sum fails"
            )
            raise fail(KIND, f"upsample_cfg deconv upsample_kernel {kernel} is not supported: {why}; kernels 2, 3 and 4 are")
        if kind == "pixel_shuffle" and kernel % 2 == 0:
            raise fail(KIND, f"upsample_cfg pixel_shuffle upsample_kernel {kernel}: an even kernel with padding (k - 1) // 2 shrinks the map by one, so the reference's top-down sum fails; use an odd kernel")
        params["upsample_kernel"] = kernel
    return params


@register_neck(KIND)
def convert_fpn_carafe(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    check_keys(KIND, cfg, KEYS)
    no_init_cfg(KIND, cfg, "the reference asserts it, to keep its own init_weights")
    if not isinstance(cfg["in_channels"], (list, tuple)):
        raise fail(KIND, f"in_channels must be a list (the reference asserts it), got {cfg['in_channels']!r}")
    in_channels = widths(cfg)
    num_ins = len(in_channels)
    channels = int(cfg["out_channels"])
    start, used, num_outs = used_inputs(KIND, cfg, num_ins)
    extra_levels = num_outs - used
    order = tuple(cfg.get("order", ("conv", "norm", "act")))
    if order not in ORDERS:
        raise fail(KIND, f"order {order} is not one the reference accepts: ('conv', 'norm', 'act') or ('act', 'conv', 'norm')")
    module = conv_module(KIND, cfg.get("norm_cfg"), cfg.get("act_cfg"))
    params: dict[str, Any] = {
        "channels": channels,
        "first_level": first_level(KIND, strides, num_ins, 2),
        "start": start,
        "used": used,
        "extra_levels": extra_levels,
        **spec_params(module, bias=False),
        "order": ORDERS[order],
        "init": "xavier_uniform",
        **_upsample(cfg.get("upsample_cfg", DEFAULT_UPSAMPLE), channels, extra_levels),
    }
    base = params["first_level"] + start
    top = base + used - 1
    last = top + extra_levels
    # where each upsampler's weights live inside mmdet's module (carafe's are its own submodules)
    inside = {"deconv": ".deconv", "pixel_shuffle": ".conv", "carafe": ""}.get(params["upsample"])
    key_map = KeyMap()
    for i in range(used + extra_levels):
        level = base + i
        if level <= top:
            key_map.add(f"lateral_convs.{i}", f"L{level}.post0")
        else:
            source = f"C{top}" if level == top + 1 else f"L{level - 1}"
            key_map.add(f"lateral_convs.{i}", f"L{level}.from_{source}")
        key_map.add(f"fpn_convs.{i}", f"P{level}.post0")
        if level < last and inside is not None:
            edge = f"P{level}_inner.from_P{level + 1}_inner.via0"
            if params["upsample"] == "pixel_shuffle":
                key_map.add(f"upsample_modules.{i}.upsample_conv", f"{edge}.conv")
            else:
                key_map.add(f"upsample_modules.{i}", edge + inside)
    return Conversion("fpn_carafe", in_channels, params, key_map, return_type="tuple")
