"""mmdetection's ``FPG``, Feature Pyramid Grids (``mmdet/models/necks/fpg.py``; mmcv ``ConvModule``).

The reference: ``lateral_convs[i]`` (plain ``nn.Conv2d`` 1x1 with bias) on inputs
``start_level .. backbone_end_level - 1`` (``end_level`` is an *inclusive* input index, ``-1``:
the last), ``extra_downsamples[e]`` (``MaxPool2d(1, stride=2)``, or with ``add_extra_convs`` a
3x3/2 ``nn.Conv2d``) on the last map until there are ``num_outs``; then ``stack_times``
pathways ``fpn_transitions[k][j]``, each a ``ModuleDict`` of transitions (``same_up``,
``same_down``, ``across_lateral``, ``across_down``, ``across_up``, ``across_skip``), empty where
``k in skip_inds[j]``; and ``output_transition[j]`` (``LastConv``: a ConvModule on the last
pathway). A transition config is ``type='conv'`` (a ConvModule with the config's arguments;
mmcv's default ``padding`` is 0), ``'interpolation_conv'`` (``UpInterpolationConv``:
``F.interpolate(scale_factor, mode, align_corners)`` then a ConvModule with padding
``(kernel - 1) // 2``, under ``.conv``) or None.

What the spec reproduces exactly (``specs/fpg.yaml``), including the reference's quirks:

* the sum's order (same, lateral, across_up, across_down, across_skip);
* ``same_up`` and ``same_down`` are *both* built for every pathway, while a pathway uses one:
  the other becomes an ``unused_conv_module`` post op (the ``idle`` parameter), so the
  ``state_dict`` and parameter count match;
* ``across_skip`` is built from ``inter_channels[j - 1]`` (``[-1]`` for level 0) but applied to
  level ``j``: widths must agree where it is used;
* a top-down pathway checks ``skip_inds`` at the loop index but places the map at the mirrored
  level, so a skip there lines up only at the middle level; anything else swaps levels (or
  fails) in the reference and is rejected here.

Rejected, because the reference fails on them or they change semantics we do not model: an
activation first in ``order`` with ``inplace`` on a ``conv`` transition (the reference then
rewrites the transition's input in place), ``PReLU``, spectral norm, padding modes other than
zeros, conv_cfg other than Conv2d, transition types other than ``conv``/``interpolation_conv``
(``output_trans``: ``last_conv``), and ``across_lateral_trans=None`` where a pathway computes a
level (the reference builds it unconditionally). Since every computed map then feeds the next
pathway's lateral transition, every map reaches an output, as the spec requires. ``init_cfg``
does not change the module and is ignored.
"""

from __future__ import annotations

from typing import Any, Mapping

from .base import Conversion, ConversionError, KeyMap
from .mmcv_cfg import mmcv_act
from .mmdet import MMDetNecks, register_neck, used_inputs
from .mmdet_fpn import _first_level
from .mmdet_nasfpn import mmcv_norm

SOURCE = MMDetNecks.source

FPG_KEYS = set(
    "type in_channels out_channels num_outs stack_times paths inter_channels same_down_trans same_up_trans across_lateral_trans "
    "across_down_trans across_up_trans across_skip_trans output_trans start_level end_level add_extra_convs norm_cfg skip_inds init_cfg".split()
)
# The reference constructor's defaults for the transitions.
DEFAULT_TRANS = {
    "same_down_trans": None,
    "same_up_trans": {"type": "conv", "kernel_size": 3, "stride": 2, "padding": 1},
    "across_lateral_trans": {"type": "conv", "kernel_size": 1},
    "across_down_trans": {"type": "conv", "kernel_size": 3},
    "across_up_trans": None,
    "across_skip_trans": {"type": "identity"},
    "output_trans": {"type": "last_conv", "kernel_size": 3},
}
CONV_MODULE_KEYS = set("kernel_size stride padding dilation groups bias conv_cfg norm_cfg act_cfg inplace with_spectral_norm padding_mode order efficient_conv_bn_eval".split())
INTERPOLATION_KEYS = {"scale_factor", "mode", "align_corners"}
# mmcv activations whose layer takes no ``inplace`` argument
NOT_INPLACE = {"Tanh", "PReLU", "Sigmoid", "HSigmoid", "Swish", "GELU"}


def _fail(message: str) -> Exception:
    return ConversionError(SOURCE, f"FPG: {message}")


