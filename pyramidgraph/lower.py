"""Stage 3: lower the expanded spec to IR, inferring shapes on the way.

Shape inference and lowering are one walk, so the shapes the validator reports are exactly the
shapes the compiled module has. For every node, in dataflow order:

1. each edge gets a chain of resample ops, from its ``via`` list or from the node's policy
   (project when widths differ, ``up``/``down`` when levels differ), and the chain must end at
   the node's level and width;
2. size-based upsampling reads the size of the level's *size reference*: the first input, or
   else the first node computed at that level;
3. the resampled inputs must agree in spatial size (when an image size is known);
4. fusion (for two or more inputs) and the post ops follow, and the result must have the
   node's declared width.

A node with ``apply:`` is one op over its inputs as they are (no resampling, no fusion): the op
gives the output's level and shape, or several outputs, each a value ``node.<i>``. A node or
include with ``share:`` keeps its weights at the paths of the one it names, and must hold
exactly those weights (same ops, same widths, same inputs). Every op is asked the same
questions at its place (:class:`~pyramidgraph.ops.base.Site`): :meth:`Op.at` and :meth:`Op.shape`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable, Sequence

from .errors import Issue, did_you_mean
from .expand import EdgeDecl, FlatSpec, NodeDecl
from .graph import base_of, dataflow, topological_order
from .ir import IRGraph, IROp
from .loader import Document
from .ops import ResampleOp
from .ops.base import Site
from .ops.common import ONE_VALUE_GROUPS, SINGLE_SAMPLE
from .shape import FeatureShape, ShapeError, halving_chain

__all__ = ["lower", "estimated_parameters", "weight_estimates", "MAX_WEIGHT_BYTES"]

MAX_WEIGHT_BYTES = 8_000_000_000
"""Most memory (8 GB) the neck's float32 weights may take by :meth:`Op.weight_estimate`: a
spec of widths that validate one by one but multiply to more (a 3x3 conv of 65,536 channels
holds 38.7 G parameters, 155 GB) is refused at validation, not by the allocator at compile or
by the machine running out of memory. The largest necks in use hold about 0.1 G parameters."""


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", ref)


def _shown(op, other) -> str:
    """``op``'s label, with the parameters in which it differs from ``other`` when the labels agree."""
    if op.label() != other.label() or type(op) is not type(other):
        return op.label()
    theirs = other.params()
    differ = {k: v for k, v in op.params().items() if theirs.get(k) != v}
    return f"{op.label()} ({', '.join(f'{k}={v!r}' for k, v in differ.items())})" if differ else op.label()


def _within(node_id: str, prefix: str) -> bool:
    """Whether ``node_id`` is the node ``prefix`` or one inside the include or block ``prefix``."""
    return node_id == prefix or node_id.startswith(prefix + ".")


def _widths_of(shape: FeatureShape | tuple[FeatureShape, ...]) -> int | tuple[int, ...]:
    """The width of a value, or the widths of an op's several outputs."""
    return shape.channels if isinstance(shape, FeatureShape) else tuple(s.channels for s in shape)


def _widths(channels: tuple[int, ...]) -> str:
    return " + ".join(map(str, channels))


def _edge_slugs(node: NodeDecl) -> list[str]:
    """One name per edge of ``node``, unique within it: ``P5``, and ``P5_1`` when ``from``
    lists P5 twice (or lists both ``P5.pre`` and a node called ``P5_pre``)."""
    slugs: list[str] = []
    for index, edge in enumerate(node.edges):
        slug = _slug(edge.ref)
        while slug in slugs:
            slug = f"{slug}_{index}"
        slugs.append(slug)
    return slugs


class _ShareError(ShapeError):
    """A ``share:`` that cannot hold: reported where the ``share:`` is written."""

    def __init__(self, message: str, where):
        super().__init__(message)
        self.where = where


