"""Optimisation passes over the primitive graph (the ``torch.fx`` graph of a compiled neck).

The IR passes (:mod:`pyramidgraph.passes`) see spec-level ops; these see the calls a neck
makes: convolutions, norms, activations, sums. Each pass is one module with one function
``run(ctx: PassContext) -> int`` (how many rewrites it made: 0 when it found nothing) and one
entry in :data:`FX_PASSES`, which says at which optimisation levels it runs:

* ``train``: rewrites that keep the module exact in every mode, gradients included (parallel
  convs merged into one, weighted sums as ``addcmul``, autograd-safe in-place activations and
  sums, ``channels_last``). They rewrite the neck's own graph; its modules and ``state_dict`` stay.
* ``inference``: the rest, valid in eval mode without autograd: norms folded into convs,
  RepVGG branches re-parameterised into one conv, fusion weights folded into convs, every
  activation in place. They build the neck's *inference program*
  (:mod:`pyramidgraph.optimization`), whose weight arithmetic ``freeze`` moves out of the forward
  into derived tensors recomputed when the parameters change.

Passes never read weight values except through :meth:`PassContext.weight_value` (a shape
question about a weight computation); the values they fold are graph nodes, computed by the
functions of :mod:`pyramidgraph.passes.fx.weight_math`, so the same rewrite serves a training
graph (the arithmetic runs each step, gradients flow) and an inference one (it runs once).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

__all__ = ["PassContext", "FxPass", "FX_PASSES", "LEVELS", "run_fx_passes", "conv_info", "ConvInfo", "resolve"]

LEVELS = ("none", "train", "inference")
"""The optimisation levels ``compile(..., optimize=...)`` takes, from none to the most."""


@dataclass
class PassContext:
    """What a pass reads and rewrites: the graph, the module whose attributes its nodes name
    (module classes, conv strides, norm eps: never weight values), and the level."""

    graph: torch.fx.Graph
    root: nn.Module
    level: str
    """``train``: the neck's own graph; ``inference``: its inference program."""
    pinned: set[str] = field(default_factory=set)
    """Module paths a rewrite stopped calling in a ``train`` graph: the graph keeps a
    ``get_attr`` of each (as :meth:`Emitter.keep` does), so that copying the neck keeps the
    module and its checkpoint keys."""
    products: dict[str, Any] = field(default_factory=dict)
    """What a pass hands to the driver rather than to the graph (``freeze``: the weight program)."""
    _values: dict[torch.fx.Node, Any] = field(default_factory=dict, repr=False)
    _weights: dict[torch.fx.Node, bool] = field(default_factory=dict, repr=False)
    _attrs: dict[str, torch.fx.Node] | None = field(default=None, repr=False)

    def module(self, node: torch.fx.Node) -> nn.Module | None:
        """The module a ``call_module`` node calls (None for any other node)."""
        return self.root.get_submodule(node.target) if node.op == "call_module" else None

    def get_attr(self, target: str) -> torch.fx.Node:
        """A ``get_attr`` node reading ``target`` (one per target and graph), at the graph's top."""
        if self._attrs is None:  # torch.fx's find_nodes scans every get_attr for a target: index them once
            self._attrs = {node.target: node for node in self.graph.find_nodes(op="get_attr")}
        node = self._attrs.get(target)
        if node is None or node.graph is not self.graph or node._erased:
            with self.graph.inserting_before(next(iter(self.graph.nodes))):
                node = self._attrs[target] = self.graph.get_attr(target)
        return node

    def is_weight(self, node: Any) -> bool:
        """Whether ``node`` is computed from parameters and buffers alone (no feature map):
        what ``freeze`` may compute once."""
        if not isinstance(node, torch.fx.Node):
            return True
        known = self._weights.get(node)
        if known is None:
            known = self._weights[node] = self._is_weight(node)
        return known

    def _is_weight(self, node: torch.fx.Node) -> bool:
        if node.op == "get_attr":
            return True
        if node.op != "call_function" or node.target in _IMPURE:
            return False
        flat = [*node.args, *node.kwargs.values()]
        nested = [item for arg in flat for item in (arg if isinstance(arg, (list, tuple)) else [arg])]
        if not any(isinstance(item, torch.fx.Node) for item in nested):
            return False  # a call of constants only is not a weight (there is none in a neck's graph)
        return all(self.is_weight(item) for item in nested)

    def weight_value(self, node: torch.fx.Node) -> Any:
        """The current value of a weight computation (:meth:`is_weight`), for its shape."""
        if node not in self._values:
            def value(arg: Any) -> Any:
                return self.weight_value(arg) if isinstance(arg, torch.fx.Node) else arg

            if node.op == "get_attr":
                result = resolve(self.root, node.target)
            else:
                with torch.no_grad():
                    result = node.target(*torch.fx.node.map_aggregate(node.args, value), **torch.fx.node.map_aggregate(node.kwargs, value))
            self._values[node] = result
        return self._values[node]

    def pin(self, target: str) -> None:
        if self.level == "train":
            self.pinned.add(target)


