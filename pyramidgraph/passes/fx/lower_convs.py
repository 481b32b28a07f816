"""Every plain ``nn.Conv2d`` module call becomes ``F.conv2d`` on the module's parameters.

The folding passes rewrite a conv's kernel and bias, which a module call hides: as a function
call the kernel is a node that a fold can replace by arithmetic on it. Only the inference
program is lowered (its forward calls no conv module, so a module replaced afterwards is not
seen until :func:`pyramidgraph.optimize` runs again); a training graph keeps its modules,
hooks and all, except where ``merge_parallel_convs`` lowers the convs it merges.
"""

from __future__ import annotations

from . import PassContext, lower_conv_module, nodes


def run(ctx: PassContext) -> int:
    return sum(lower_conv_module(ctx, node) is not None for node in nodes(ctx, "call_module"))
