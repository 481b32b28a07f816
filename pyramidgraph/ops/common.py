"""Helpers shared by ops that own convolutions and norms: declare one, emit its call, compute its output size."""

from __future__ import annotations

import contextvars
import functools
from typing import TYPE_CHECKING, Any, Callable, Literal, Union

from ..shape import FeatureShape, ShapeError, conv_out, same_out
from ..weights import ModuleDecl, declare, overwrites_parameters

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx
    from torch import nn

    from ..codegen import Emitter
    from .base import Site

Padding = Union[int, Literal["same"], None]
"""``None``: symmetric ``dilation * (kernel - 1) // 2``; ``'same'``: TensorFlow's asymmetric padding."""

Init = Literal["default", "xavier_uniform", "kaiming_uniform", "normal"]

ActName = Literal["relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish", "mish", "leaky_relu", "elu", "selu", "celu", "hardsigmoid", "gelu_tanh", "quick_gelu", "hard_mish"]
"""What ``{act: NAME}`` and ``act:`` parameters accept; :func:`activation` gives the function."""


def activation(name: str) -> Callable:
    """The activation function called ``name`` (one of :data:`ActName`); imports torch, so only
    code generation calls it (checking a spec never does)."""
    import torch
    import torch.nn.functional as F

    from . import activations

    functions = {
        "relu": F.relu, "relu6": F.relu6, "silu": F.silu, "gelu": F.gelu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardswish": F.hardswish, "mish": F.mish,
        "leaky_relu": F.leaky_relu, "elu": F.elu, "selu": F.selu, "celu": F.celu, "hardsigmoid": F.hardsigmoid,
        "gelu_tanh": activations.gelu_tanh, "quick_gelu": activations.quick_gelu, "hard_mish": activations.hard_mish,
    }  # fmt: skip
    return functions[name]


def out_width(out: int | None, channels: int | None, x_channels: int) -> int:
    """A width-changing op's output width: its own ``out``, else the node's ``channels``, else unchanged."""
    return out if out is not None else channels if channels is not None else x_channels


def stride_at(stride: int | None, x: FeatureShape, site: Site) -> int:
    """A conv's stride at its place: the one given, else ``2**level difference`` on an edge (to
    reach the target level) and 1 after a fusion."""
    if stride is not None:
        return stride
    return 2 ** max(site.target.level - x.level, 0) if site.role == "edge" else 1


def factor_up(factor: int | None, x: FeatureShape, target: FeatureShape) -> int:
    """An upsampling op's factor (scale, or a transposed conv's stride): the one given, else
    ``2**level difference`` from ``x`` down to the finer ``target`` (1 along a level)."""
    return factor if factor is not None else 2 ** max(x.level - target.level, 0)


def width_and_step(name: str, stride: int, out: int | None, x: FeatureShape, site: Site) -> tuple[int, int]:
    """A conv-like op's output width and level step at its place: the target's width on an edge;
    after a fusion ``out``, else the node's width, else the input's, and stride 1 (post ops keep
    the node's level)."""
    step = stride.bit_length() - 1
    if stride < 1 or 2**step != stride:
        raise ShapeError(f"{name} stride {stride} is not a power of two")
    if site.role == "edge":
        if out is not None:
            raise ShapeError(f"{name} on an edge maps to the node's width; out applies after a fusion (remove it, or set the node's channels)")
        return site.target.channels, step
    if stride != 1:
        raise ShapeError(f"{name} after a fusion keeps the node's level: stride must be 1, not {stride}; stride on an edge instead")
    return out_width(out, site.channels, x.channels), 0


def resolve_padding(kernel: int, padding: Padding, dilation: int = 1) -> int | str:
    return dilation * (kernel - 1) // 2 if padding is None else padding


def window_out(size: tuple[int, int] | None, kernel: int, stride: int, padding: Padding, dilation: int = 1) -> tuple[int, int] | None:
    """Spatial size after a conv/pool window; raises ShapeError when it would be empty."""
    if size is None:
        return None
    pad = resolve_padding(kernel, padding, dilation)
    if pad == "same":
        return (same_out(size[0], stride), same_out(size[1], stride))
    out = (conv_out(size[0], kernel, stride, pad, dilation), conv_out(size[1], kernel, stride, pad, dilation))
    if min(out) < 1:
        raise ShapeError(f"a {kernel}x{kernel} window with stride {stride} and padding {pad} leaves nothing of a {size[0]}x{size[1]} map; use a larger input or padding")
    return out