def resolve(root: nn.Module, target: str) -> Any:
    """The parameter, buffer or module a ``get_attr`` target names under ``root``."""
    owner, _, name = target.rpartition(".")
    return getattr(root.get_submodule(owner) if owner else root, name)


_IMPURE = {torch.rand, torch.randn, torch.rand_like, torch.randn_like, F.dropout, torch.bernoulli}


@dataclass(frozen=True)
class ConvInfo:
    """A ``torch.nn.functional.conv2d`` call in the graph, its arguments by name."""

    node: torch.fx.Node
    x: torch.fx.Node
    weight: torch.fx.Node
    bias: torch.fx.Node | None
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    out_channels: int
    kernel: tuple[int, int]


def _pair(value: Any) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def conv_info(node: torch.fx.Node) -> ConvInfo | None:
    """The arguments of a ``conv2d`` call made by :func:`call_conv` (None for other nodes)."""
    if node.op != "call_function" or node.target is not F.conv2d or "conv" not in node.meta:
        return None
    x, weight, bias, stride, padding, dilation, groups = node.args
    meta = node.meta["conv"]
    return ConvInfo(node, x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups, meta["out_channels"], meta["kernel"])


def call_conv(
    graph: torch.fx.Graph,
    x: torch.fx.Node,
    weight: torch.fx.Node,
    bias: torch.fx.Node | None,
    *,
    stride,
    padding,
    dilation,
    groups: int,
    out_channels: int,
    kernel: tuple[int, int],
    meta: dict[str, Any],
    name: str | None = None,
) -> torch.fx.Node:
    """Add ``F.conv2d(x, weight, bias, ...)`` at the graph's insertion point, with its widths
    and kernel in ``node.meta["conv"]`` (so later passes need no weight to reason about it),
    named ``name`` (made unique) when given."""
    node = graph.create_node("call_function", F.conv2d, (x, weight, bias, _pair(stride), _pair(padding), _pair(dilation), groups), {}, name=name)
    node.meta.update(meta)
    node.meta["conv"] = {"out_channels": out_channels, "kernel": tuple(kernel)}
    return node


def lower_conv_module(ctx: PassContext, node: torch.fx.Node) -> torch.fx.Node | None:
    """Replace a ``call_module`` of a plain ``nn.Conv2d`` by ``F.conv2d`` on its parameters
    (None, and nothing changed, for another module or a padding mode other than zeros)."""
    conv = ctx.module(node)
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    with ctx.graph.inserting_before(node):
        weight = ctx.get_attr(f"{node.target}.weight")
        bias = ctx.get_attr(f"{node.target}.bias") if conv.bias is not None else None
        shape = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation, "groups": conv.groups, "out_channels": conv.out_channels, "kernel": conv.kernel_size}
        lowered = call_conv(ctx.graph, node.args[0], weight, bias, **shape, meta=node.meta, name=node.name)
    node.replace_all_uses_with(lowered)
    ctx.graph.erase_node(node)
    ctx.pin(node.target)
    return lowered


def replace_conv(ctx: PassContext, info: ConvInfo, *, weight=None, bias=..., kernel=None, padding=None, out_channels=None, anchor: torch.fx.Node | None = None, name: str | None = None) -> torch.fx.Node:
    """A conv like ``info``'s with some arguments changed, in place of ``anchor`` (default: the
    conv itself), which is erased; returns the new conv (named ``name``: by default the
    anchor's)."""
    anchor = anchor or info.node
    with ctx.graph.inserting_before(anchor):
        new = call_conv(
            ctx.graph,
            info.x,
            weight if weight is not None else info.weight,
            info.bias if bias is ... else bias,
            stride=info.stride,
            padding=padding or info.padding,
            dilation=info.dilation,
            groups=info.groups,
            out_channels=out_channels or info.out_channels,
            kernel=kernel or info.kernel,
            meta=info.node.meta,
            name=name or anchor.name,
        )
    anchor.replace_all_uses_with(new)
    ctx.graph.erase_node(anchor)
    if anchor is not info.node and not info.node.users:
        ctx.graph.erase_node(info.node)
    return new


