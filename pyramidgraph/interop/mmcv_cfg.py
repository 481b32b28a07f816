"""mmcv's config dictionaries (``conv_cfg``, ``norm_cfg``, ``act_cfg``, ``bias``) as spec parameters.

Shared by the mmdetection converters whose necks are built from mmcv ``ConvModule``s with the
neck's own ``conv_cfg``/``norm_cfg``/``act_cfg``: :func:`conv_module` turns them into the
``conv_module`` op's parameters (a spec passes them on as its ``norm``, ``norm_groups``,
``norm_eps``, ``norm_momentum``, ``act``, ``act_slope`` and ``bias`` parameters), with mmcv's
rules: ``bias='auto'`` means a bias only without a norm, the norm layer is named ``bn`` or
``gn`` (so a ConvModule maps to the op by one prefix), ``act_cfg=None`` is no activation.
:func:`check_keys` refuses a constructor argument the reference does not take, with the closest
name, as the reference's own ``TypeError`` would.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..errors import did_you_mean
from .base import ConversionError
from .mmdet import MMDetNecks
from .mmdet_fpn import ACTS
from .mmdet_nasfpn import mmcv_norm

__all__ = ["check_keys", "conv_module", "plain_conv", "first_level"]

SOURCE = MMDetNecks.source
PLAIN_CONVS = (None, {"type": "Conv2d"}, {"type": "Conv"})


def fail(kind: str, message: str) -> ConversionError:
    return ConversionError(SOURCE, f"{kind}: {message}")


def check_keys(kind: str, cfg: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse keys the reference constructor does not take (``type`` is the registry's)."""
    known = set(known) | {"type"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise fail(kind, f"unknown argument '{unknown[0]}'{did_you_mean(unknown[0], known)} ({kind} takes: {', '.join(sorted(known - {'type'}))})")


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
    momentum = (norm_cfg or {}).get("momentum", 0.1)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise fail(kind, f"norm_cfg momentum {momentum!r} is not supported (a number)")
    params: dict[str, Any] = {
        "norm": None if norm["norm"] == "none" else norm["norm"],
        "norm_groups": norm["norm_groups"],
        "norm_eps": norm["norm_eps"],
        "norm_momentum": float(momentum),
        "act": None,
        "act_slope": 0.01,
    }
    if act_cfg is not None:
        name = act_cfg.get("type")
        if name not in ACTS:
            raise fail(kind, f"act_cfg type {name!r} is not supported ({', '.join(ACTS)} or None)")
        params["act"] = ACTS[name]
        if name == "LeakyReLU":
            params["act_slope"] = float(act_cfg.get("negative_slope", 0.01))
    if bias == "auto":
        params["bias"] = params["norm"] is None
    elif isinstance(bias, bool):
        params["bias"] = bias
    else:
        raise fail(kind, f"bias must be 'auto', true or false, got {bias!r}")
    return params


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
