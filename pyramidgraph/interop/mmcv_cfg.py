"""mmcv's config dictionaries (``conv_cfg``, ``norm_cfg``, ``act_cfg``, ``bias``) as spec parameters.

Shared by the mmdetection converters whose necks are built from mmcv ``ConvModule``s with the
neck's own ``conv_cfg``/``norm_cfg``/``act_cfg``: :func:`conv_module` turns them into the
``conv_module`` op's parameters (a spec passes them on as its ``norm``, ``norm_groups``,
``norm_eps``, ``norm_momentum``, ``act``, ``act_slope`` and ``bias`` parameters), with mmcv's
rules: ``bias='auto'`` means a bias only without a norm, the norm layer is named ``bn`` or
``gn`` (so a ConvModule maps to the op by one prefix), ``act_cfg=None`` is no activation; its
pieces :func:`norm_momentum` and :func:`mmcv_act` (with :data:`ACTS`) serve the FPN and FPG
converters too, whose parameters are spelled differently.
:func:`check_keys` refuses a constructor argument the reference does not take, with the closest
name, as the reference's own ``TypeError`` would. The rest are the few lines every such converter
read the same way: :func:`spec_params` (a ConvModule's parameters as a spec's), :func:`widths`
(``in_channels``/``out_channels``), :func:`scales_widths` (``num_scales`` with both lists),
:func:`no_init_cfg` and :func:`first_level` (the inputs' strides).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .base import ConversionError, refuse_unknown_keys
from .mmdet import MMDetNecks
from .mmdet_nasfpn import mmcv_norm

__all__ = ["ACTS", "check_keys", "conv_module", "first_level", "mmcv_act", "no_init_cfg", "norm_momentum", "plain_conv", "scales_widths", "spec_params", "widths"]

SOURCE = MMDetNecks.source
PLAIN_CONVS = (None, {"type": "Conv2d"}, {"type": "Conv"})
# mmcv activation type -> the spec's act name: what mmcv 2's registry builds (it has no Mish)
ACTS = {
    "ReLU": "relu", "ReLU6": "relu6", "SiLU": "silu", "Swish": "silu", "GELU": "gelu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HSwish": "hardswish",
    "LeakyReLU": "leaky_relu", "ELU": "elu", "HSigmoid": "hardsigmoid",
}  # fmt: skip
ACT_DEFAULTS = {"ELU": {"alpha": 1.0}, "HSigmoid": {"bias": 3.0, "divisor": 6.0, "min_value": 0.0, "max_value": 1.0}, "GELU": {"approximate": "none"}}
"""The arguments of an activation the spec's op has fixed: only these values are modelled (``GELU``'s tanh form is ``gelu_tanh``)."""


def fail(kind: str, message: str) -> ConversionError:
    return ConversionError(SOURCE, f"{kind}: {message}")


def check_keys(kind: str, cfg: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse keys the reference constructor does not take (``type`` is the registry's)."""
    refuse_unknown_keys(SOURCE, cfg, set(known) - {"type"}, kind, noun="argument", prefix=f"{kind}: ", unlisted={"type"})


def plain_conv(kind: str, conv_cfg: Any) -> None:
    """Only mmcv's plain ``Conv2d`` (``conv_cfg`` None) is modelled."""
    if conv_cfg not in PLAIN_CONVS:
        raise fail(kind, f"conv_cfg {conv_cfg!r} is not supported (None: plain Conv2d)")


def conv_module(kind: str, norm_cfg: Mapping[str, Any] | None, act_cfg: Mapping[str, Any] | None, conv_cfg: Any = None, bias: Any = "auto") -> dict[str, Any]:
    """One ConvModule's ``conv_cfg``, ``norm_cfg``, ``act_cfg`` and ``bias`` -> the spec
    parameters ``norm`` (``bn``, ``gn`` or None), ``norm_groups``, ``norm_eps``,
    ``norm_momentum``, ``act`` (an op name or None), ``act_slope`` and ``bias``."""
    plain_conv(kind, conv_cfg)
    norm = mmcv_norm(norm_cfg, kind)
    params: dict[str, Any] = {
        "norm": None if norm["norm"] == "none" else norm["norm"],
        "norm_groups": norm["norm_groups"],
        "norm_eps": norm["norm_eps"],
        "norm_momentum": norm_momentum(kind, norm_cfg),
    }
    params["act"], params["act_slope"] = mmcv_act(kind, act_cfg)
    if bias == "auto":
        params["bias"] = params["norm"] is None
    elif isinstance(bias, bool):
        params["bias"] = bias
    else:
        raise fail(kind, f"bias must be 'auto', true or false, got {bias!r}")
    return params