def hoist(ctx: PassContext, weights: list[torch.fx.Node], before: torch.fx.Node) -> None:
    """Move the weight computations ``weights`` (and what they read) in front of ``before``,
    where a rewrite needs them: they read parameters only, so any place before their first
    use computes the same."""
    earlier = set()
    for node in ctx.graph.nodes:
        if node is before:
            break
        earlier.add(node)

    def move(node: torch.fx.Node) -> None:
        if node in earlier:
            return
        for arg in node.all_input_nodes:
            move(arg)
        before.prepend(node)
        earlier.add(node)

    for weight in weights:
        move(weight)


def weight_call(ctx: PassContext, fn: Callable[..., Any], *args: Any, name: str | None = None) -> torch.fx.Node:
    """A call of a :mod:`weight_math` function at the insertion point (named ``name``)."""
    return ctx.graph.create_node("call_function", fn, tuple(args), {}, name=name)


def weight_pair(ctx: PassContext, fn: Callable[..., Any], *args: Any, name: str, bias: bool = True) -> tuple[torch.fx.Node, torch.fx.Node | None]:
    """A :mod:`weight_math` call returning ``(kernel, bias)``, and its two parts, named
    ``<name>_weight`` and ``<name>_bias`` (the bias None when ``bias`` is false: the fold has none)."""
    pair = weight_call(ctx, fn, *args, name=name)
    weight = ctx.graph.create_node("call_function", operator.getitem, (pair, 0), {}, name=f"{name}_weight")
    return weight, ctx.graph.create_node("call_function", operator.getitem, (pair, 1), {}, name=f"{name}_bias") if bias else None


def single_user(node: torch.fx.Node) -> bool:
    return len(node.users) == 1


def nodes(ctx: PassContext, op: str = "call_function", target: Any = None) -> Iterator[torch.fx.Node]:
    """A snapshot of the graph's nodes of one kind (a pass may erase nodes while it walks)."""
    return iter([n for n in ctx.graph.nodes if n.op == op and (target is None or n.target is target or n.target == target)])


@dataclass(frozen=True)
class FxPass:
    """One pass: its name, its function, and the levels it runs at."""

    name: str
    run: Callable[[PassContext], int]
    levels: frozenset[str]


def run_fx_passes(ctx: PassContext, check: bool = False) -> dict[str, int]:
    """Run every pass of :data:`FX_PASSES` that belongs to ``ctx.level``, in order; returns
    the rewrites each made. With ``check``, the graph is linted after each pass (our own
    invariant; the tests check it, a compile need not pay for it)."""
    counts: dict[str, int] = {}
    for p in FX_PASSES:
        if ctx.level in p.levels:
            counts[p.name] = p.run(ctx)
            if check:
                ctx.graph.lint()
    for target in sorted(ctx.pinned):  # adds a read only where the graph has none
        ctx.get_attr(target)
    return counts


from . import (  # noqa: E402
    channels_last,
    dead_code,
    fold_norms,
    fold_scales,
    freeze,
    inplace_activations,
    inplace_sums,
    lower_convs,
    merge_parallel_convs,
    reparameterise,
    weighted_sums,
)

TRAIN = frozenset({"train", "inference"})
INFERENCE = frozenset({"inference"})

FX_PASSES: tuple[FxPass, ...] = (
    FxPass("lower_convs", lower_convs.run, INFERENCE),
    FxPass("fold_norms", fold_norms.run, INFERENCE),
    FxPass("reparameterise", reparameterise.run, INFERENCE),
    FxPass("fold_scales", fold_scales.run, INFERENCE),
    FxPass("merge_parallel_convs", merge_parallel_convs.run, TRAIN),
    FxPass("weighted_sums", weighted_sums.run, TRAIN),
    FxPass("inplace_activations", inplace_activations.run, TRAIN),
    FxPass("inplace_sums", inplace_sums.run, TRAIN),
    FxPass("channels_last", channels_last.run, TRAIN),
    FxPass("dead_code", dead_code.run, TRAIN),
    FxPass("freeze", freeze.run, INFERENCE),
)
"""The pipeline, in order. Adding a pass: one module here and one entry in this list."""
