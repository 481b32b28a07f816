"""mmdetection: ``neck=dict(type='PyramidGraphNeck', spec='bifpn', in_channels=[...], ...)``.

mmdetection builds necks from config dicts through its ``MODELS`` registry and calls them
with the backbone's tuple of feature maps, expecting a tuple back. :class:`PyramidGraphNeck`
compiles a spec with the config's arguments (every key besides ``spec`` and ``in_channels``
is a spec parameter or a ``compile`` option) and returns a tuple.

Registration happens only where mmdetection is importable, and never imports it on its own
initiative: importing ``pyramidgraph`` or ``pyramidgraph.adapters`` does not import mmdet.

* ``import pyramidgraph.adapters.mmdet`` registers the neck when ``mmdet`` is already
  imported -- which is the case for mmdetection's own ``custom_imports``::

      custom_imports = dict(imports=["pyramidgraph.adapters.mmdet"], allow_failed_imports=False)
      model = dict(neck=dict(type="PyramidGraphNeck", spec="bifpn", in_channels=[40, 112, 320], channels=64))

* :func:`register_mmdet` registers it explicitly (importing ``mmdet.registry``) and returns
  False, registering nothing, when mmdetection is not installed.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any, Sequence

import torch
from torch import nn

from ..module import PyramidNeck

__all__ = ["PyramidGraphNeck", "register_mmdet", "REGISTERED_NAME"]

REGISTERED_NAME = "PyramidGraphNeck"


class PyramidGraphNeck(nn.Module):
    """A compiled spec as an mmdetection neck: ``forward(tuple of maps) -> tuple of maps``.

    ``spec`` is a bundled name (``"bifpn"`` or ``"bifpn.yaml"``), a path or a dict;
    ``in_channels`` the backbone's widths, finest first (mmdet's ``in_channels``); ``options``
    go to :func:`pyramidgraph.compile` (spec parameters such as ``channels=88``, or
    ``input_names``...). ``out_channels`` and ``strides`` describe the outputs for the heads.
    """

    def __init__(self, spec: Any, in_channels: Sequence[int], **options: Any):
        super().__init__()
        from ..compiler import compile as compile_spec

        if options.get("return_type", "tuple") != "tuple":
            raise ValueError(f"PyramidGraphNeck returns a tuple as mmdetection necks do; return_type={options['return_type']!r} is not supported")
        options.pop("return_type", None)
        self.neck: PyramidNeck = compile_spec(spec, list(in_channels), return_type="tuple", **options)
        self.in_channels = list(in_channels)
        self.out_channels = self.neck.out_channels
        self.strides = self.neck.strides

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self.neck(tuple(inputs))


def register_mmdet(registry: Any = None) -> bool:
    """Register :class:`PyramidGraphNeck` as ``PyramidGraphNeck`` in ``registry`` (default:
    ``mmdet.registry.MODELS``). Returns False when mmdetection is not installed; registering
    again is harmless. Errors raised inside an installed but broken mmdet propagate."""
    if registry is None:
        try:
            registry = importlib.import_module("mmdet.registry").MODELS
        except ModuleNotFoundError as error:
            if error.name == "mmdet":
                return False
            if error.name == "mmdet.registry":
                raise ImportError("PyramidGraphNeck registers with mmdetection 3's mmdet.registry.MODELS; this mmdet has no mmdet.registry (pass registry= explicitly)") from error
            raise
    registry.register_module(name=REGISTERED_NAME, module=PyramidGraphNeck, force=True)
    return True


def _register_if_mmdet_loaded() -> None:
    """Import-time registration, only when mmdet is already imported; a failure warns
    instead of breaking ``import pyramidgraph.adapters``."""
    if "mmdet" not in sys.modules:
        return
    try:
        register_mmdet()
    except ImportError as error:
        warnings.warn(f"pyramidgraph: PyramidGraphNeck not registered with mmdetection: {error}", stacklevel=2)


_register_if_mmdet_loaded()