def norm_momentum(kind: str, norm_cfg: Mapping[str, Any] | None) -> float:
    """A ``norm_cfg``'s ``momentum`` (0.1 by default; training only, inference ignores it)."""
    momentum = (norm_cfg or {}).get("momentum", 0.1)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise fail(kind, f"norm_cfg momentum {momentum!r} is not supported (a number)")
    return float(momentum)


def mmcv_act(kind: str, act_cfg: Mapping[str, Any] | None) -> tuple[str | None, float]:
    """An ``act_cfg`` -> the spec's activation (None: no activation) and its slope (LeakyReLU's
    ``negative_slope``; 0.01, unused, for any other)."""
    if act_cfg is None:
        return None, 0.01
    name = act_cfg.get("type")
    if name not in ACTS:
        raise fail(kind, f"act_cfg type {name!r} is not supported ({', '.join(ACTS)} or None)")
    if name == "GELU" and act_cfg.get("approximate") == "tanh":
        return "gelu_tanh", 0.01
    for key, default in ACT_DEFAULTS.get(name, {}).items():
        if key in act_cfg and act_cfg[key] != default:
            raise fail(kind, f"act_cfg {name} with {key}={act_cfg[key]!r}: only {key}={default!r} is modelled")
    return ACTS[name], float(act_cfg.get("negative_slope", 0.01)) if name == "LeakyReLU" else 0.01


def first_level(kind: str, strides: list[int], count: int, default: int) -> int:
    """The level of the finest of ``count`` inputs at consecutive powers of two (``default`` when
    the config gives no strides)."""
    if not strides:
        return default
    if len(strides) != count:
        raise fail(kind, f"{count} inputs but {len(strides)} strides ({strides})")
    levels = [int(s).bit_length() - 1 for s in strides]
    if any(2**level != s for level, s in zip(levels, strides)) or levels != list(range(levels[0], levels[0] + count)):
        raise fail(kind, f"strides must be consecutive powers of two, got {strides}")
    return levels[0]


def spec_params(unit: Mapping[str, Any], act: bool = True, bias: bool = True) -> dict[str, Any]:
    """:func:`conv_module`'s result as the parameters of a spec that takes them: no norm or no
    activation as ``'none'``; ``act=False`` leaves out ``act``/``act_slope`` and ``bias=False``
    ``bias`` (for a spec without those parameters)."""
    params = {"norm": unit["norm"] or "none", "norm_groups": unit["norm_groups"], "norm_eps": unit["norm_eps"], "norm_momentum": unit["norm_momentum"]}
    if act:
        params.update(act=unit["act"] or "none", act_slope=unit["act_slope"])
    if bias:
        params["bias"] = unit["bias"]
    return params


def widths(cfg: Mapping[str, Any], key: str = "in_channels") -> list[int]:
    """The list of widths ``cfg[key]`` as integers."""
    return [int(c) for c in cfg[key]]


def scales_widths(kind: str, cfg: Mapping[str, Any], message: str) -> tuple[int, list[int], list[int]]:
    """``(num_scales, in_channels, out_channels)`` of a neck with one module per scale, refused
    with ``message`` (formatted with ``scales``, ``ins`` and ``outs``, the two lists' lengths)
    unless the three agree and there is at least one scale."""
    ins, outs = widths(cfg, "in_channels"), widths(cfg, "out_channels")
    scales = int(cfg["num_scales"])
    if not scales == len(ins) == len(outs) or scales < 1:
        raise fail(kind, message.format(scales=scales, ins=len(ins), outs=len(outs)))
    return scales, ins, outs


def no_init_cfg(kind: str, cfg: Mapping[str, Any], why: str) -> None:
    """Refuse an ``init_cfg`` where the reference asserts it is None (``why``: what it says)."""
    if cfg.get("init_cfg") is not None:
        raise fail(kind, f"init_cfg must be None ({why})")
