"""The op registries. Importing this package registers every built-in op.

To add an op, write one class in the module of its family (``fuse.py``, ``resample.py``,
``csp.py``...) and decorate it with its registry's ``register``, once per kind of place it fits
(``conv`` is registered as a resample and as a post op: one class); nothing else needs to
change. Ops of one's own are registered the same way from outside (:mod:`pyramidgraph.plugins`).
"""

from . import (  # noqa: F401  (registration side effects)
    afpn,
    apply,
    area_attention,
    attention,
    backbone,
    carafe,
    conv,
    csp,
    deform,
    dyhead,
    elementwise,
    fpg,
    fuse,
    gates,
    giraffe,
    interpolate,
    normalise,
    pooling,
    post,
    regularise,
    resample,
    rtdetr,
    transformer,
    yolo_csp,
    yolo_elan,
)
from .base import APPLY, FUSE, POST, REGISTRIES, RESAMPLE, ApplyOp, FuseOp, Op, OpError, PostOp, Registry, ResampleOp

__all__ = ["APPLY", "FUSE", "POST", "REGISTRIES", "RESAMPLE", "ApplyOp", "FuseOp", "Op", "OpError", "PostOp", "Registry", "ResampleOp"]