def _square(value: Any, what: str, where: str) -> int:
    """An int, or an (h, w) pair with h == w."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise _fail(f"{where}: {what} {tuple(value)} is not square; only equal sides are supported")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{where}: {what} must be an integer, got {value!r}")
    return value


def _conv_module(cfg: Mapping[str, Any], where: str, padding: int | None, first_act_inplace_ok: bool) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """mmcv ``ConvModule`` keyword arguments -> an activation that comes first (the ``act`` op's
    parameters, or None) and the ``conv_module`` op's parameters for the rest.

    ``padding``: the padding the wrapper fixes (``(kernel - 1) // 2``), or None to read it from
    ``cfg`` (ConvModule's default: 0)."""
    unknown = set(cfg) - CONV_MODULE_KEYS
    if unknown:
        raise _fail(f"{where}: unknown ConvModule arguments {sorted(unknown)}")
    if "kernel_size" not in cfg:
        raise _fail(f"{where}: kernel_size is required")
    kernel = _square(cfg["kernel_size"], "kernel_size", where)
    if padding is None:
        padding = _square(cfg.get("padding", 0), "padding", where)
    if cfg.get("conv_cfg") not in (None, {"type": "Conv2d"}, {"type": "Conv"}):
        raise _fail(f"{where}: conv_cfg {cfg['conv_cfg']!r} is not supported (plain Conv2d only)")
    if cfg.get("with_spectral_norm", False):
        raise _fail(f"{where}: with_spectral_norm is not supported")
    if cfg.get("padding_mode", "zeros") != "zeros":
        raise _fail(f"{where}: padding_mode {cfg['padding_mode']!r} is not supported (zeros)")
    order = tuple(cfg.get("order", ("conv", "norm", "act")))
    if sorted(order) != ["act", "conv", "norm"]:
        raise _fail(f"{where}: order must be a permutation of conv, norm, act, got {order}")
    norm = mmcv_norm(cfg.get("norm_cfg"), f"FPG {where}")
    act_cfg = cfg.get("act_cfg", {"type": "ReLU"})
    params: dict[str, Any] = {
        "kernel": kernel,
        "padding": padding,
        "dilation": _square(cfg.get("dilation", 1), "dilation", where),
        "groups": int(cfg.get("groups", 1)),
        "norm": None if norm["norm"] == "none" else norm["norm"],
        "order": "_".join(order),
    }
    bias = cfg.get("bias", "auto")
    params["bias"] = params["norm"] is None if bias == "auto" else bool(bias)
    if params["norm"] == "gn":
        params["norm_groups"] = norm["norm_groups"]
    if params["norm"]:
        params["norm_eps"] = norm["norm_eps"]
        momentum = (cfg.get("norm_cfg") or {}).get("momentum", 0.1)
        if isinstance(momentum, (int, float)) and not isinstance(momentum, bool):
            params["norm_momentum"] = float(momentum)
    params["act"], slope = mmcv_act(f"FPG: {where}", act_cfg)
    if act_cfg is not None:
        kind = act_cfg["type"]
        if kind == "LeakyReLU":
            params["slope"] = slope
        inplace = kind not in NOT_INPLACE and act_cfg.get("inplace", cfg.get("inplace", True))
        if order[0] == "act" and inplace and not first_act_inplace_ok:
            raise _fail(f"{where}: order {order} with an in-place activation makes the reference rewrite the transition's input in place; set inplace=False (as the paper's config does)")
    if order[0] == "act" and params["act"]:
        # activation first: a separate, weight-free op, shared by the transitions reading one map
        first = {"fn": params.pop("act")}
        if "slope" in params:
            first["slope"] = params.pop("slope")
        params["act"] = None
        params["order"] = "_".join(order[1:] + ("act",))
        return first, params
    return None, params


class _Transition:
    """One transition config as a ``via`` list, plus where its ConvModule lives."""

    def __init__(self, name: str, cfg: Mapping[str, Any] | None):
        self.name = name
        self.via: list[dict[str, Any]] | None = None
        self.conv: dict[str, Any] = {}
        self.conv_index = 0  # position of the conv_module in the via list
        self.suffix = ""  # the ConvModule's path inside the reference's transition
        if cfg is None:
            return
        cfg = dict(cfg)
        kind = cfg.pop("type", None)
        if kind == "conv":
            first, self.conv = _conv_module(cfg, name, None, first_act_inplace_ok=False)
            stride = _square(cfg.get("stride", 1), "stride", name)
            self.via = ([{"act": first}] if first else []) + [{"conv_module": dict(self.conv, stride=stride)}]
            self.conv_index = len(self.via) - 1
        elif kind == "interpolation_conv":
            interpolation = {k: cfg.pop(k) for k in INTERPOLATION_KEYS if k in cfg}
            cfg.setdefault("kernel_size", 3)
            if "padding" in cfg:
                raise _fail(f"{name}: interpolation_conv fixes padding to (kernel_size - 1) // 2 and takes no padding")
            kernel = _square(cfg["kernel_size"], "kernel_size", name)
            # F.interpolate makes a new tensor, so an in-place activation first is harmless
            first, self.conv = _conv_module(cfg, name, (kernel - 1) // 2, first_act_inplace_ok=True)
            stride = _square(cfg.get("stride", 1), "stride", name)
            scale = interpolation.get("scale_factor", 2)
            if scale not in (2, 4, 8, 16, 2.0, 4.0, 8.0, 16.0):
                raise _fail(f"{name}: scale_factor {scale!r} is not supported; levels are a factor 2 apart (2, 4, 8 or 16)")
            mode = interpolation.get("mode", "nearest")
            if mode not in ("nearest", "bilinear", "bicubic"):
                raise _fail(f"{name}: interpolation mode {mode!r} is not supported (nearest, bilinear, bicubic)")
            upsample: dict[str, Any] = {"by": "scale", "scale": int(scale), "mode": mode}
            if interpolation.get("align_corners") is not None:
                if mode == "nearest":
                    raise _fail(f"{name}: align_corners applies to bilinear and bicubic modes only")
                upsample["align_corners"] = bool(interpolation["align_corners"])
            self.via = [{"upsample": upsample}] + ([{"act": first}] if first else []) + [{"conv_module": dict(self.conv, stride=stride)}]
            self.conv_index, self.suffix = len(self.via) - 1, ".conv"
        else:
            raise _fail(f"{name}: transition type {kind!r} is not supported in the grid (conv, interpolation_conv or None; the reference builds no other)")

    def __bool__(self) -> bool:
        return self.via is not None


def _output(cfg: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``output_trans`` -> the output nodes' post ops: [act,] conv_module."""
    if cfg is None or cfg.get("type") != "last_conv":
        raise _fail(f"output_trans must be a last_conv transition (the reference passes num_inputs, which only LastConv takes), got {cfg!r}")
    cfg = {k: v for k, v in cfg.items() if k != "type"}
    cfg.setdefault("kernel_size", 3)
    if "padding" in cfg:
        raise _fail("output_trans: last_conv fixes padding to (kernel_size - 1) // 2 and takes no padding")
    if _square(cfg.pop("stride", 1), "stride", "output_trans") != 1:
        raise _fail("output_trans: a strided output conv would change the output's level; not supported")
    kernel = _square(cfg["kernel_size"], "kernel_size", "output_trans")
    # LastConv reads the last pathway's map, which nothing reads afterwards: in place is harmless
    first, conv = _conv_module(cfg, "output_trans", (kernel - 1) // 2, first_act_inplace_ok=True)
    return ([{"act": first}] if first else []) + [{"conv_module": conv}]


def _int_list(value: Any, what: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise _fail(f"{what} must be a list of integers, got {value!r}")
    return list(value)


@register_neck("FPG")
def convert_fpg(cfg: Mapping[str, Any], strides: list[int]) -> Conversion:
    unknown = set(cfg) - FPG_KEYS
    if unknown:
        raise _fail(f"unknown arguments {sorted(unknown)}")
    in_channels = _int_list(cfg["in_channels"], "in_channels")
    num_ins = len(in_channels)
    out_channels = int(cfg["out_channels"])
    stack_times = int(cfg["stack_times"])
    if stack_times < 0:
        raise _fail(f"stack_times must be >= 0, got {stack_times}")
    start, used, num_outs = used_inputs("FPG", cfg, num_ins)

    inter = cfg.get("inter_channels")
    if inter is None:
        inter = [out_channels] * num_outs
    elif isinstance(inter, int) and not isinstance(inter, bool):
        inter = [inter] * num_outs
    else:
        inter = _int_list(inter, "inter_channels")
        if len(inter) != num_outs:
            raise _fail(f"inter_channels has {len(inter)} entries for num_outs {num_outs}")

    paths = list(cfg["paths"])
    if len(paths) != stack_times or any(p not in ("bu", "td") for p in paths):
        raise _fail(f"paths must list 'bu' or 'td' for each of the {stack_times} pathways, got {paths!r}")
    raw_skip = cfg.get("skip_inds")
    if raw_skip is None or len(raw_skip) < num_outs:
        raise _fail(f"skip_inds must list, for each of the {num_outs} levels, the pathways that skip it (the reference indexes it per level), got {raw_skip!r}")
    if len(raw_skip[0]) > stack_times:
        raise _fail(f"skip_inds[0] lists {len(raw_skip[0])} pathways but there are {stack_times}")
    # The reference asks `k in skip_inds[j]` for k in range(stack_times): other entries never match.
    skip = [sorted({k for k in _int_list(raw_skip[j], f"skip_inds[{j}]") if 0 <= k < stack_times}) for j in range(num_outs)]
    for k, direction in enumerate(paths):
        for j in range(num_outs):
            if direction == "td" and k in skip[j] and j != num_outs - 1 - j:
                raise _fail(
                    f"stack {k} is top-down and skips level {j}: the reference checks skip_inds at the loop index but stores "
                    f"the map at level {num_outs - 1 - j}, which swaps levels (or fails); only the middle level can be skipped top-down"
                )

    trans = {name: _Transition(name, cfg.get(f"{name}_trans", DEFAULT_TRANS[f"{name}_trans"])) for name in ("same_up", "same_down", "across_lateral", "across_down", "across_up", "across_skip")}
    output = _output(cfg.get("output_trans", DEFAULT_TRANS["output_trans"]))

    extra_convs = bool(cfg.get("add_extra_convs", False))
    if not extra_convs:
        for j in range(used, num_outs):
            if inter[j] != inter[j - 1]:
                raise _fail(f"the extra level {j} is max-pooled from level {j - 1}, so inter_channels must agree there ({inter[j - 1]} != {inter[j]})")
    if trans["across_skip"]:
        for j in range(num_outs):
            if any(k not in skip[j] for k in range(stack_times)) and inter[j - 1] != inter[j]:
                raise _fail(f"across_skip_trans at level {j} is built for inter_channels[{j - 1}] = {inter[j - 1]} but applied to level {j} ({inter[j]} channels)")

    if not trans["across_lateral"] and any(k not in skip[j] for k in range(stack_times) for j in range(num_outs)):
        raise _fail("across_lateral_trans is None, but the reference builds it for every level a pathway computes (and fails on None)")

    first_level = _first_level(strides, num_ins, "FPG")
    base = first_level + start
    key_map = KeyMap()
    for i in range(used):
        key_map.add(f"lateral_convs.{i}", f"L{base + i}.post0")
    if extra_convs:
        for e in range(num_outs - used):
            level = base + used + e
            key_map.add(f"extra_downsamples.{e}", f"L{level}.from_L{level - 1}.via0.conv")
    # which source each transition reads, as the spec names it (Q: this pathway, P: the previous, L: the first)
    sources = {"same_up": ("Q", -1), "same_down": ("Q", 1), "across_lateral": ("P", 0), "across_up": ("P", -1), "across_down": ("P", 1), "across_skip": ("L", 0)}
    idle: list[list[list[dict[str, Any]]]] = []
    for k, direction in enumerate(paths):
        idle.append([])
        for j in range(num_outs):
            idle[k].append([])
            if k in skip[j]:
                continue
            level = base + j
            node = f"path{k}.Q{level}"
            for name, (prefix, step) in sources.items():
                t = trans[name]
                if not t or not 0 <= j + step < num_outs:
                    continue
                if (name == "same_up" and direction == "td") or (name == "same_down" and direction == "bu"):
                    # built, never called: weights only, kept as a post op of this node
                    key_map.add(f"fpn_transitions.{k}.{j}.{name}{t.suffix}", f"{node}.post{len(idle[k][j])}")
                    idle[k][j].append({"unused_conv_module": dict(t.conv, in_channels=inter[j + step])})
                    continue
                key_map.add(f"fpn_transitions.{k}.{j}.{name}{t.suffix}", f"{node}.from_{prefix}{level + step}.via{t.conv_index}")
    for j in range(num_outs):
        key_map.add(f"output_transition.{j}.conv_out", f"O{base + j}.post{len(output) - 1}")

    params: dict[str, Any] = {
        "channels": out_channels,
        "inter": inter,
        "first_level": first_level,
        "start": start,
        "used": used,
        "num_outs": num_outs,
        "extra_convs": extra_convs,
        "stack_times": stack_times,
        "paths": paths,
        "skip": skip,
        **{name: t.via for name, t in trans.items()},
        "output": output,
        "idle": idle if any(any(level) for level in idle) else [],
    }
    return Conversion("fpg", in_channels, params, key_map, return_type="list")