class _Lowering:
    def __init__(self, doc: Document, flat: FlatSpec):
        self.doc = doc
        self.flat = flat
        self.issues: list[Issue] = []
        self.ops: list[IROp] = []
        self.values: dict[str, FeatureShape] = {}
        self.node_values: dict[str, str] = {}
        self.size_refs: dict[int, str] = {}
        self.shared: dict[str, tuple[tuple, str]] = {}
        self.sources: dict[str, str] = {}
        self.output_counts: dict[str, int] = {}  # node -> how many outputs its apply op gives, when more than one
        self.param_paths: dict[str, set[str]] = {}  # node -> the module paths of its ops with weights
        self.checked_shares: dict[tuple[str | None, str], _ShareError | None] = {}  # (sharer, owner) -> what checking it found
        self.module_owners: dict[str, str] = {}  # module path -> the node (or shared block) owning it

    def input_shapes(self, sizes: Sequence[tuple[int, int] | None] | None = None) -> list[tuple[str, FeatureShape]]:
        """The inputs' shapes: sized ``ceil(image / stride)`` when an image size is known, or
        ``sizes`` (one ``(height, width)`` or None per input, in order) when given."""
        inputs = []
        for index, decl in enumerate(self.flat.inputs):
            size = None
            if sizes is not None:
                size = tuple(sizes[index]) if sizes[index] is not None else None
            elif self.flat.image:
                stride = 2**decl.level
                size = (-(-self.flat.image[0] // stride), -(-self.flat.image[1] // stride))
            shape = FeatureShape(decl.channels or 0, decl.level, size)
            inputs.append((decl.name, shape))
            self.values[decl.name] = shape
            self.node_values[decl.name] = decl.name
            self.size_refs.setdefault(decl.level, decl.name)
        return inputs

    def source_of(self, node: NodeDecl) -> str:
        """``file:line:col`` of the spec node (in the file that declares it), for ``node.meta``."""
        if node.id not in self.sources:
            issue = node.where.issue(self.doc, "", key=True)
            self.sources[node.id] = f"{issue.file}:{issue.line}:{issue.col}" if issue.line else issue.file
        return self.sources[node.id]

    def add(self, name: str, module: str, op, args: list[str], shape: FeatureShape, node: NodeDecl, role: str) -> str:
        shapes = [self.values[a] for a in args]
        signature = (op, tuple(_widths_of(s) for s in shapes), _widths_of(shape))
        if op.has_parameters:
            owner = node.block or node.id
            first_owner = self.module_owners.setdefault(module, owner)
            if first_owner != owner and not (node.block and _within(first_owner, node.block)):
                raise ShapeError(f"'{node.id}' would keep its weights at '{module}', where '{first_owner}' keeps its own; rename the node or block so their names differ")
        if op.has_parameters:
            first = self.shared.setdefault(module, (signature, node.id))
            if node.share_of and first[1] != node.id and first[0] != signature:
                raise _ShareError(
                    f"share: '{node.id}' uses the weights of '{node.share_of}', but '{module}' is {_shown(first[0][0], signature[0])} with {_widths(first[0][1])} -> {first[0][2]} channels "
                    f"in '{first[1]}' and {_shown(signature[0], first[0][0])} with {_widths(signature[1])} -> {signature[2]} in '{node.id}'; shared weights need the same ops and widths",
                    node.share_where or node.where,
                )
            if first[0][0] != signature[0]:
                raise ShapeError(
                    f"shared block: '{module}' is {first[0][0].params()} in '{first[1]}' but {signature[0].params()} in '{node.id}'; "
                    f"shared weights need the same op in every repetition, or set share: false"
                )
            if first[0] != signature:
                raise ShapeError(
                    f"shared block: '{module}' is used by '{first[1]}' with {_widths(first[0][1])} -> {first[0][2]} channels "
                    f"and by '{node.id}' with {_widths(signature[1])} -> {signature[2]}; set share: false or make the widths equal"
                )
        if op.has_parameters:
            self.param_paths.setdefault(node.id, set()).add(module)
        self.ops.append(IROp(name, module, op, args, shapes, shape, {"node": node.id, "role": role, "where": node.where, "source": self.source_of(node)}))
        self.values[name] = shape  # a tuple of shapes for an op with several outputs
        return name

    def chain(self, edge: EdgeDecl, source: FeatureShape, target: FeatureShape) -> list[tuple[str, ResampleOp]]:
        """The resample ops of an edge, each with the module suffix it lives under."""
        if edge.via is not None:
            return [(f"via{i}", op) for i, op in enumerate(edge.via)]
        spatial: list[tuple[str, ResampleOp]] = []
        if source.level > target.level:
            spatial = [("", edge.up)]
        elif source.level < target.level:
            spatial = [("", edge.down)]
        if spatial and spatial[0][1].changes_channels:
            return spatial
        project = [("", edge.project)] if source.channels != target.channels and edge.project is not None else []
        return project + spatial if edge.order == "project_first" else spatial + project

    def lower_edge(self, node: NodeDecl, edge: EdgeDecl, level: int, width: int | None, final: str | None = None, slug: str | None = None) -> str:
        """Add the edge's resample ops; ``final`` names the last value (the node itself when
        the edge is all the node does); ``slug`` names the edge (unique within the node)."""
        slug = slug or _slug(edge.ref)
        value = self.read(node, edge)
        shape = self.values[value]
        target = FeatureShape(width if width is not None else shape.channels, level, None)
        if level in self.size_refs:
            target = target.with_(size=self.values[self.size_refs[level]].size)
        chain = self.chain(edge, shape, target)
        if edge.project is None and edge.via is None and not any(op.changes_channels for _, op in chain):
            target = target.with_(channels=shape.channels)  # `project: none`: the width passes through
        if not chain:
            return value
        module = f"{node.module}.from_{slug}"
        for index, (suffix, op) in enumerate(chain):
            site = Site("edge", target)
            op = op.at([shape], site)
            args = [value]
            if op.needs_size_ref:
                if level not in self.size_refs:
                    raise ShapeError(
                        f"nothing at level {level} is computed before '{node.id}' to take its size from; "
                        f"add an input or node at level {level}, or use up: {{op: upsample, by: scale}}"
                    )
                args.append(self.size_refs[level])
            try:
                shape = op.shape([shape], site)
            except ShapeError as exc:
                raise ShapeError(f"input '{edge.ref}': {exc}") from None
            last = index == len(chain) - 1
            name = (final or f"{node.id}.from_{slug}") if last else f"{node.id}.from_{slug}.{index}"
            value = self.add(name, f"{module}.{suffix}" if suffix else module, op, args, shape, node, "edge")
        if (shape.channels, shape.level) != (target.channels, target.level):
            ops = " -> ".join(op.label() for _, op in chain)
            raise ShapeError(
                f"input '{edge.ref}' ({self.values[self.read(node, edge)].describe()}) through [{ops}] "
                f"gives {shape.channels} channels at level {shape.level}, but '{node.id}' needs {target.channels} at level {target.level}"
            )
        return value

    def check_share(self, node: NodeDecl) -> None:
        """``share:`` names what it can: a node shares a node's weights, an include an include's,
        and what it names holds weights of its own (not shared in turn). Checked once per share:
        the nodes of a sharing include all name the same owner."""
        key = (node.share_group, node.share_of)
        if key not in self.checked_shares:
            try:
                self._check_share(node)
                self.checked_shares[key] = None
            except ShapeError as exc:
                self.checked_shares[key] = _ShareError(str(exc), node.share_where or node.where)
        if self.checked_shares[key] is not None:
            raise self.checked_shares[key]

    def _check_share(self, node: NodeDecl) -> None:
        target, nodes = node.share_of, self.flat.nodes
        owners = [n for n in nodes.values() if _within(n.id, target)]
        is_node = target in nodes
        is_include = not is_node and bool(owners)
        if not is_node and not is_include:
            raise ShapeError(f"share: there is no node or include '{target}' whose weights '{node.share_group}' could use{did_you_mean(target, nodes)}")
        if node.share_kind == "node" and not is_node:
            raise ShapeError(f"share: '{target}' is an included spec; a node shares another node's weights (an include shares another include's)")
        if node.share_kind == "include" and is_node:
            raise ShapeError(f"share: '{target}' is a node; an include shares the weights of another include of the same spec")
        if any(n.share_of for n in owners):
            raise ShapeError(f"share: '{target}' uses the weights of '{owners[0].share_of}' itself; share '{owners[0].share_of}' instead")

    def check_shared_paths(self) -> None:
        """A sharer holds exactly its owner's weights: no module of its own under the owner's name
        (an input the owner does not have, one more post op) and none of the owner's left out."""
        groups: dict[tuple[str, str], NodeDecl] = {}
        for node in self.flat.nodes.values():
            if node.share_of and node.share_group:
                groups.setdefault((node.share_group, node.share_of), node)
        for (group, target), first in groups.items():
            mine = set().union(*(paths for owner, paths in self.param_paths.items() if _within(owner, group)))
            theirs = set().union(*(paths for owner, paths in self.param_paths.items() if _within(owner, target)))
            if mine != theirs:
                extra, missing = sorted(mine - theirs), sorted(theirs - mine)
                said = f"would hold weights '{target}' does not have ({', '.join(extra[:3])})" if extra else f"leaves out weights of '{target}' ({', '.join(missing[:3])})"
                raise _ShareError(f"share: '{group}' uses the weights of '{target}' but {said}; a node that shares weights has the same inputs and ops as the one it shares with", first.share_where or first.where)

    def read(self, node: NodeDecl, edge: EdgeDecl) -> str:
        """The value an edge reads; an op's several outputs are read one at a time (``X.1``)."""
        base = base_of(edge.source)
        count = self.output_counts.get(base)
        if edge.source in self.node_values and not (count and edge.source == base):
            return self.node_values[edge.source]
        stem = edge.ref.rpartition(".")[0]  # ``X`` of ``X.5``
        if count is None:
            raise ShapeError(f"input '{edge.ref}': '{base}' has one output; read it as '{stem}'")
        if edge.source == base:
            raise ShapeError(f"input '{edge.ref}': '{base}' has {count} outputs; read one of them: {', '.join(f'{edge.ref}.{i}' for i in range(count))}")
        raise ShapeError(f"input '{edge.ref}': '{base}' has {count} outputs: {', '.join(f'{stem}.{i}' for i in range(count))}")

    def lower_apply(self, node: NodeDecl) -> None:
        """A node with ``apply:``: one op over its inputs as they are, at their own levels."""
        op = node.apply
        for edge in node.edges:
            if edge.via is not None:
                raise ShapeError(f"input '{edge.ref}': an apply node reads its inputs as they are, so it takes no via; resample in a node before it")
        args = [self.read(node, edge) for edge in node.edges]
        if len(args) < op.min_inputs or (op.max_inputs is not None and len(args) > op.max_inputs):
            wanted = f"{op.min_inputs}" if op.max_inputs == op.min_inputs else f"at least {op.min_inputs}" if op.max_inputs is None else f"{op.min_inputs} to {op.max_inputs}"
            raise ShapeError(f"apply '{op.name}' takes {wanted} input{'s' if wanted != '1' else ''}, got {len(args)}")
        shapes = [self.values[a] for a in args]
        out = op.shape(shapes, Site("apply", channels=node.channels))
        if isinstance(out, list):
            if node.post:
                raise ShapeError(f"'{node.id}' has {len(out)} outputs (apply '{op.name}'), so it takes no post ops; apply them in nodes reading {node.id}.0, {node.id}.1, ...")
            if node.level is not None and any(s.level != node.level for s in out):
                raise ShapeError(f"'{node.id}' declares level {node.level} but apply '{op.name}' gives levels {', '.join(str(s.level) for s in out)}")
            whole = self.add(f"{node.id}.outputs", f"{node.module}.op", op, args, tuple(out), node, "apply")
            from .ops.apply import OutputOf

            for index, shape in enumerate(out):
                value = self.add(f"{node.id}.{index}", f"{node.module}.op", OutputOf(index), [whole], shape, node, "apply")
                self.node_values[f"{node.id}.{index}"] = value
                self.size_refs.setdefault(shape.level, value)
            self.node_values[node.id] = self.node_values[f"{node.id}.0"]
            self.output_counts[node.id] = len(out)
            return
        if node.level is not None and out.level != node.level:
            raise ShapeError(f"'{node.id}' declares level {node.level} but apply '{op.name}' gives level {out.level}")
        value = self.add(f"{node.id}.pre" if node.post else node.id, f"{node.module}.op", op, args, out, node, "apply")
        self.finish(node, value, out.level)

    def lower_node(self, node: NodeDecl) -> None:
        if node.share_of:
            self.check_share(node)
        if node.apply is not None:
            return self.lower_apply(node)
        sources = [self.values[self.read(node, e)] for e in node.edges]
        level = node.level if node.level is not None else sources[0].level
        width = node.channels if (node.fuse.projects_inputs or len(node.edges) == 1) else None
        alone = node.id if len(node.edges) == 1 and not node.post else None
        args = [self.lower_edge(node, edge, level, edge.channels if edge.channels is not None else width, alone, slug) for edge, slug in zip(node.edges, _edge_slugs(node))]
        sizes = {self.values[a].size for a in args}
        if len(sizes) > 1 and None not in sizes:
            listing = ", ".join(f"'{e.ref}' gives {self.values[a].size[0]}x{self.values[a].size[1]}" for e, a in zip(node.edges, args))
            raise ShapeError(
                f"inputs of '{node.id}' do not line up: {listing}; upsample by size (up: {{op: upsample, by: size}}) "
                f"or choose an image size divisible by {2 ** max(s.level for s in sources)}"
            )
        if len(args) > 1:
            fused_shape = node.fuse.shape([self.values[a] for a in args], Site("fuse", channels=node.channels))
            value = self.add(f"{node.id}.pre" if node.post else node.id, f"{node.module}.fuse", node.fuse, args, fused_shape, node, "fuse")
        else:
            value = args[0]
        self.finish(node, value, level)

    def finish(self, node: NodeDecl, value: str, level: int) -> None:
        """The node's post ops after its fusion (or apply) result ``value``; record the node."""
        self.node_values[node.id + ".pre"] = value
        shape = self.values[value]
        for index, op in enumerate(node.post):
            site = Site("post", channels=node.channels)
            op = op.at([shape], site)
            shape = op.shape([shape], site)
            name = node.id if index == len(node.post) - 1 else f"{node.id}.post{index}"
            value = self.add(name, f"{node.module}.post{index}", op, [value], shape, node, "post")
        if node.channels is not None and shape.channels != node.channels:
            raise ShapeError(
                f"'{node.id}' declares {node.channels} channels but its ops give {shape.channels}; "
                f"add a conv to its post ops or set channels: {shape.channels}"
            )
        self.node_values[node.id] = value
        self.size_refs.setdefault(level, value)


def lower(
    doc: Document, flat: FlatSpec, input_sizes: Sequence[tuple[int, int] | None] | None = None, single_sample: bool = False
) -> tuple[IRGraph | None, list[Issue]]:
    """Lower a graph-checked spec to IR; shape problems come back as issues.

    ``input_sizes`` (one ``(height, width)`` per input, or None for an input of unknown size)
    replaces the sizes ``flat.image`` gives, to check the sizes a neck is called with;
    ``single_sample``: they come in a batch of one, which some ops cannot take at some sizes
    (:data:`pyramidgraph.ops.common.SINGLE_SAMPLE`)."""
    token, seen = SINGLE_SAMPLE.set(single_sample), ONE_VALUE_GROUPS.set([])
    try:
        ir, issues = _lower(doc, flat, input_sizes)
        if ir is not None:
            ir.meta["batch_sensitive"] = bool(ONE_VALUE_GROUPS.get())
        return ir, issues
    finally:
        SINGLE_SAMPLE.reset(token)
        ONE_VALUE_GROUPS.reset(seen)


def sizes_never_line_up(doc: Document, flat: FlatSpec, ir: IRGraph) -> list[Issue]:
    """The shape issues of a neck no image size can run, else [] (what compiling without an image
    checks: the sizes themselves are left to the call, :mod:`pyramidgraph.contract`).

    The inputs the neck reads are given the friendliest sizes (each map exactly half the next,
    sides a multiple of every stride, large enough that no window empties); that settles it for
    every sound neck. Only when that fails are the other residue classes tried, chains of
    ``ceil`` and ``floor`` alike, before the neck is called unrunnable."""
    readers, outputs = ir.users(), {value for _, value in ir.outputs}
    read = [i for i, (name, _) in enumerate(ir.inputs) if name in readers or name in outputs]
    if not read:
        return []
    levels = [decl.level for decl in flat.inputs]
    base = min(levels[i] for i in read)
    period = 2 ** max(max(shape.level for shape in ir.values().values()) - base, 0)

    def issues(first: int, kind: str) -> list[Issue]:
        sides = dict(zip(read, halving_chain(first, kind, [levels[i] - base for i in read])))
        return _lower(doc, flat, [(sides[i], sides[i]) if i in sides else None for i in range(len(levels))])[1]

    friendliest = period * 16
    found = issues(friendliest, "ceil")
    if not found or any(not issues(friendliest + r, kind) for kind in ("ceil", "floor") for r in range(period)):
        return []
    image = friendliest * 2**base
    return [replace(i, message=f"{i.message.split('; ')[0]} at every image size (shown for {image}x{image})") for i in found]


def _lower(doc: Document, flat: FlatSpec, input_sizes: Sequence[tuple[int, int] | None] | None) -> tuple[IRGraph | None, list[Issue]]:
    lowering = _Lowering(doc, flat)
    inputs = lowering.input_shapes(input_sizes)
    g = dataflow(flat)
    broken: set[str] = set()
    for node_id in topological_order(g):
        node = flat.nodes.get(node_id)
        if node is None:
            continue
        if any(base_of(e.source) in broken for e in node.edges):
            broken.add(node_id)
            continue
        try:
            lowering.lower_node(node)
        except _ShareError as exc:  # reported where the share is written (an include's, not in the included file)
            issue = exc.where.issue(doc, str(exc), key=False)
            if not any((i.file, i.line, i.col) == (issue.file, issue.line, issue.col) for i in lowering.issues):  # one per share: written once
                lowering.issues.append(issue)
            broken.add(node_id)
        except ShapeError as exc:
            lowering.issues.append(node.where.issue(doc, str(exc), key=True))
            broken.add(node_id)
    if not lowering.issues:
        try:
            lowering.check_shared_paths()
        except _ShareError as exc:
            lowering.issues.append(exc.where.issue(doc, str(exc)))
    if lowering.issues:
        return None, lowering.issues
    too_large = _weights_too_large(doc, flat, lowering.ops)
    if too_large is not None:
        return None, [too_large]
    for o in flat.outputs:
        base = base_of(o.source)
        count = lowering.output_counts.get(base)
        if count and o.source == base:
            lowering.issues.append(o.where.issue(doc, f"'{o.ref}' has {count} outputs; return one of them: {', '.join(f'{o.ref}.{i}' for i in range(count))}"))
        elif o.source not in lowering.node_values:
            stem = o.ref.rpartition(".")[0]
            told = f"{count} outputs: {', '.join(f'{stem}.{i}' for i in range(count))}" if count else f"one output; return it as '{stem}'"
            lowering.issues.append(o.where.issue(doc, f"'{o.ref}': '{base}' has {told}"))
    if lowering.issues:
        return None, lowering.issues
    outputs = [(o.name, lowering.node_values[o.source]) for o in flat.outputs]
    ir = IRGraph(flat.name, inputs, lowering.ops, outputs, return_type=flat.return_type, node_values=lowering.node_values, meta={"doc": flat.doc, "params": flat.params})
    ir.check()
    return ir, []


def weight_estimates(ops: Iterable[IROp]) -> dict[str, tuple[int, IROp]]:
    """Module path -> (:meth:`Op.weight_estimate`, the op), for the first op at each path: the
    ops of a shared block's repetitions hold one set of weights."""
    estimates: dict[str, tuple[int, IROp]] = {}
    for op in ops:
        if op.module not in estimates:
            estimates[op.module] = (op.op.weight_estimate(op.shapes, op.shape), op)
    return estimates


def estimated_parameters(ops: Iterable[IROp]) -> int:
    """About how many parameters (and buffers) the neck of ``ops`` holds, without building it."""
    return sum(count for count, _ in weight_estimates(ops).values())


def _weights_too_large(doc: Document, flat: FlatSpec, ops: list[IROp]) -> Issue | None:
    """An issue at the node of the largest op when the estimated weights pass
    :data:`MAX_WEIGHT_BYTES`."""
    estimates = weight_estimates(ops)
    total = sum(count for count, _ in estimates.values())
    if total * 4 <= MAX_WEIGHT_BYTES:
        return None
    count, largest = max(estimates.values(), key=lambda entry: entry[0])
    widths = f"{_widths(tuple(s.channels for s in largest.shapes))} -> {largest.shape.channels}"
    message = (
        f"the neck's weights would take about {_amount(total * 4)}B ({_amount(total)} float32 parameters), more than the "
        f"{_amount(MAX_WEIGHT_BYTES)}B allowed (pyramidgraph.lower.MAX_WEIGHT_BYTES); the largest op is '{largest.name}' "
        f"({largest.op.label()}, {widths} channels: about {_amount(count)} parameters): lower the widths"
    )
    node = flat.nodes[largest.meta["node"]]
    return node.where.issue(doc, message, key=True)


def _amount(number: float) -> str:
    """``154.6 G``, ``8 G``, ``512 M``: three significant figures at most, SI prefixes."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= scale:
            return f"{number / scale:.3g} {prefix}"
    return f"{number:.3g} "
