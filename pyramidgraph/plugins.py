"""Ops of your own: register them from Python, load them in the CLI with ``--plugin``.

A plugin is a Python module that registers op classes, exactly as the built-in ops are
registered (:mod:`pyramidgraph.ops.base`)::

    # my_ops.py
    from dataclasses import dataclass
    from pyramidgraph.plugins import PostOp, register_op

    @register_op("post", "eca")
    @dataclass(frozen=True)
    class ECA(PostOp):
        \"\"\"Efficient channel attention: a 1-D conv over the pooled channels gates them.\"\"\"
        kernel: int = 3
        ...

Once it is imported the op is everywhere an op is: specs may use it, the JSON Schema and
``list-ops`` list it, the op reference (``pyramidgraph.docs``) documents it and the renderer
draws it. A spec never imports anything itself (it is data): the program that compiles it
imports the plugin, or the command line does with ``pyramidgraph --plugin my_ops compile
spec.yaml``, which makes loading code an explicit act of whoever runs the command.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from .errors import Issue, SpecError
from .ops.base import REGISTRIES, ApplyOp, FuseOp, Op, OpError, PostOp, ResampleOp

__all__ = ["register_op", "load_plugin", "Op", "ResampleOp", "FuseOp", "PostOp", "ApplyOp", "OpError"]


def register_op(kind: str, name: str, **aliases: dict[str, Any]) -> Callable[[type[Op]], type[Op]]:
    """Class decorator: register an op class of ``kind`` (``resample``, ``fuse``, ``post`` or
    ``apply``) under ``name`` (and ``alias=preset`` names). A name already taken is refused:
    a plugin cannot replace a built-in op or another plugin's."""
    if kind not in REGISTRIES:
        raise ValueError(f"unknown op kind {kind!r}; kinds: {', '.join(REGISTRIES)}")
    return REGISTRIES[kind].register(name, **aliases)


def load_plugin(module: str) -> None:
    """Import the plugin ``module`` (a dotted module name on ``sys.path``, as ``python -m``
    takes), which registers its ops; a module that cannot be imported is a :class:`SpecError`
    located on the command line."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # the plugin's own error, reported as what happened, with no traceback
        raise SpecError([Issue("<command line>", 0, 0, "--plugin", f"cannot load plugin '{module}': {type(exc).__name__}: {exc}")]) from None
