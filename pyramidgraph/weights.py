"""Stage ``materialise``: the weights a neck's graph calls, declared first and built last.

Ops do not build modules. Emitting an op adds calls to the primitive graph and *declares*
what each call needs under its module path: a :class:`ModuleDecl` (a class, its constructor
arguments and how the reference initialises it) or a :class:`ParameterDecl` (a tensor of a
shape and fill). Keeping the two apart is what lets a stage run on the graph before any weight
exists (shape propagation on the meta device, the cost summary, passes that merge or drop
calls), and what makes a shared block cost one module: the second user of a path reads the
first user's declaration, nothing is built and thrown away.

:func:`materialise` builds the declarations in the order they were declared, on a device of
your choice (``"meta"`` for shapes and counts: no memory, no random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["ModuleDecl", "ParameterDecl", "ExternalDecl", "Declaration", "declare", "materialise", "overwrites_parameters"]


@dataclass(frozen=True, eq=False)
class ModuleDecl:
    """A module to build: ``cls(*args, **kwargs)``, then ``init(module)`` when given.

    Passes read ``cls`` and ``kwargs`` to reason about a call without a module (a 1x1 conv's
    widths, whether a norm has running statistics)."""

    cls: type
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    init: Callable[[Any], Any] | None = None
    """Re-initialises the built module as the reference does (``None``: PyTorch's defaults)."""

    def build(self) -> nn.Module:
        module = _without_default_init(self.cls, self.args, self.kwargs) if getattr(self.init, "overwrites_parameters", False) else None
        if module is None:
            module = self.cls(*self.args, **self.kwargs)
        if self.init is not None:
            self.init(module)
        return module

    def describe(self) -> str:
        """``Conv2d(64, 64, 3, padding=1)``: for messages and the tests."""
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.cls.__name__}({', '.join(parts)})"


@dataclass(frozen=True, eq=False)
class ParameterDecl:
    """A learnable tensor an op reads with ``get_attr`` (BiFPN's fusion weights): its shape and
    the value every element starts at."""

    shape: tuple[int, ...]
    fill: float = 1.0

    def build(self) -> torch.nn.Parameter:
        import torch

        return torch.nn.Parameter(torch.full(self.shape, float(self.fill)))

    def describe(self) -> str:
        return f"Parameter({list(self.shape)}, fill={self.fill})"


@dataclass(frozen=True, eq=False)
class ExternalDecl:
    """A module the caller provides (``compile(spec, modules={name: module})``), called where an
    op declares it: materialising builds nothing, it looks the module up (the neck holds it as
    ``external.<name>``, its weights shared with whatever else holds it)."""

    name: str
    channels: int = 0
    stride: int = 1
    """What the spec declares the module gives (its width, its stride relative to its input)."""
    cls: type = type(None)  # no class of ours: the module is whatever the caller gave

    def build(self, modules: Mapping[str, Any] | None = None) -> nn.Module:
        """The caller's module; with none given (``info``, on the meta device) a stand-in of no
        weights that gives a map of the declared shape, so that the rest can be measured."""
        if modules and self.name in modules:
            return modules[self.name]
        if modules is not None:
            raise KeyError(self.name)
        return _StandIn(self.channels, self.stride)

    def describe(self) -> str:
        return f"external module '{self.name}'"


def _stand_in_class() -> type:
    from torch import nn

    class StandIn(nn.Module):
        """An external module's declared output shape, zeros: what ``info`` measures around."""

        def __init__(self, channels: int, stride: int):
            super().__init__()
            self.channels, self.stride = channels, stride

        def forward(self, x):
            n, _, h, w = x.shape
            return x.new_zeros(n, self.channels, -(-h // self.stride), -(-w // self.stride))

    return StandIn


def _StandIn(channels: int, stride: int) -> Any:
    return _stand_in_class()(channels, stride)


Declaration = ModuleDecl | ParameterDecl | ExternalDecl


def overwrites_parameters(init: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Mark ``init`` as setting every parameter of the module it is given (a conv's weight and
    bias): a :class:`ModuleDecl` with such an init builds its module without PyTorch's default
    initialisation, which ``init`` would overwrite anyway. That default is a random draw per
    weight, so skipping it halves the cost of building a re-initialised conv (FPN's convs at
    R50 widths: 3.3 M weights drawn once instead of twice); the weights keep the distribution
    ``init`` gives them, and a seed still reproduces them. Building without the default costs
    about 0.3 ms a module here, so it pays where the draw it saves is larger: ops mark only
    their larger convs (:data:`pyramidgraph.ops.common.SKIP_DEFAULT_INIT_FROM`)."""
    init.overwrites_parameters = True
    return init


def _without_default_init(cls: type, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> nn.Module | None:
    """``cls(*args, **kwargs)`` with its parameters allocated but not initialised (built with
    ``device="meta"``, then each parameter given empty storage where the weights are built), or
    None where that would leave something else uninitialised or cannot be done: a module with
    buffers (its constructor sets their values), one that takes no ``device``, or one built on
    the meta device anyway. (``torch.nn.utils.skip_init`` does the same through ``to_empty``,
    which costs twice as much per module.)"""
    import torch

    device = torch.get_default_device()
    if device.type == "meta" or "device" in kwargs:
        return None
    try:
        module = cls(*args, **kwargs, device="meta")
    except TypeError:
        return None
    if next(module.buffers(), None) is not None or any(True for _ in module.children()):
        return None
    for name, parameter in module._parameters.items():
        if parameter is not None:
            module._parameters[name] = torch.nn.Parameter(torch.empty(parameter.shape, dtype=parameter.dtype, device=device), parameter.requires_grad)
    return module


def declare(cls: type, *args: Any, init: Callable[[Any], Any] | None = None, **kwargs: Any) -> ModuleDecl:
    """``declare(nn.Conv2d, 64, 64, 3, padding=1)``: what ``nn.Conv2d(64, 64, 3, padding=1)``
    would build, built only by :func:`materialise`."""
    return ModuleDecl(cls, args, kwargs, init)


def materialise(declarations: Mapping[str, Declaration], device: str | torch.device | None = None, modules: Mapping[str, Any] | None = None) -> dict[str, nn.Module | torch.nn.Parameter]:
    """Build every declaration (module path -> module or parameter), in declaration order, so a
    seeded ``torch.manual_seed`` gives the same weights on every compile; an external one is
    looked up in ``modules`` (the caller's) instead.

    ``device="meta"`` builds shapes only (no memory, no random numbers drawn)."""
    import contextlib

    import torch

    built: dict[str, Any] = {}
    with torch.device(device) if device is not None else contextlib.nullcontext():
        for path, decl in declarations.items():
            built[path] = decl.build(modules) if isinstance(decl, ExternalDecl) else decl.build()
    return built
