"""The op registries. Importing this package registers every built-in op.

To add an op, write one class in the module of its kind (``resample.py``, ``fuse.py`` or
``post.py``) and decorate it with the registry's ``register``; nothing else needs to change.
"""

from . import apply, attention, csp, fpg, fuse, gates, interpolate, post, resample  # noqa: F401  (registration side effects)
from .base import APPLY, FUSE, POST, REGISTRIES, RESAMPLE, ApplyOp, FuseOp, Op, OpError, PostOp, Registry, ResampleOp

__all__ = ["APPLY", "FUSE", "POST", "REGISTRIES", "RESAMPLE", "ApplyOp", "FuseOp", "Op", "OpError", "PostOp", "Registry", "ResampleOp"]
