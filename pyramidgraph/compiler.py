"""The pipeline, as one list of named stages::

    load -> schema -> expand -> graph -> lower (shapes) -> passes -> emit

:func:`analyze` runs the checking stages and stops at the first layer that finds problems,
raising one :class:`SpecError` with every issue of that layer. :func:`compile` continues
through the passes and code generation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import Issue, SpecError, capped, did_you_mean, suggestion_budget
from .expand import FlatSpec, expand
from .files import looks_like_file, shorten
from .graph import check_graph
from .ir import IRGraph
from .library import bundled_specs, find_bundled, include_roots
from .loader import Document, load_document
from .passes import DEFAULT_PASSES, PASSES, run_passes
from .schema import check_schema

if TYPE_CHECKING:  # pragma: no cover
    from .module import PyramidNeck

__all__ = ["compile", "validate", "analyze", "load", "Analysis", "SpecSource"]

SpecSource = str | os.PathLike | Mapping[str, Any]
"""A spec: a bundled name (``"bifpn"``), a path, YAML text, or a dict."""

STAGES = ("load", "schema", "expand", "graph", "lower", "passes", "emit")


@dataclass
class Analysis:
    """Everything the checking stages produced for one spec."""

    doc: Document
    flat: FlatSpec
    ir: IRGraph

    def __repr__(self) -> str:
        """One line (the dataclass's own repr would print the whole document and IR)."""
        return f"Analysis({self.flat.name!r}: {len(self.flat.inputs)} inputs, {len(self.flat.nodes)} nodes, {len(self.ir.ops)} ops, {len(self.flat.outputs)} outputs; {self.doc.file})"


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
    """Run load, schema, expand, graph and shape checks; raise :class:`SpecError` on problems.

    ``include_dirs``: folders whose files ``include:`` may read, besides the spec's own folder
    (and the bundled specs); a spec given as text or a dict has no folder of its own."""
    with suggestion_budget():  # "did you mean" for thousands of unknown names stays bounded
        return _analyze(spec, in_channels, image, params, include_dirs)


def _analyze(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None,
    image: int | tuple[int, int] | None,
    params: Mapping[str, Any] | None,
    include_dirs: Sequence[str | os.PathLike],
) -> Analysis:
    doc = load(spec)
    if in_channels is not None and (isinstance(in_channels, (str, bytes)) or not isinstance(in_channels, (Mapping, Sequence))):
        raise SpecError([Issue(doc.file, 0, 0, "in_channels", f"in_channels must be a list of widths (finest first) or a mapping of input name to width, not {in_channels!r}")])
    issues = check_schema(doc)
    if issues:
        raise SpecError(capped(issues))
    flat, issues = expand(doc, in_channels, params or {}, image, include_dirs)
    if flat is not None:  # None: expansion stopped at the issue limit
        issues += check_graph(doc, flat, reachability=not issues)
    if issues:
        raise SpecError(capped(issues))
    from .lower import lower

    ir, issues = lower(doc, flat)
    if issues:
        raise SpecError(capped(issues))
    return Analysis(doc, flat, ir)


def validate(
    spec: SpecSource | Document,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    image: int | tuple[int, int] | None = None,
    include_dirs: Sequence[str | os.PathLike] = (),
    **params: Any,
) -> Analysis:
    """Check a spec without building modules. ``in_channels`` and ``image`` default to the
    spec's ``example``; ``include_dirs`` as for :func:`analyze`. Raises :class:`SpecError`
    listing every problem found."""
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
    **param_overrides: Any,
) -> PyramidNeck:
    """Compile a spec to a :class:`PyramidNeck` (a ``torch.fx.GraphModule``).

    ``in_channels`` lists the input widths finest first (or maps input names to widths); with
    none, the spec's ``example`` is used. Spec parameters are overridden by keyword
    (``compile("bifpn", channels=88)``) or with ``params=`` for names that clash with these
    arguments. ``image`` is used only for the size checks. ``input_names``, ``output_names``
    and ``return_type`` rename the neck's interface without touching the spec (to match the
    feature names of a backbone or the outputs a detector head expects). ``feature_info``
    (a timm backbone's, see :mod:`pyramidgraph.adapters.timm`) gives the input widths and
    levels instead of ``in_channels``. ``include_dirs``: folders ``include:`` may read besides
    the spec's own. Raises :class:`SpecError`.
    """
    from .codegen import emit_graph  # torch: only compiling needs it, checking a spec does not
    from .contract import InputContract
    from .module import NeckInfo, PyramidNeck

    overrides = dict(params or {}, **param_overrides)
    if feature_info is not None:
        from .adapters.timm import check_feature_levels, feature_info_arguments

        spec = load(spec)
        in_channels, overrides = feature_info_arguments(spec, feature_info, in_channels, overrides)
    analysis = analyze(spec, in_channels, image=image, params=overrides, include_dirs=include_dirs)
    if feature_info is not None:
        check_feature_levels(analysis, feature_info)
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise SpecError([Issue(analysis.doc.file, 0, 0, "passes", f"unknown pass '{p}'{did_you_mean(p, PASSES)}") for p in unknown])
    ir = run_passes(analysis.ir, [PASSES[p] for p in passes])
    ir = _rename_interface(analysis.doc.file, ir, input_names, output_names, return_type)
    contract = InputContract.from_ir(ir, analysis.doc, analysis.flat)
    graph, modules = emit_graph(ir, contract)
    flat = analysis.flat
    info = NeckInfo(
        name=flat.name,
        doc=flat.doc,
        inputs=ir.external_inputs(),
        outputs=[(name, ir.values()[value]) for name, value in ir.outputs],
        return_type=ir.return_type,
        params={k: v for k, v in flat.params.items()},
        image=flat.image,
        rebuild={
            "spec": analysis.doc.data,
            "in_channels": [shape.channels for _, shape in ir.inputs],
            "image": image,
            "passes": tuple(passes),
            "params": overrides,
            "input_names": input_names,
            "output_names": output_names,
            "return_type": return_type,
            # the spec is rebuilt from its data, not its file: its own folder stays readable for
            # its includes wherever the neck is unpickled (another working directory, say)
            "include_dirs": [str(d) for d in include_roots(analysis.doc.file, include_dirs)],
        },
    )
    contract.rebuild = info.rebuild
    return PyramidNeck(modules, graph, info)


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
