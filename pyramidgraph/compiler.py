"""The pipeline: one declared list of stages, run in order by one driver.

::

    load -> schema -> expand -> graph -> lower -> passes -> primitives -> materialise -> module -> optimize

A :class:`Compilation` is one spec on its way: the caller's request, then what each stage
made (document, flat spec, IR, optimised IR, primitive graph, weights, neck). :data:`STAGES`
declares the stages; :meth:`Compilation.run` runs them up to the one asked for and no stage
twice, so ``validate`` stops after ``lower``, ``info`` and ``render`` carry on from an
analysis to ``passes`` and ``primitives``, and only ``compile`` builds weights. A stage that
finds problems raises one :class:`SpecError` with every issue of its layer.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import Issue, SpecError, capped, did_you_mean, suggestion_budget
from .expand import FlatSpec, example_image, expand, image_size
from .files import looks_like_file, shorten
from .graph import check_graph
from .ir import IRGraph
from .library import bundled_specs, find_bundled, include_roots
from .loader import Document, load_document
from .passes import DEFAULT_PASSES, PASSES, run_passes
from .schema import check_schema

if TYPE_CHECKING:  # pragma: no cover
    from .codegen import PrimitiveGraph
    from .contract import InputContract
    from .module import PyramidNeck

__all__ = ["compile", "validate", "analyze", "load", "Analysis", "Compilation", "Stage", "STAGES", "SpecSource"]

SpecSource = str | os.PathLike | Mapping[str, Any]
"""A spec: a bundled name (``"bifpn"``), a path, YAML text, or a dict."""

@dataclass
class Analysis:
    """Everything the checking stages produced for one spec (``compilation`` carries on from it)."""

    doc: Document
    flat: FlatSpec
    ir: IRGraph
    compilation: Compilation | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        """One line (the dataclass's own repr would print the whole document and IR)."""
        return f"Analysis({self.flat.name!r}: {len(self.flat.inputs)} inputs, {len(self.flat.nodes)} nodes, {len(self.ir.ops)} ops, {len(self.flat.outputs)} outputs; {self.doc.file})"


@dataclass
class Compilation:
    """One spec on its way through :data:`STAGES`: the request, then each stage's product."""

    spec: SpecSource | Document
    in_channels: Sequence[int] | Mapping[str, int] | None = None
    image: int | tuple[int, int] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    include_dirs: Sequence[str | os.PathLike] = ()
    passes: Sequence[str] = DEFAULT_PASSES
    input_names: Sequence[str] | None = None
    output_names: Sequence[str] | None = None
    return_type: str | None = None
    feature_info: Any = None
    device: str | None = None
    """Where ``materialise`` builds the weights (None: PyTorch's default device; ``"meta"``: shapes only)."""
    modules: Mapping[str, Any] | None = None
    """Modules of the caller's that the spec calls (``apply: {call: {module: NAME}}``), by name."""
    optimize: str = "none"
    """``optimize``: the optimisation level (``none``, ``train``, ``inference``; :mod:`pyramidgraph.optimization`)."""
    backend: str = "eager"
    """``optimize``: ``eager``, or ``compile`` (``torch.compile``)."""

    doc: Document | None = None
    """``load``: the parsed spec, with the position of every key and value."""
    flat: FlatSpec | None = None
    """``expand``: parameters evaluated, templates and includes unrolled."""
    ir: IRGraph | None = None
    """``lower``: the IR of spec-level ops, every value's shape inferred."""
    optimised: IRGraph | None = None
    """``passes``: the IR after the passes, with the caller's interface names."""
    contract: InputContract | None = None
    """``primitives``: what the neck checks its inputs against (its graph's first call)."""
    primitive: PrimitiveGraph | None = None
    """``primitives``: the fx graph of primitive calls and the weights it declares."""
    weights: dict[str, Any] | None = None
    """``materialise``: every declared module and parameter, built."""
    neck: PyramidNeck | None = None
    """``module``: the compiled :class:`PyramidNeck`."""
    pending: list[Issue] = field(default_factory=list)
    """Issues a stage found and left to the next stage of its layer, which reports them with its
    own in one error (expansion's with the graph checks')."""
    done: list[str] = field(default_factory=list)

    def run(self, until: str = "optimize") -> Compilation:
        """Run the stages not run yet, up to and including ``until``."""
        names = [stage.name for stage in STAGES]
        if until not in names:
            raise ValueError(f"no stage {until!r}; the stages are {', '.join(names)}")
        collecting = gc.isenabled()
        gc.disable()  # the stages allocate many small objects and free none of them: Python's full collections cost 20-30 % of a large spec's compile
        try:
            with suggestion_budget():  # "did you mean" for thousands of unknown names stays bounded
                for stage in STAGES[: names.index(until) + 1]:
                    if stage.name not in self.done:
                        stage.run(self)
                        self.done.append(stage.name)
        finally:
            if collecting:
                gc.enable()
        return self

    def analysis(self) -> Analysis:
        """The checking stages' products (running them first if needed)."""
        self.run("lower")
        return Analysis(self.doc, self.flat, self.ir, self)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: its name and the function that does it to a :class:`Compilation`."""

    name: str
    run: Callable[[Compilation], None]


def _stage_load(c: Compilation) -> None:
    c.doc = load(c.spec)
    if c.feature_info is not None:
        from .adapters.timm import feature_info_arguments

        c.in_channels, c.params = feature_info_arguments(c.doc, c.feature_info, c.in_channels, dict(c.params))
    if c.in_channels is not None and (isinstance(c.in_channels, (str, bytes)) or not isinstance(c.in_channels, (Mapping, Sequence))):
        raise SpecError([Issue(c.doc.file, 0, 0, "in_channels", f"in_channels must be a list of widths (finest first) or a mapping of input name to width, not {c.in_channels!r}")])


def _stage_schema(c: Compilation) -> None:
    issues = check_schema(c.doc)
    if issues:
        raise SpecError(capped(issues))


def _stage_expand(c: Compilation) -> None:
    c.flat, c.pending = expand(c.doc, c.in_channels, c.params or {}, c.image, c.include_dirs)
    if c.flat is None:  # expansion stopped at the issue limit: nothing for the graph checks to read
        raise SpecError(capped(c.pending))


def _stage_graph(c: Compilation) -> None:
    issues = c.pending + check_graph(c.doc, c.flat, reachability=not c.pending)
    c.pending = []
    if issues:
        raise SpecError(capped(issues))


def _stage_lower(c: Compilation) -> None:
    from .lower import lower

    ir, issues = lower(c.doc, c.flat)
    if not issues and c.flat.image is None:  # no image to check: refuse only a neck no size can run
        from .lower import sizes_never_line_up

        issues = sizes_never_line_up(c.doc, c.flat, ir)
    if issues:
        raise SpecError(capped(issues))
    c.ir = ir
    if c.feature_info is not None:
        from .adapters.timm import check_feature_levels

        check_feature_levels(Analysis(c.doc, c.flat, ir, c), c.feature_info)


def _stage_passes(c: Compilation) -> None:
    unknown = [p for p in c.passes if p not in PASSES]
    if unknown:
        raise SpecError([Issue(c.doc.file, 0, 0, "passes", f"unknown pass '{p}'{did_you_mean(p, PASSES)}") for p in unknown])
    ir = run_passes(c.ir, [PASSES[p] for p in c.passes])
    c.optimised = _rename_interface(c.doc.file, ir, c.input_names, c.output_names, c.return_type)


def _stage_primitives(c: Compilation) -> None:
    from .codegen import build_primitive_graph  # torch: only the stages from here on need it
    from .contract import InputContract

    c.contract = InputContract.from_ir(c.optimised, c.doc, c.flat)
    c.primitive = build_primitive_graph(c.optimised, c.contract)


def _stage_materialise(c: Compilation) -> None:
    from torch import nn

    from .weights import ExternalDecl, materialise

    issues = []
    for path, decl in c.primitive.declarations.items():
        if isinstance(decl, ExternalDecl) and not isinstance((c.modules or {}).get(decl.name), nn.Module):
            given = (c.modules or {}).get(decl.name)
            what = "no such module was given" if given is None else f"it is a {type(given).__name__}, not an nn.Module"
            node = next(n for n in c.primitive.graph.nodes if n.op == "call_module" and n.target == path)
            file, line, col = _position(node.meta.get("source") or c.doc.file)
            issues.append(Issue(file, line, col, f"nodes.{node.meta['spec_node']}.apply", f"call: the spec calls module '{decl.name}' but {what}; compile(spec, modules={{'{decl.name}': module}})"))
    if issues:
        raise SpecError(issues)
    c.weights = materialise(c.primitive.declarations, c.device, c.modules)


def _position(source: str) -> tuple[str, int, int]:
    """``file:line:col`` (as ``node.meta["source"]`` holds it) -> its parts (0, 0 when unknown)."""
    parts = source.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[1]), int(parts[2])
    return source, 0, 0


def _stage_module(c: Compilation) -> None:
    from .module import NeckInfo, PyramidNeck

    ir, flat = c.optimised, c.flat
    info = NeckInfo(
        name=flat.name,
        doc=flat.doc,
        inputs=ir.external_inputs(),
        outputs=[(name, ir.values()[value]) for name, value in ir.outputs],
        return_type=ir.return_type,
        params={k: v for k, v in flat.params.items()},
        image=flat.image,
        example_image=image_size(example_image(c.doc)),  # expansion has reported a malformed one
        rebuild={
            "spec": c.doc.data,
            "in_channels": [shape.channels for _, shape in ir.inputs],
            "image": c.image,
            "passes": tuple(c.passes),
            "params": dict(c.params),
            "input_names": c.input_names,
            "output_names": c.output_names,
            "return_type": c.return_type,
            # the spec is rebuilt from its data, not its file: its own folder stays readable for
            # its includes wherever the neck is unpickled (another working directory, say)
            "include_dirs": [str(d) for d in include_roots(c.doc.file, c.include_dirs)],
        },
    )
    c.contract.rebuild = info.rebuild
    c.neck = PyramidNeck(c.weights, c.primitive.graph, info)


def _stage_optimize(c: Compilation) -> None:
    from .optimization import check_options, optimize

    check_options(c.optimize, c.backend, c.doc.file)
    if c.optimize != "none" or c.backend != "eager":
        optimize(c.neck, c.optimize, c.backend)


STAGES: tuple[Stage, ...] = (
    Stage("load", _stage_load),
    Stage("schema", _stage_schema),
    Stage("expand", _stage_expand),
    Stage("graph", _stage_graph),
    Stage("lower", _stage_lower),
    Stage("passes", _stage_passes),
    Stage("primitives", _stage_primitives),
    Stage("materialise", _stage_materialise),
    Stage("module", _stage_module),
    Stage("optimize", _stage_optimize),
)
"""The pipeline, in order. ``load``: spec -> :class:`Document`; ``schema``: keys and types;
``expand``: parameters, templates, includes -> :class:`FlatSpec`; ``graph``: references,
cycles, reachability; ``lower``: shapes -> :class:`IRGraph`; ``passes``: the IR passes and the
caller's interface names; ``primitives``: the fx graph of primitive calls, weights declared;
``materialise``: weights built; ``module``: the :class:`PyramidNeck`; ``optimize``: the
optimisation passes for the level asked for (:mod:`pyramidgraph.optimization`)."""


def load(spec: SpecSource | Document) -> Document:
    """Stage ``load``: a bundled name, path, YAML text or dict -> :class:`Document`."""
    if isinstance(spec, Document):
        return spec
    if isinstance(spec, (str, os.PathLike)) and not isinstance(spec, Mapping):
        bundled = find_bundled(spec)
        if bundled is not None:
            return load_document(bundled, name=str(bundled))
        text = str(spec)
        if "\n" not in text and ":" not in text and not looks_like_file(text):
            names = list(bundled_specs())
            hint = did_you_mean(text, names) or f"; bundled specs: {', '.join(names)}"
            shown = shorten(text)
            raise SpecError([Issue(shown, 0, 0, "", f"no spec '{shown}': not a file and not a bundled spec{hint}")])
    return load_document(spec)


def analyze(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    image: int | tuple[int, int] | None = None,
    params: Mapping[str, Any] | None = None,
    include_dirs: Sequence[str | os.PathLike] = (),
) -> Analysis:
    """Run the stages up to ``lower`` (load, schema, expand, graph and shape checks); raise
    :class:`SpecError` on problems. ``analysis.compilation`` carries on to the later stages.

    ``include_dirs``: folders whose files ``include:`` may read, besides the spec's own folder
    (and the bundled specs); a spec given as text or a dict has no folder of its own."""
    return Compilation(spec, in_channels, image, dict(params or {}), include_dirs).analysis()


def validate(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    image: int | tuple[int, int] | None = None,
    include_dirs: Sequence[str | os.PathLike] = (),
    **params: Any,
) -> Analysis:
    """Check a spec without building modules. With no ``in_channels`` the spec's ``example`` is
    checked (its widths, parameters and image); with widths of the caller's, sizes are checked
    at ``image`` only, and without one only that some image size lines up (see :func:`compile`).
    ``include_dirs`` as for :func:`analyze`. Raises :class:`SpecError` listing every problem found."""
    return analyze(spec, in_channels, image=image, params=params, include_dirs=include_dirs)


def compile(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    image: int | tuple[int, int] | None = None,
    passes: Sequence[str] = DEFAULT_PASSES,
    params: Mapping[str, Any] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    return_type: str | None = None,
    feature_info: Any = None,
    include_dirs: Sequence[str | os.PathLike] = (),
    modules: Mapping[str, Any] | None = None,
    optimize: str = "none",
    backend: str = "eager",
    **param_overrides: Any,
) -> PyramidNeck:
    """Compile a spec to a :class:`PyramidNeck` (a ``torch.fx.GraphModule``): every stage.

    ``in_channels`` lists the input widths finest first (or maps input names to widths); with
    none, the spec's ``example`` is used. Spec parameters are overridden by keyword
    (``compile("bifpn", channels=88)``) or with ``params=`` for names that clash with these
    arguments. ``image`` is the image size the compile-time size checks use; without one, the
    example's is used when the example's widths are (no ``in_channels``), and otherwise sizes are
    not checked at compile time beyond that some image size lines up: the compiled neck checks
    the sizes it is called with and refuses those it cannot line up with a
    :class:`~pyramidgraph.NeckInputError` that states the rule they break. ``input_names``, ``output_names``
    and ``return_type`` rename the neck's interface without touching the spec (to match the
    feature names of a backbone or the outputs a detector head expects). ``feature_info``
    (a timm backbone's, see :mod:`pyramidgraph.adapters.timm`) gives the input widths and
    levels instead of ``in_channels``. ``include_dirs``: folders ``include:`` may read besides
    the spec's own. ``modules``: modules of yours the spec calls by name (``apply: {call:
    {module: NAME}}``), such as a backbone's stages for feedback into the backbone.
    ``optimize``: ``none`` (the spec's graph as lowered), ``train`` (rewrites exact in every
    mode, gradients included) or ``inference`` (plus a faster program for eval mode without
    autograd: norms and RepVGG branches folded into convs, and more; see
    :mod:`pyramidgraph.optimization`); ``backend="compile"`` wraps the neck in ``torch.compile``.
    Raises :class:`SpecError`.
    """
    overrides = dict(params or {}, **param_overrides)
    compilation = Compilation(spec, in_channels, image, overrides, include_dirs, tuple(passes), input_names, output_names, return_type, feature_info, modules=modules, optimize=optimize, backend=backend)
    return compilation.run().neck


def _rename_interface(file: str, ir: IRGraph, input_names, output_names, return_type) -> IRGraph:
    """Apply caller-chosen input/output names and return type; SpecError when they do not fit."""
    from dataclasses import replace

    issues = []
    if input_names is not None and len(input_names) != len(ir.inputs):
        issues.append(Issue(file, 0, 0, "input_names", f"{len(input_names)} names for {len(ir.inputs)} inputs ({', '.join(n for n, _ in ir.inputs)})"))
    if output_names is not None and len(output_names) != len(ir.outputs):
        issues.append(Issue(file, 0, 0, "output_names", f"{len(output_names)} names for {len(ir.outputs)} outputs ({', '.join(n for n, _ in ir.outputs)})"))
    for what, names in (("input_names", input_names), ("output_names", output_names)):
        if names is not None and len(set(names)) != len(names):
            issues.append(Issue(file, 0, 0, what, f"names repeat: {list(names)}"))
    if return_type is not None and return_type not in ("tuple", "list", "dict"):
        issues.append(Issue(file, 0, 0, "return_type", f"return_type must be tuple, list or dict, not {return_type!r}"))
    if issues:
        raise SpecError(issues)
    changes: dict[str, Any] = {}
    if input_names is not None:
        changes["input_names"] = list(input_names)
    if output_names is not None:
        changes["outputs"] = [(name, value) for name, (_, value) in zip(output_names, ir.outputs)]
    if return_type is not None:
        changes["return_type"] = return_type
    return replace(ir, **changes) if changes else ir
