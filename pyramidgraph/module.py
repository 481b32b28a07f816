"""The compiled neck: a ``torch.fx.GraphModule`` that knows its pyramid.

:class:`PyramidNeck` *is* the generated GraphModule (its ``state_dict`` keys are the spec's
node names, with no wrapper prefix) plus the shape metadata detection code expects:
``out_channels`` and ``output_names`` as torchvision's FPN has them, one :class:`ShapeSpec`
per output as detectron2 and timm describe features, and ``example_inputs()`` to try it.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn

from .reserved import DERIVED_PREFIX
from .shape import FeatureShape

__all__ = ["PyramidNeck", "ShapeSpec", "NeckInfo"]


@dataclass(frozen=True)
class ShapeSpec:
    """Width and stride of one feature map (detectron2's ``ShapeSpec``).

    ``height`` and ``width`` exist because detectron2's has them; a neck is not compiled for
    one image size, so they stay None (which sizes it takes depends on the spec: some need image
    sides divisible by 32, and calling it with others raises ``NeckInputError``).
    """

    channels: int
    stride: int
    height: int | None = None
    width: int | None = None


@dataclass
class NeckInfo:
    """What a compiled neck was made from and what it consumes and produces."""

    name: str
    doc: str
    inputs: list[tuple[str, FeatureShape]]
    outputs: list[tuple[str, FeatureShape]]
    return_type: str
    params: dict[str, Any]
    image: tuple[int, int] | None
    """The image the compile-time size checks used (the caller's, or the example's when the
    example was compiled); None when the neck was compiled for widths of the caller's without one."""
    rebuild: dict[str, Any] = field(default_factory=dict, repr=False)
    """Arguments that recompile the neck (spec data and compile options), for pickling."""
    optimize: str = "none"
    """The optimisation level (:func:`pyramidgraph.optimize`)."""
    pass_counts: dict[str, int] = field(default_factory=dict, repr=False)
    """Rewrites each optimisation pass made (``inference.<pass>`` for the inference program's)."""
    example_image: tuple[int, int] | None = None
    """The spec example's image: ``example_inputs()``'s size when no image was checked."""


class PyramidNeck(torch.fx.GraphModule):
    """A neck compiled from a spec. Call it with a list/tuple of feature maps (finest first)
    or a dict keyed by input name; it returns a tuple, list or OrderedDict as the spec says."""

    def __init__(self, modules: dict[str, nn.Module], graph: torch.fx.Graph, info: NeckInfo):
        super().__init__(modules, graph, class_name="PyramidNeck")
        self.info = info

    # -- the inference program (pyramidgraph.optimization) ---------------------------------------

    def recompile(self):
        """Generate the forward from ``self.graph`` (torch.fx's), then, for a neck optimised for
        inference, put in front of it the choice between it and the inference program."""
        code = super().recompile()
        cls = type(self)  # torch.fx makes one class per GraphModule, so this touches this neck only
        if self.__dict__.get("_inference") is not None:  # torch.fx has just set cls.forward to the graph's
            cls._graph_forward = cls.forward
            cls.forward = _dispatching_forward
        return code

    @property
    def inference_code(self) -> str | None:
        """The inference program's generated code (None unless optimised for inference)."""
        program = self.__dict__.get("_inference")
        return program.code if program is not None else None

    def refresh(self) -> None:
        """Recompute the inference program's derived weights from the parameters now (eager
        calls do it themselves when a parameter changed; a ``torch.compile``'d neck does not)."""
        program = self.__dict__.get("_inference")
        if program is not None:
            program.refresh(self)

    def _apply(self, fn, *args, **kwargs):
        """``.to()``, ``.half()``, ``.cuda()``...: the inference program then reads the
        converted tensors (``_apply`` replaces buffers by new tensors)."""
        result = super()._apply(fn, *args, **kwargs)
        program = self.__dict__.get("_inference")
        if program is not None:
            program.attach(self)
        return result

    # -- shape metadata ---------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return [name for name, _ in self.info.inputs]

    @property
    def in_channels(self) -> list[int]:
        return [shape.channels for _, shape in self.info.inputs]

    @property
    def output_names(self) -> list[str]:
        return [name for name, _ in self.info.outputs]

    @property
    def output_shapes(self) -> OrderedDict[str, ShapeSpec]:
        """Width and stride of every output, by output name."""
        return OrderedDict((name, ShapeSpec(s.channels, s.stride)) for name, s in self.info.outputs)

    @property
    def out_channels(self) -> int | list[int]:
        """The output width (an int when all outputs agree, as torchvision expects)."""
        widths = [s.channels for _, s in self.info.outputs]
        return widths[0] if len(set(widths)) == 1 else widths

    @property
    def strides(self) -> list[int]:
        return [s.stride for _, s in self.info.outputs]

    @property
    def default_image(self) -> tuple[int, int]:
        """The image size ``example_inputs()`` and the CLI use when given none: the one the
        sizes were checked at, else the spec example's, else 256x256."""
        return self.info.image or self.info.example_image or (256, 256)

    def example_inputs(self, batch: int = 1, image: int | tuple[int, int] | None = None) -> list[torch.Tensor]:
        """Random inputs of the right shapes: each input is ``ceil(image / stride)`` on a side.

        ``image`` defaults to :attr:`default_image`.
        """
        if image is None:
            image = self.default_image
        if isinstance(image, int):
            image = (image, image)
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        return [
            torch.randn(batch, shape.channels, -(-image[0] // shape.stride), -(-image[1] // shape.stride), device=device)
            for _, shape in self.info.inputs
        ]

    # -- copying and pickling keep the metadata ---------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> PyramidNeck:
        result = super().__deepcopy__(memo)
        result.info = copy.deepcopy(self.info, memo)
        for name in ("_spec_graph", "_inference"):
            if self.__dict__.get(name) is not None:
                result.__dict__[name] = copy.deepcopy(self.__dict__[name], memo)
        if result.__dict__.get("_inference") is not None:
            result.recompile()
            result.__dict__["_inference"].attach(result)
        return result

    def __reduce__(self):
        """Pickle as the spec's compile arguments plus the module's own contents.

        The generated code calls objects fx cannot pickle by name (the input contract), so the
        graph is rebuilt from the spec; the submodules, and any parameters or buffers set on
        the neck itself, travel as they are, so dtype (``.half()``), ``requires_grad``,
        replaced submodules (``SyncBatchNorm.convert_sync_batchnorm``) and extra buffers survive.
        """
        own = {"parameters": dict(self._parameters), "buffers": {k: v for k, v in self._buffers.items() if not k.startswith(DERIVED_PREFIX)}, "persistent": set(self._buffers) - self._non_persistent_buffers_set}
        return (_rebuild, (self.info.rebuild, dict(self._modules), own, self.training))

    def __repr__(self) -> str:
        outs = ", ".join(f"{n}: {s.channels}ch/{s.stride}" for n, s in self.info.outputs)
        return f"PyramidNeck({self.info.name}: {len(self.info.inputs)} inputs -> {outs})"


def _dispatching_forward(self: PyramidNeck, features: Any) -> Any:
    """The forward of a neck optimised for inference: the inference program in eval mode
    without autograd, the neck's graph otherwise (training, or gradients wanted). Its one
    argument is the generated forward's (``torch.export`` reads the signature)."""
    if not self.training and not torch.is_grad_enabled():
        return self.__dict__["_inference"](self, features)
    return type(self)._graph_forward(self, features)


def _rebuild(arguments: dict[str, Any], children: dict[str, nn.Module], own: dict[str, Any], training: bool) -> PyramidNeck:
    from .compiler import compile as compile_spec

    external = children.get("external")  # the caller's modules the spec calls travel as children
    neck = compile_spec(**arguments, modules=dict(external.named_children()) if external is not None else None)
    for name, child in children.items():
        setattr(neck, name, child)
    for name, parameter in own["parameters"].items():
        neck.register_parameter(name, parameter)
    for name, buffer in own["buffers"].items():
        neck.register_buffer(name, buffer, persistent=name in own["persistent"])
    if neck.__dict__.get("_inference") is not None:  # its weights are the pickled ones: derive from them
        neck.__dict__["_inference"].attach(neck)
    return neck.train(training)
