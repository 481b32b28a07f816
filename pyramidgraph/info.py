"""What a neck costs, node by node: level, stride, width, spatial size, parameters and MACs.

``pyramidgraph info SPEC`` and :func:`neck_info` answer "where do the parameters and the
compute of this neck go?" for one backbone (``in_channels``) and one image size, both
defaulting to the spec's ``example`` (and 256x256 when the spec gives no image).

How it is counted, and why this way:

* The neck is lowered and optimised exactly as :func:`pyramidgraph.compile` does (same passes),
  then every IR op is emitted on its own, on PyTorch's ``meta`` device: the same modules and
  calls ``compile`` generates, but no memory and no arithmetic. Parameters are therefore those
  of the compiled neck by construction (``sum(p.numel() for p in neck.parameters())``), for
  every op, including ops added later, without a second formula per op that could drift.
* The emitted graph is run once on ``meta`` tensors of the image's input sizes, which gives the
  shape of every call. Multiply-accumulates (MACs, one multiply plus one add; FLOPs are about
  twice this) are counted for a batch of one image from those shapes:

  - a convolution: ``out_channels * out_h * out_w * (in_channels / groups) * kernel_h * kernel_w``
    (a bias adds no MACs);
  - a linear layer: ``out_elements * in_features``;
  - a matrix product (the non-local block's attention): ``out_elements * inner_dim``.

  By convention everything else costs 0 MACs: resizing, pooling, sums, means, learned fusion
  weights, gates, norms and activations are element-wise or memory-bound, and counting them
  would only blur the convolutions, which dominate. (fvcore and ptflops count the same way by
  default; thop also counts norms and activations.)
* A spec node's cost is the sum over the IR ops lowered for it: the resample ops on its
  incoming edges, its fusion and its post ops. An op that common-subexpression elimination
  shares between nodes (an upsample read by two nodes) is counted once, in the node that
  computes it first. A shared block (``repeat`` with ``share: true``) holds its weights once:
  they count in the first repetition, while every repetition counts its MACs. Weights a
  reference builds but never calls (``unused_conv_module``) count as parameters, not MACs.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
import torch.fx
from torch import nn

from .codegen import build_primitive_graph
from .compiler import SpecSource, analyze, load
from .expand import example_image
from .ir import IRGraph
from .loader import Document
from .shape import FeatureShape
from .weights import materialise

__all__ = ["NodeCost", "NeckCost", "OpCost", "neck_info", "op_costs", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = (256, 256)
"""Image size used when neither the caller nor the spec's ``example`` gives one (as ``PyramidNeck.example_inputs``)."""

_MATMULS = (torch.matmul, torch.bmm, torch.mm, operator.matmul)


@dataclass(frozen=True)
class OpCost:
    """Parameters and multiply-accumulates of one IR op (for one image)."""

    params: int = 0
    macs: int = 0


@dataclass(frozen=True)
class NodeCost:
    """One spec node: where it sits in the pyramid, how large it is, and what it costs."""

    name: str
    level: int
    stride: int
    channels: int
    size: tuple[int, int]
    """Spatial size ``(height, width)`` of the node's map for the image :class:`NeckCost` was computed for."""
    params: int
    macs: int
    output: str | None = None
    """The output name this node's map is returned under, or None."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "stride": self.stride,
            "channels": self.channels,
            "size": list(self.size),
            "params": self.params,
            "macs": self.macs,
            "output": self.output,
        }


@dataclass(frozen=True)
class NeckCost:
    """Per-node costs of a neck for one backbone and image size; totals are the neck's."""

    name: str
    image: tuple[int, int]
    inputs: list[tuple[str, FeatureShape]]
    nodes: list[NodeCost]
    params: int
    """Total parameters: ``sum(p.numel() for p in compile(...).parameters())``."""
    macs: int
    """Total multiply-accumulates for one image of size ``image``."""
    ops: dict[str, OpCost] = field(default_factory=dict, repr=False)
    """Cost of every IR op, by op (value) name, for finer views than nodes."""
    outputs: list[tuple[str, str]] = field(default_factory=list)
    """``(output name, node)`` in the order the neck returns them."""

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: the spec's name, the image, the inputs, the outputs (name and
        node, in return order), every node (``output`` names the output it is, if any) and the
        totals."""
        return {
            "name": self.name,
            "image": list(self.image),
            "inputs": [{"name": name, "channels": s.channels, "level": s.level, "stride": s.stride} for name, s in self.inputs],
            "outputs": [{"name": name, "node": node} for name, node in self.outputs],
            "nodes": [n.to_dict() for n in self.nodes],
            "total": {"params": self.params, "macs": self.macs},
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text, one node per line (readable, and ``json.loads`` gives the dict back)."""
        data = self.to_dict()
        head = ", ".join(f"{json.dumps(k)}: {json.dumps(data[k])}" for k in ("name", "image", "inputs", "outputs"))
        nodes = ",\n".join(f"  {json.dumps(n)}" for n in data["nodes"])
        return f'{{{head},\n"nodes": [\n{nodes}\n],\n"total": {json.dumps(data["total"])}}}'

    def table(self) -> str:
        """An aligned text table, one row per node and a totals row."""
        header = ("node", "level", "stride", "channels", "size", "params", "MACs")
        rows = [(n.name, str(n.level), str(n.stride), str(n.channels), f"{n.size[0]}x{n.size[1]}", f"{n.params:,}", f"{n.macs:,}") for n in self.nodes]
        total = ("total", "", "", "", "", f"{self.params:,}", f"{self.macs:,}")
        widths = [max(len(r[i]) for r in (header, *rows, total)) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            # The name is left-aligned, numbers right-aligned so that digits line up.
            cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths)
        inputs = ", ".join(f"{name} {shape.channels}ch/{shape.stride}" for name, shape in self.inputs)
        title = f"{self.name}: image {self.image[0]}x{self.image[1]}; inputs {inputs}"
        return "\n".join([title, line(header), rule, *map(line, rows), rule, line(total)])

    def __str__(self) -> str:
        return self.table()