SKIP_DEFAULT_INIT_FROM = 16_384
"""Weights from which a conv with an init scheme is built without PyTorch's default draw
(:func:`pyramidgraph.weights.overwrites_parameters`): building it that way costs about 0.3 ms
here, about what drawing 16 K weights costs; a smaller conv is built the ordinary way."""


def build_conv(cin: int, cout: int, kernel: int, stride: int, padding: Padding, bias: bool, init: str, groups: int = 1, dilation: int = 1) -> ModuleDecl:
    """Declare an ``nn.Conv2d`` (``padding: same`` pads in a separate call, see :func:`emit_conv`),
    initialised by the ``init`` scheme (:func:`pyramidgraph.runtime.init_conv`)."""
    from torch import nn

    pad = resolve_padding(kernel, padding, dilation)
    scheme = None if init == "default" else functools.partial(_init_conv, scheme=init)
    if scheme is not None and cout * (cin // groups) * kernel * kernel >= SKIP_DEFAULT_INIT_FROM:
        scheme = overwrites_parameters(scheme)  # it sets weight and bias: PyTorch's default draw is skipped
    return declare(nn.Conv2d, cin, cout, kernel, stride=stride, padding=0 if pad == "same" else pad, dilation=dilation, groups=groups, bias=bias, init=scheme)


def _init_conv(conv: nn.Conv2d, scheme: str) -> None:
    from ..runtime import init_conv

    init_conv(conv, scheme)


def emit_conv(e: Emitter, local: str, conv: ModuleDecl, x: torch.fx.Node, padding: Padding) -> torch.fx.Node:
    """Call the declared ``conv``, with a TensorFlow "same" pad in front when asked for."""
    from ..runtime import pad_same

    if padding == "same":
        kernel, stride, dilation = conv.args[2], conv.kwargs.get("stride", 1), conv.kwargs.get("dilation", 1)
        x = e.call_function(pad_same, x, kernel + (kernel - 1) * (dilation - 1), stride)
    return e.call_module(local, conv, x)


def emit_act(e: Emitter, name: str, x: torch.fx.Node, slope: float = 0.01) -> torch.fx.Node:
    if name == "leaky_relu":
        return e.call_function(activation(name), x, slope)
    return e.call_function(activation(name), x)


def build_norm(kind: str, channels: int, groups: int = 32, eps: float = 1e-5, momentum: float = 0.1, init: Callable[[Any], Any] | None = None) -> ModuleDecl:
    """Declare a ``bn`` (``nn.BatchNorm2d``) or ``gn`` (``nn.GroupNorm`` of ``groups``) norm."""
    from torch import nn

    if kind == "bn":
        return declare(nn.BatchNorm2d, channels, eps=eps, momentum=momentum, init=init)
    return declare(nn.GroupNorm, groups, channels, eps=eps, init=init)


SINGLE_SAMPLE: contextvars.ContextVar[bool] = contextvars.ContextVar("single_sample", default=False)
"""Set while the input contract checks sizes that come in a batch of one (:func:`pyramidgraph.lower.lower`)."""
ONE_VALUE_GROUPS: contextvars.ContextVar[list | None] = contextvars.ContextVar("one_value_groups", default=None)
"""While a spec is lowered, collects the group norms of one channel per group: a neck with one
checks the sizes of a batch of one on their own (``IRGraph.meta["batch_sensitive"]``)."""


def check_norm(kind: str | None, channels: int, groups: int = 32, size: tuple[int, int] | None = None) -> None:
    """A norm's width rule, and (with the normed map's ``size``, when known, for a batch of one)
    torch's refusal of a group norm whose groups hold one value each (``F.group_norm`` refuses
    ``batch * channels / groups * height * width == 1``): a size rule, so the input contract names it."""
    if kind == "gn" and channels % groups:
        raise ShapeError(f"group norm with {groups} groups needs channels divisible by {groups}, got {channels}")
    seen = ONE_VALUE_GROUPS.get()
    if kind == "gn" and channels == groups and seen is not None:
        seen.append(channels)
    if kind == "gn" and size is not None and channels // groups * size[0] * size[1] == 1 and SINGLE_SAMPLE.get():
        raise ShapeError(
            f"group norm of {groups} groups over a {size[0]}x{size[1]} map of {channels} channels normalises one value per group, which torch refuses "
            "for a batch of one: the map must be larger than 1x1, or the batch larger"
        )
