"""The inference program's weight arithmetic moves out of its forward, into derived tensors.

After the folds, the program computes its kernels from the parameters (a folded norm, a
merged or re-parameterised kernel, BiFPN's normalised fusion weights) on every call. Every
value computed from parameters alone that a map computation reads becomes a tensor the neck
holds (``derived_<name>``, a non-persistent buffer: not in the ``state_dict``, moved by
``.to()``), and the arithmetic becomes a separate *weight program* the neck runs again when
its parameters change (:mod:`pyramidgraph.optimization`). 4-D derived kernels are made
channels-last like the module's own.
"""

from __future__ import annotations

import torch

from ...reserved import DERIVED_PREFIX
from . import PassContext
from .weight_math import channels_last_weight


def run(ctx: PassContext) -> int:
    weights = [n for n in ctx.graph.nodes if n.op != "get_attr" and ctx.is_weight(n)]
    boundary = [n for n in weights if any(not ctx.is_weight(user) or user.op == "output" for user in n.users)]
    if not boundary:
        ctx.products.setdefault("weight_program", None)  # (a second run finds the first one's work done)
        return 0
    program = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    needed = set()
    stack = list(boundary)
    while stack:
        node = stack.pop()
        if node not in needed:
            needed.add(node)
            stack.extend(node.all_input_nodes)
    for node in ctx.graph.nodes:
        if node in needed:
            env[node] = program.node_copy(node, lambda arg: env[arg])
    results = [program.call_function(channels_last_weight, (env[node],)) for node in boundary]
    program.output(tuple(results))
    names = []
    for node in boundary:
        name = f"{DERIVED_PREFIX}{node.name}"  # after what it computes: derived_p4_bn_folded_weight
        with ctx.graph.inserting_before(node):
            holder = ctx.graph.get_attr(name)
        node.replace_all_uses_with(holder)
        names.append(name)
    for node in reversed(list(ctx.graph.nodes)):
        if node in needed and not node.users:
            ctx.graph.erase_node(node)
    ctx.products["weight_program"] = (program, names)
    return len(names)