def neck_info(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    image: int | tuple[int, int] | None = None,
    params: Mapping[str, Any] | None = None,
    include_dirs: Sequence[Any] = (),
) -> NeckCost:
    """Level, stride, width, size, parameters and MACs of every node of ``spec`` (see the module
    docstring for what is counted). ``in_channels`` and ``image`` default to the spec's
    ``example``; ``params`` overrides spec parameters. Raises :class:`SpecError`."""
    doc = load(spec)
    if image is None:  # costs need sizes: the example's image, else 256x256, checked as if given
        image = example_image(doc) or DEFAULT_IMAGE
    analysis = analyze(doc, in_channels, image=image, params=params, include_dirs=include_dirs)
    ir = analysis.compilation.run("passes").optimised
    costs = op_costs(ir)
    per_node: dict[str, list[OpCost]] = {}
    for op in ir.ops:
        per_node.setdefault(op.meta["node"], []).append(costs[op.name])
    values = ir.values()
    value_nodes = {value: node_id for node_id, value in ir.node_values.items()}
    returned = {value: name for name, value in reversed(ir.outputs)}  # a map returned twice: its first name
    nodes = []
    for node_id in analysis.flat.nodes:
        value = ir.node_values[node_id]
        shape = values[value]
        spent = per_node.get(node_id, [])
        output = returned.get(value) if value_nodes.get(value) == node_id else None
        nodes.append(NodeCost(node_id, shape.level, shape.stride, shape.channels, shape.size, sum(c.params for c in spent), sum(c.macs for c in spent), output))
    return NeckCost(
        name=analysis.flat.name,
        image=analysis.flat.image,
        inputs=ir.external_inputs(),
        nodes=nodes,
        params=sum(c.params for c in costs.values()),
        macs=sum(c.macs for c in costs.values()),
        ops=costs,
        outputs=[(name, value_nodes.get(value, value)) for name, value in ir.outputs],
    )


def op_costs(ir: IRGraph) -> dict[str, OpCost]:
    """Parameters and MACs of every op of ``ir`` (by op name), for one image of the IR's input sizes.

    The IR must carry spatial sizes (it was analysed with an image size).
    """
    graph, modules, owner = _emit_on_meta(ir)
    # eval(): counted on one image, a batch norm in training mode after a global pool would see
    # a single value per channel and refuse it (PAN's GAU gate); MACs are the same in either mode.
    module = torch.fx.GraphModule(modules, graph).eval()
    params: dict[str, int] = {}
    for name, parameter in module.named_parameters():  # deduplicated, as neck.parameters() is
        path = _owning_module(name, owner)
        params[owner[path]] = params.get(owner[path], 0) + parameter.numel()
    inputs = []
    for _, shape in ir.inputs:
        assert shape.size is not None, "op_costs needs an IR analysed with an image size"
        inputs.append(torch.empty(1, shape.channels, *shape.size, device="meta"))
    counter = _MacCounter(module)
    counter.run(inputs)
    macs: dict[str, int] = {}
    for node, count in counter.macs.items():
        op_name = node.meta["ir_op"]
        macs[op_name] = macs.get(op_name, 0) + count
    return {op.name: OpCost(params.get(op.name, 0), macs.get(op.name, 0)) for op in ir.ops}


def _emit_on_meta(ir: IRGraph) -> tuple[torch.fx.Graph, dict[str, nn.Module], dict[str, str]]:
    """The primitive graph of ``ir`` (every node tagged with its IR op in ``node.meta["ir_op"]``)
    with its weights built on the meta device, and the IR op owning each module path."""
    primitive = build_primitive_graph(ir)
    return primitive.graph, materialise(primitive.declarations, device="meta"), primitive.owners()


def _owning_module(parameter: str, owner: Mapping[str, str]) -> str:
    """The registered path that ``parameter`` (``P4.post0.cv1.conv.weight``) lives under: a
    module's, or its own for a parameter an op registers alone (``P4.fuse.weight``)."""
    path = parameter
    while True:
        if path in owner:
            return path
        if "." not in path:
            break
        path = path.rsplit(".", 1)[0]
    raise AssertionError(f"parameter {parameter} belongs to no registered module")


class _MacCounter(torch.fx.Interpreter):
    """Runs a graph on meta tensors and records the MACs of each conv, linear and matmul call."""

    def __init__(self, module: torch.fx.GraphModule):
        super().__init__(module)
        self.macs: dict[torch.fx.Node, int] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        count = 0
        if n.op == "call_module":
            module = self.fetch_attr(n.target)
            if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
                kernel = 1
                for k in module.kernel_size:
                    kernel *= k
                count = result.numel() * (module.in_channels // module.groups) * kernel
            elif isinstance(module, nn.Linear):
                count = result.numel() * module.in_features
        elif n.op == "call_function" and n.target in _MATMULS:
            count = result.numel() * self.env[n.args[0]].shape[-1]
        if count:
            self.macs[n] = count
        return result
