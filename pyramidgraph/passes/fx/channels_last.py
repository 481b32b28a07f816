"""The neck computes in ``channels_last`` memory format, end to end.

oneDNN's CPU convolutions and cuDNN's tensor-core ones are fastest on NHWC maps; in NCHW each
conv reorders its input and output. The neck's inputs are made channels-last once, where it
unpacks them (free when the backbone already gives NHWC), and every op after keeps the
format, so the outputs are channels-last too (values are unchanged; ``.contiguous()`` gives
NCHW back). The kernels are converted with the module (:func:`pyramidgraph.optimize` calls
``neck.to(memory_format=torch.channels_last)``; derived kernels are made channels-last by
``freeze``).
"""

from __future__ import annotations

import torch

from . import PassContext


def _converted(node: torch.fx.Node) -> bool:
    return any(user.op == "call_method" and user.target == "contiguous" and user.kwargs.get("memory_format") is torch.channels_last for user in node.users)


def run(ctx: PassContext) -> int:
    inputs = [n for n in ctx.graph.nodes if n.meta.get("role") == "input" and "shape" in n.meta and n.op == "call_function"]
    changed = 0
    for node in inputs:
        if _converted(node):
            continue
        with ctx.graph.inserting_after(node):
            converted = ctx.graph.call_method("contiguous", (node,), {"memory_format": torch.channels_last})
        converted.meta.update({k: v for k, v in node.meta.items() if k != "shape"})
        node.replace_all_uses_with(converted, delete_user_cb=lambda user, converted=converted: user is not converted)
        changed += 1
    return changed
