"""Stage ``optimize``: a compiled neck made faster, on its own weights, in place.

``optimize(neck, level)`` (and ``compile(spec, optimize=level)``, which calls it) runs the
passes of :mod:`pyramidgraph.passes.fx` for the level:

* ``none``: the neck's graph as the spec lowers it.
* ``train``: the neck's own graph rewritten by the passes that are exact in every mode,
  gradients included; the module keeps its modules and its ``state_dict``.
* ``inference``: ``train``, plus an *inference program*: a second forward, built from the
  spec's graph by every pass (norms and RepVGG branches folded into convs, fusion weights
  folded, activations in place, weight arithmetic frozen into derived tensors). The neck runs
  it in eval mode when autograd is off (``torch.no_grad()``, ``torch.inference_mode()``), its
  ordinary graph otherwise, so the same module trains, and evaluates with gradients, exactly.

The parameters stay the checkpoint's, under the spec's names: ``load_state_dict`` works as
on an unoptimised neck, and the program's derived tensors are recomputed from the parameters
whenever one of them has changed since (a load, an optimiser step, ``.to(...)``): the check
reads each source tensor's version counter before a call, in eager mode. Under
``torch.compile`` the check is skipped (it would break the graph); call
:meth:`InferenceProgram.refresh` (``neck.refresh()``) after changing weights of a compiled neck.

``backend="compile"`` then wraps the neck's call in ``torch.compile`` (``nn.Module.compile``:
the module, its type and its ``state_dict`` keys stay).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.fx

from .errors import Issue, SpecError, did_you_mean
from .passes.fx import LEVELS, PassContext, resolve, run_fx_passes
from .reserved import DERIVED_PREFIX

if TYPE_CHECKING:  # pragma: no cover
    from .module import PyramidNeck

__all__ = ["optimize", "LEVELS", "BACKENDS", "InferenceProgram"]

BACKENDS = ("eager", "compile")


def check_options(level: str, backend: str, file: str = "<optimize>") -> None:
    """SpecError (with a did-you-mean) for a level or backend that does not exist."""
    issues = []
    if level not in LEVELS:
        issues.append(Issue(file, 0, 0, "optimize", f"unknown optimize level '{level}'{did_you_mean(str(level), LEVELS)}; the levels are {', '.join(LEVELS)}"))
    if backend not in BACKENDS:
        issues.append(Issue(file, 0, 0, "backend", f"unknown backend '{backend}'{did_you_mean(str(backend), BACKENDS)}; the backends are {', '.join(BACKENDS)}"))
    if issues:
        raise SpecError(issues)


def _generated(graph: torch.fx.Graph, name: str) -> tuple[Any, str]:
    """The Python function ``graph`` generates (taking ``self``, the neck, first), and its source."""
    code = graph.python_code(root_module="self")
    namespace = dict(code.globals)
    exec(compile(code.src, f"<pyramidgraph {name}>", "exec"), namespace)  # noqa: S102 - code torch.fx generated from our own graph
    return namespace["forward"], code.src


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and (compiler.is_compiling() or getattr(compiler, "is_exporting", lambda: False)()))


@dataclass
class InferenceProgram:
    """The inference forward of a neck, and the weight program that feeds it derived tensors."""

    graph: torch.fx.Graph
    weight_graph: torch.fx.Graph | None
    derived: list[str]
    counts: dict[str, int]
    """Rewrites each pass made."""
    forward: Any = field(default=None, repr=False)
    code: str = field(default="", repr=False)
    weight_code: str = field(default="", repr=False)
    _derive: Any = field(default=None, repr=False)
    _sources: list[torch.Tensor] = field(default_factory=list, repr=False)
    _stamp: int = -1

    def __post_init__(self) -> None:
        self.forward, self.code = _generated(self.graph, "inference program")
        if self.weight_graph is not None:
            self._derive, self.weight_code = _generated(self.weight_graph, "weight program")

    def __deepcopy__(self, memo: dict[int, Any]) -> InferenceProgram:
        """The graphs copied; the generated functions shared, not generated again (they read
        everything from the neck they are called with); sources found by :meth:`attach`."""
        clone = object.__new__(InferenceProgram)
        clone.__dict__.update(self.__dict__, graph=copy.deepcopy(self.graph, memo), weight_graph=copy.deepcopy(self.weight_graph, memo))
        clone.__dict__.update(derived=list(self.derived), counts=dict(self.counts), _sources=[], _stamp=-1)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("an inference program is not pickled: the neck pickles as its spec and rebuilds it")

    def sources(self, neck: torch.nn.Module) -> list[torch.Tensor]:
        """The parameters and buffers the weight program reads, found again in ``neck``."""
        if self.weight_graph is None:
            return []
        return [resolve(neck, node.target) for node in self.weight_graph.find_nodes(op="get_attr")]

    def attach(self, neck: torch.nn.Module) -> None:
        """Find the sources in ``neck`` and compute its derived tensors."""
        self._sources = self.sources(neck)
        self._stamp = -1
        self.refresh(neck)

    def _version(self) -> int:
        return sum(t._version for t in self._sources)

    def refresh(self, neck: torch.nn.Module) -> None:
        """Recompute the derived tensors from the parameters, now."""
        if self._derive is None:
            return
        with torch.inference_mode(False), torch.no_grad():
            values = self._derive(neck)
        for name, value in zip(self.derived, values):
            neck.register_buffer(name, value.detach(), persistent=False)
        self._stamp = self._version()

    def __call__(self, neck: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if self._sources and not _is_compiling() and self._version() != self._stamp:
            self.refresh(neck)
        return self.forward(neck, *args, **kwargs)


def build_inference_program(neck: PyramidNeck, graph: torch.fx.Graph, check: bool = False) -> InferenceProgram:
    """Run every inference pass over a copy of ``graph`` (the spec's), reading ``neck``'s modules."""
    ctx = PassContext(copy.deepcopy(graph), neck, "inference")
    counts = run_fx_passes(ctx, check=check)
    weight_program = ctx.products.get("weight_program")
    weight_graph, derived = weight_program if weight_program else (None, [])
    return InferenceProgram(ctx.graph, weight_graph, derived, counts)


def optimize(neck: PyramidNeck, level: str = "inference", backend: str = "eager", *, check: bool = False) -> PyramidNeck:
    """Optimise a compiled neck in place for ``level`` (``none``, ``train`` or ``inference``)
    and return it; ``backend="compile"`` wraps its call in ``torch.compile``.

    Run it again after replacing a module of the neck (the passes read module attributes);
    loading weights needs nothing: the neck keeps loading by the spec's names and refreshes
    what it derives from them. ``check`` lints the graph after every pass (the tests do).
    """
    check_options(level, backend)
    original = neck.__dict__.get("_spec_graph")
    if original is None:  # the spec's graph, kept as it is: every optimisation starts from it
        original = neck.__dict__["_spec_graph"] = neck.graph
    neck.__dict__["_inference"] = None
    for name in [n for n in neck._buffers if n.startswith(DERIVED_PREFIX)]:
        del neck._buffers[name]
    counts: dict[str, int] = {}
    graph = copy.deepcopy(original)
    if level != "none":
        ctx = PassContext(graph, neck, "train")
        counts = run_fx_passes(ctx, check=check)
        neck.to(memory_format=torch.channels_last)
    else:
        neck.to(memory_format=torch.contiguous_format)
    if level == "inference":
        program = build_inference_program(neck, original, check)
        neck.__dict__["_inference"] = program
        program.attach(neck)
        counts = {**counts, **{f"inference.{k}": v for k, v in program.counts.items()}}
    neck.graph = graph  # recompiles (for inference: behind the dispatching forward)
    neck.info.optimize = level
    neck.info.pass_counts = counts
    neck.info.rebuild.update(optimize=level, backend=backend)  # in place: the input contract holds the same dict
    if backend == "compile":
        neck.compile()
    return neck
