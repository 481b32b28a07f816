"""Diagrams of a spec as Graphviz graphs: the figure a paper would draw, or the lowered IR.

:func:`render` returns a ``graphviz.Digraph``: it shows inline in Jupyter (the object has
``_repr_mimebundle_``), ``.source`` is its DOT text and :func:`save` writes SVG, PNG, PDF or DOT.

The spec diagram is a grid, because a neck is read that way: one row per pyramid level (the
coarsest on top; a level gets one more row for every further map sharing a column) and one
column per step from the inputs (inputs on the left, a node one column right of its latest
source, so outputs end on the right). Crossing minimisation (``dot``) would move nodes within a
rank to save a crossing and the rows would wander, inside a block's box above all; so the grid
is computed here and every node is pinned (``pos="x,y!"``, ``layout=neato``). Graphviz only
routes the edges, as splines around the nodes (``splines=true``), and sizes the blocks' boxes to
their members. Nothing depends on hashing or timing: the same spec gives byte-identical DOT.

What is drawn:

* a box per input (grey, square corners) and per spec node, filled with the colour of its
  fusion op (white: one input, nothing to fuse) and labelled with its name and post ops
  (``silu · sepconv3x3 · bn``); outputs have a double border; a legend lists what is used;
* a line per ``from`` entry, coloured by direction (top-down blue, bottom-up red, along a level
  grey) and labelled with its resample chain (``1x1 proj → maxpool /2``; no label when the map
  passes as it is; ``.pre`` when it reads the tap before the post ops). The label is a small
  text node the line runs through (``#label_N``), pinned just left of the node the line feeds,
  because neato puts edge labels over the line or far from its ends (:func:`_label_positions`);
* a repeated block once, in a dashed box titled ``cell x3``: its repetition 0, fed by what the
  block's inputs name. The edges that carry repetition k's outputs into repetition k+1 are left
  out (they would all run backwards across the cell; "x3" says it), and a node after the block
  that reads its last repetition is drawn reading repetition 0. A block whose repetitions differ
  (FPG's pathways) says so in its title. ``expand=True`` draws every repetition in its own box
  (``cell 1/3``, ...).

``lowered=True`` draws the IR instead, after the compiler's default passes: one box per op the
compiler emits, labelled with the op and its output shape, grouped by the spec node it
implements, laid out by ``dot``. The map an upsample takes its size from is named in the op's
tooltip, not drawn: it is not data flow, and a line from one input to every resize in seven
stacked cells made the drawing unreadable.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import graphviz

from .compiler import Analysis, SpecSource, analyze
from .expand import FlatSpec, NodeDecl
from .graph import base_of, dataflow, topological_order
from .ir import IRGraph, IROp
from .shape import FeatureShape

__all__ = ["render", "save", "FORMATS", "GraphvizMissing", "FUSE_COLOURS", "EDGE_COLOURS", "INSTALL_HINT"]

FUSE_COLOURS: dict[str, str] = {
    "sum": "#cfe2f3",
    "weighted": "#fce5cd",
    "concat": "#d9ead3",
    "mean": "#e6d6f0",
    "gate": "#f4cccc",
}
"""Fill colour per fusion op (by registered name); other ops get one of ``_PALETTE`` by name."""
_PALETTE = ("#fff2cc", "#d0e0e3", "#ead1dc", "#d9d2e9", "#c9daf8", "#b6d7a8")
INPUT_COLOUR = "#e6e6e6"
NO_FUSION_COLOUR = "#ffffff"
EDGE_COLOURS = {"down": "#1f5f9e", "up": "#b03a2e", "same": "#555555"}
"""Edge colour by direction: ``down`` the pyramid (top-down, to a finer level), ``up`` it, or along a level."""
_DIRECTION_NAMES = {"down": "top-down (to a finer level)", "up": "bottom-up (to a coarser level)", "same": "same level"}

FORMATS: dict[str, str] = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
"""Output file suffixes :func:`save` understands, and the format each means."""

INSTALL_HINT = (
    "install Graphviz, which provides it: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`; DOT text needs no Graphviz (-o diagram.dot, or no -o)"
)

_FONT = "Helvetica"
_GRAPH_ATTR = {"fontname": _FONT, "bgcolor": "white", "pad": "0.2"}
_NODE_ATTR = {"fontname": _FONT, "fontsize": "11", "shape": "box", "style": "rounded,filled", "penwidth": "1.0", "margin": "0.12,0.06"}
_EDGE_ATTR = {"fontname": _FONT, "fontsize": "9", "arrowsize": "0.6", "penwidth": "1.1"}

# The grid's measures, in inches. Widths are estimated from the text (Helvetica: about 0.08 in
# a character at 11 pt, 0.065 at 9 pt); they only need to be generous enough that boxes and
# edge labels do not collide.
_CHAR = 0.085
_LABEL_CHAR = 0.07
_TITLE_CHAR = 0.095  # 12 pt
_BOX_MARGIN = 0.5
_COLUMN_GAP = 0.55
_ROW = 0.75  # between the rows of one level
_LEVEL_GAP = 0.45  # added between levels


class GraphvizMissing(RuntimeError):
    """Graphviz's ``dot`` program is needed (for every format but DOT) and is not installed."""


def render(
    spec: SpecSource,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    image: int | tuple[int, int] | None = None,
    lowered: bool = False,
    expand: bool = False,
) -> graphviz.Digraph:
    """The diagram of ``spec`` as a ``graphviz.Digraph`` (the module docstring says what it shows).

    ``in_channels``, ``params`` and ``image`` are :func:`pyramidgraph.analyze`'s (the spec's
    ``example`` by default); the spec is checked first, so a broken one raises
    :class:`~pyramidgraph.SpecError`. ``expand`` draws every repetition of repeated blocks;
    ``lowered`` draws the IR the compiler emits (every op of every repetition).
    """
    analysis = analyze(spec, in_channels, image=image, params=params)
    if lowered:
        return _lowered_diagram(analysis)
    return _spec_diagram(analysis, expand)


def save(graph: graphviz.Digraph, path: str | os.PathLike) -> str:
    """Write ``graph`` to ``path`` in the format its suffix names; return that format.

    Raises ``ValueError`` for a suffix not in :data:`FORMATS`, and :class:`GraphvizMissing`
    when the format needs Graphviz and it is not installed (DOT text never does).
    """
    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of '{target}' from its suffix; use one of {', '.join(FORMATS)}")
    if fmt == "dot":
        target.write_text(graph.source, encoding="utf-8")
        return fmt
    try:
        data = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(f"writing {fmt.upper()} needs Graphviz, and its `{graph.engine}` program is not on PATH; {INSTALL_HINT}") from None
    target.write_bytes(data)
    return fmt


# -- repeated blocks --------------------------------------------------------------------------------


def _repetitions(node_id: str) -> list[tuple[str, int]]:
    """``(block path, repetition)`` for every repeated block around a node, outermost first.

    Expansion names the nodes of repetition k of block ``cell`` ``cell.k.NAME``; spec names are
    never all digits, so a digit segment is always a repetition index."""
    parts = node_id.split(".")
    return [(".".join(parts[:i]), int(part)) for i, part in enumerate(parts) if i and part.isdigit()]


def _first_repetition(node_id: str) -> str:
    """The id of the same node in repetition 0 of every block around it."""
    return ".".join("0" if i and part.isdigit() else part for i, part in enumerate(node_id.split(".")))


def _local_name(node_id: str) -> str:
    """What a node is called inside its innermost repeated block (``cell.0.P4_td`` -> ``P4_td``)."""
    parts = node_id.split(".")
    last = max((i for i, part in enumerate(parts) if i and part.isdigit()), default=-1)
    return ".".join(parts[last + 1 :])


def _differing_blocks(flat: FlatSpec) -> set[str]:
    """Repeated blocks (keyed as in the compact drawing) whose repetitions are not alike: other
    nodes, other ``from`` lists or other ops (FPG's pathways alternate)."""
    by_block: dict[str, dict[int, set]] = {}
    for node in flat.nodes.values():
        reps = _repetitions(node.id)
        if not reps:
            continue
        block, rep = reps[-1]
        signature = (_local_name(node.id), tuple(_local_name(e.ref) for e in node.edges), node.fuse.label() if len(node.edges) > 1 else "", tuple(op.label() for op in node.post))
        by_block.setdefault(_first_repetition(block), {}).setdefault(rep, set()).add(signature)
    return {key for key, reps in by_block.items() if len({frozenset(v) for v in reps.values()}) > 1}


# -- what is drawn ----------------------------------------------------------------------------------


@dataclass
class _Box:
    """One map drawn: an input or a spec node."""

    name: str  # the DOT node name: the input name or node id
    title: str
    shape: FeatureShape
    kind: str = "input"  # or "node"
    fuse: Any = None  # the FuseOp; None for inputs and one-input nodes
    post: list[str] = field(default_factory=list)
    output: bool = False
    clusters: list[tuple[str, str]] = field(default_factory=list)  # repeated blocks around it: (key, title), outermost first
    tooltip: str = ""
    column: int = 0

    @property
    def level(self) -> int:
        return self.shape.level

    @property
    def label(self) -> str:
        return self.title + (f"\n{' · '.join(self.post)}" if self.post else "")


@dataclass
class _Edge:
    """One ``from`` entry."""

    tail: str
    head: str
    chain: list[str]  # resample op labels, in order
    tap: bool  # reads the ``.pre`` tap
    direction: str  # down, up or same (see EDGE_COLOURS)

    @property
    def label(self) -> str:
        parts = [".pre"] if self.tap else []
        if self.chain:
            parts.append(" → ".join(self.chain))
        return "\n".join(parts)


def _shape_text(shape: FeatureShape) -> str:
    size = f" · {shape.size[0]}x{shape.size[1]}" if shape.size else ""
    return f"{shape.channels} ch · /{shape.stride}{size}"


def _fuse_colour(name: str) -> str:
    if name in FUSE_COLOURS:
        return FUSE_COLOURS[name]
    return _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def _edge_chains(ir: IRGraph, node: NodeDecl, producers: dict[str, IROp]) -> list[list[str]]:
    """The resample op labels of each of ``node``'s edges, in ``from`` order, read from the IR.

    Lowering gives a node with several inputs one fuse op whose arguments are its edges' last
    values in ``from`` order (with one input, the node's ``.pre`` value is that edge's); walking
    back through the node's own edge ops from there gives each chain as the compiler built it."""
    pre = ir.node_values[node.id + ".pre"]
    ends = producers[pre].args if len(node.edges) > 1 else [pre]
    chains = []
    for value in ends:
        labels = []
        op = producers.get(value)
        while op is not None and op.meta.get("node") == node.id and op.meta.get("role") == "edge":
            labels.append(op.op.label())
            op = producers.get(op.args[0])
        chains.append(labels[::-1])
    return chains


def _spec_boxes(analysis: Analysis, expand: bool) -> tuple[list[_Box], list[_Edge]]:
    """The inputs, nodes and edges to draw, in dataflow order (columns are placed later)."""
    flat, ir = analysis.flat, analysis.ir
    values = ir.values()
    producers = {op.name: op for op in ir.ops}
    shown = (lambda node_id: node_id) if expand else _first_repetition
    outputs = {shown(base_of(o.source)) for o in flat.outputs if o.source}
    counts: dict[str, int] = {}
    for node_id in flat.nodes:
        for block, rep in _repetitions(node_id):
            counts[_first_repetition(block)] = max(counts.get(_first_repetition(block), 0), rep + 1)
    differ = set() if expand else _differing_blocks(flat)

    boxes: dict[str, _Box] = {}
    for decl in flat.inputs:
        shape = values[decl.name]
        boxes[decl.name] = _Box(decl.name, decl.name, shape, output=decl.name in outputs, tooltip=f"input {decl.name}: {_shape_text(shape)}")
    edges: list[_Edge] = []
    for node_id in topological_order(dataflow(flat)):
        node = flat.nodes.get(node_id)
        if node is None or shown(node_id) != node_id:
            continue
        shape = values[ir.node_values[node_id]]
        clusters = []
        for block, rep in _repetitions(node_id):
            key = f"{block}.{rep}" if expand else _first_repetition(block)
            name, count = block.split(".")[-1], counts[_first_repetition(block)]
            title = f"{name} {rep + 1}/{count}" if expand else f"{name} x{count}" + (" (repetitions differ)" if key in differ else "")
            clusters.append((key, title))
        fuse = node.fuse if len(node.edges) > 1 else None
        post = [op.label() for op in node.post]
        tooltip = f"{node_id}: {_shape_text(shape)}" + (f"; fuse {fuse.label()}" if fuse else "") + (f"; post {', '.join(post)}" if post else "")
        boxes[node_id] = _Box(node_id, _local_name(node_id), shape, "node", fuse, post, node_id in outputs, clusters, tooltip)
        for edge, chain in zip(node.edges, _edge_chains(ir, node, producers)):
            tail = shown(base_of(edge.source))
            level = boxes[tail].level
            direction = "down" if level > shape.level else "up" if level < shape.level else "same"
            edges.append(_Edge(tail, node_id, chain, edge.source.endswith(".pre"), direction))
    return list(boxes.values()), edges


# -- the grid ----------------------------------------------------------------------------------------


def _cluster_extents(boxes: list[_Box]) -> dict[str, tuple[set[str], tuple[int, int], tuple[int, int]]]:
    """For each repeated block's box: its members, level range and column range."""
    members: dict[str, list[_Box]] = {}
    for box in boxes:
        for key, _ in box.clusters:
            members.setdefault(key, []).append(box)
    return {key: ({b.name for b in inside}, (min(b.level for b in inside), max(b.level for b in inside)), (min(b.column for b in inside), max(b.column for b in inside))) for key, inside in members.items()}


def _feeds(name: str, members: set[str], readers: dict[str, list[str]]) -> bool:
    """Whether ``name`` is read, directly or not, by one of ``members``."""
    seen, todo = set(), list(readers[name])
    while todo:
        current = todo.pop()
        if current in members:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(readers[current])
    return False


def _place_columns(boxes: list[_Box], edges: list[_Edge]) -> None:
    """Set every box's column: inputs 0, a node one more than its latest source.

    A block's box is drawn around its members, so it covers the rectangle of their levels and
    columns, and a map inside it that is not a member would look like one. So a block starts
    right of everything it reads from outside, and a node beside the block (neither in it nor
    feeding it) whose place falls in the rectangle moves just right of it; what reads a moved
    node follows."""
    sources: dict[str, list[str]] = {box.name: [] for box in boxes}
    readers: dict[str, list[str]] = {box.name: [] for box in boxes}
    for edge in edges:
        sources[edge.head].append(edge.tail)
        readers[edge.tail].append(edge.head)
    by_name = {box.name: box for box in boxes}
    minimum: dict[str, int] = {}
    for _ in range(len(boxes) + 1):  # each round moves at least one node past a block
        for box in boxes:  # dataflow order: sources first
            earliest = 1 + max((by_name[s].column for s in sources[box.name]), default=0) if box.kind == "node" else 0
            box.column = max(earliest, minimum.get(box.name, 0))
        moved = False
        for members, levels, columns in _cluster_extents(boxes).values():
            start = 1 + max((by_name[s].column for m in members for s in sources[m] if s not in members), default=0)
            for member in members:
                if by_name[member].column < start:
                    minimum[member] = start
                    moved = True
            for box in boxes:
                inside = levels[0] <= box.level <= levels[1] and columns[0] <= box.column <= columns[1]
                if inside and box.kind == "node" and box.name not in members and not _feeds(box.name, members, readers) and minimum.get(box.name, 0) <= columns[1]:
                    minimum[box.name] = columns[1] + 1
                    moved = True
        if not moved:
            return


def _text_width(text: str, per_char: float) -> float:
    return max((len(line) for line in text.split("\n")), default=0) * per_char


def _positions(boxes: list[_Box], edges: list[_Edge]) -> tuple[dict[str, tuple[float, float]], dict[int, float], float]:
    """Centre of every box (inches, y up), the y of every level's first row, and the x of the
    level headers' column.

    Rows: the levels from the coarsest down; a level has as many rows as the most maps that
    share one of its columns. Columns are as wide as their widest box, with room before them for
    the labels of the edges arriving (see :func:`_label_positions`)."""
    stacks: dict[tuple[int, int], list[_Box]] = {}
    for box in boxes:
        stacks.setdefault((box.level, box.column), []).append(box)
    rows_of_level: dict[int, int] = {}
    for (level, _), stack in stacks.items():
        rows_of_level[level] = max(rows_of_level.get(level, 0), len(stack))
    level_y: dict[int, float] = {}
    y = 0.0
    for level in sorted(rows_of_level):  # finest at the bottom
        y += (rows_of_level[level] - 1) * _ROW
        level_y[level] = y
        y += _ROW + _LEVEL_GAP

    by_name = {box.name: box for box in boxes}
    width: dict[int, float] = {}
    for box in boxes:
        width[box.column] = max(width.get(box.column, 0.0), _text_width(box.label, _CHAR) + _BOX_MARGIN)
    gap: dict[int, float] = {}
    for edge in edges:
        column = by_name[edge.head].column
        gap[column] = max(gap.get(column, 0.0), _text_width(edge.label, _LABEL_CHAR) + 0.45)
    header_width = 0.8
    x = header_width
    column_x: dict[int, float] = {}
    for column in range(max(width) + 1):
        x += max(_COLUMN_GAP, gap.get(column, 0.0)) + width.get(column, 0.0) / 2
        column_x[column] = x
        x += width.get(column, 0.0) / 2
    centres = {}
    for (level, column), stack in stacks.items():
        for slot, box in enumerate(stack):
            centres[box.name] = (column_x[column], level_y[level] - slot * _ROW)
    return centres, level_y, header_width / 2


def _pos(x: float, y: float) -> str:
    return f"{x:.2f},{y:.2f}!"


def _box_width(box: _Box) -> float:
    return _text_width(box.label, _CHAR) + _BOX_MARGIN


def _label_positions(boxes: list[_Box], edges: list[_Edge], centres: dict[str, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Where each labelled edge's label sits (by edge index): in the gap just left of the edge's
    head, on the straight line from the tail's centre to the head's.

    A label is a small node the edge runs through, not an edge label: neato puts edge labels by
    a corner at the edge's middle, often over the line or far along it, and for an edge across
    several columns the middle is wherever other edges are. Here it is next to the map it feeds
    and the line stops at the text. Labels that would overlap move down, one line at a time."""
    by_name = {box.name: box for box in boxes}
    placed: list[tuple[float, float, float, float]] = []  # x, y, half width, half height
    where: dict[int, tuple[float, float]] = {}
    for index, edge in enumerate(edges):
        if not edge.label:
            continue
        head, tail = by_name[edge.head], by_name[edge.tail]
        (hx, hy), (tx, ty) = centres[head.name], centres[tail.name]
        lines = edge.label.count("\n") + 1
        half_w, half_h = _text_width(edge.label, _LABEL_CHAR) / 2 + 0.04, lines * 0.075 + 0.03
        x = hx - _box_width(head) / 2 - 0.15 - half_w
        if tail.column == head.column - 1:  # the whole gap is the edge's: its middle
            x = (tx + _box_width(tail) / 2 + hx - _box_width(head) / 2) / 2
        y = ty + (hy - ty) * (x - tx) / (hx - tx) if hx != tx else hy
        while any(abs(x - px) < half_w + pw + 0.1 and abs(y - py) < half_h + ph + 0.06 for px, py, pw, ph in placed):
            y -= 2 * half_h + 0.06
        placed.append((x, y, half_w, half_h))
        where[index] = (x, y)
    return where


def _spec_diagram(analysis: Analysis, expand: bool) -> graphviz.Digraph:
    flat: FlatSpec = analysis.flat
    boxes, edges = _spec_boxes(analysis, expand)
    _place_columns(boxes, edges)
    centres, level_y, header_x = _positions(boxes, edges)

    g = graphviz.Digraph(flat.name, engine="neato", graph_attr=dict(_GRAPH_ATTR), node_attr=dict(_NODE_ATTR), edge_attr=dict(_EDGE_ATTR))
    # layout=neato also when someone runs `dot -Tpng` on the DOT file; every node is pinned and
    # splines=true routes the edges around the boxes
    g.attr(layout="neato", splines="true", overlap="true", outputorder="edgesfirst", label=flat.name, labelloc="t", fontsize="14")
    for level in sorted(level_y, reverse=True):
        g.node(f"#level_{level}", f"level {level}\n/{2**level}", shape="plaintext", style="", fontsize="10", fontcolor="#666666", pos=_pos(header_x, level_y[level]))

    def emit(parent: graphviz.Digraph, members: list[_Box], depth: int) -> None:
        inner: dict[str, list[_Box]] = {}
        for box in members:
            if len(box.clusters) > depth:
                inner.setdefault(box.clusters[depth][0], []).append(box)
            else:
                _emit_box(parent, box, centres[box.name])
        for key, inside in inner.items():
            title = inside[0].clusters[depth][1]
            with parent.subgraph(name=f"cluster_{key}") as sub:
                sub.attr(label=title, style="rounded,dashed", color="#888888", fontsize="12", labeljust="l", margin="12")
                emit(sub, inside, depth + 1)
                # neato sizes a box to its members and writes the title over whatever is at its
                # top: an empty member above the top row keeps the title's place free
                left = min(centres[b.name][0] - _box_width(b) / 2 for b in inside)
                top = max(centres[b.name][1] for b in inside) + 0.45 + 0.3 * (max(len(b.clusters) for b in inside) - depth - 1)
                width = len(title) * _TITLE_CHAR
                sub.node(f"#title_{key}", "", shape="plaintext", style="", width=f"{width:.2f}", height="0.2", fixedsize="true", pos=_pos(left + width / 2, top))

    emit(g, boxes, 0)
    labels = _label_positions(boxes, edges, centres)
    for index, edge in enumerate(edges):
        colour = EDGE_COLOURS[edge.direction]
        if index in labels:
            name = f"#label_{index}"
            g.node(name, edge.label, shape="plaintext", style="", fontsize="9", fontcolor=colour, margin="0.02,0.01", width="0", height="0", pos=_pos(*labels[index]))
            g.edge(edge.tail, name, color=colour, arrowhead="none")
            g.edge(name, edge.head, color=colour)
        else:
            g.edge(edge.tail, edge.head, color=colour)

    right = max(centres[b.name][0] + _box_width(b) / 2 for b in boxes)
    _legend(g, boxes, edges, right + _COLUMN_GAP, min(level_y.values()) - _ROW / 2)
    return g


def _emit_box(g: graphviz.Digraph, box: _Box, centre: tuple[float, float]) -> None:
    attrs = {"tooltip": box.tooltip, "pos": _pos(*centre)}
    if box.kind == "input":
        attrs.update(fillcolor=INPUT_COLOUR, style="filled")
    else:
        attrs["fillcolor"] = _fuse_colour(box.fuse.name) if box.fuse is not None else NO_FUSION_COLOUR
    if box.output:
        attrs.update(peripheries="2", penwidth="1.6")
    g.node(box.name, box.label, **attrs)


def _legend(g: graphviz.Digraph, boxes: list[_Box], edges: list[_Edge], left: float, bottom: float) -> None:
    """A small table of the fills, borders and edge colours used, its lower left corner at (``left``, ``bottom``)."""
    fills: dict[str, str] = {"input": INPUT_COLOUR}
    for box in boxes:
        if box.fuse is not None:
            fills.setdefault(f"fuse: {box.fuse.label()}", _fuse_colour(box.fuse.name))
    if any(box.fuse is None and box.kind == "node" for box in boxes):
        fills["one input, no fusion"] = NO_FUSION_COLOUR
    texts = list(fills) + ["double border: output"]
    rows = [f'<TR><TD WIDTH="16" HEIGHT="12" BGCOLOR="{colour}" STYLE="rounded"></TD><TD ALIGN="LEFT" BORDER="0">{_html(text)}</TD></TR>' for text, colour in fills.items()]
    rows.append('<TR><TD BORDER="0"></TD><TD ALIGN="LEFT" BORDER="0">double border: output</TD></TR>')
    for direction in [d for d in EDGE_COLOURS if any(e.direction == d for e in edges)]:
        colour = EDGE_COLOURS[direction]
        texts.append(_DIRECTION_NAMES[direction])
        rows.append(f'<TR><TD BORDER="0"><FONT COLOR="{colour}">&#8594;</FONT></TD><TD ALIGN="LEFT" BORDER="0"><FONT COLOR="{colour}">{_DIRECTION_NAMES[direction]}</FONT></TD></TR>')
    table = f'<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="2"><TR><TD COLSPAN="2" BORDER="0"><B>legend</B></TD></TR>{"".join(rows)}</TABLE>>'
    width = max(len(t) for t in texts) * _LABEL_CHAR + 0.5
    height = (len(rows) + 1) * 0.21 + 0.1
    with g.subgraph(name="cluster_legend") as legend:
        legend.attr(label="", style="rounded", color="#bbbbbb")
        legend.node("#legend", table, shape="plaintext", style="", fontsize="9", pos=_pos(left + width / 2, bottom + height / 2))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the lowered diagram ----------------------------------------------------------------------------


def _lowered_diagram(analysis: Analysis) -> graphviz.Digraph:
    from .passes import DEFAULT_PASSES, PASSES, run_passes

    ir = run_passes(analysis.ir, [PASSES[name] for name in DEFAULT_PASSES])
    outputs = {value for _, value in ir.outputs}
    g = graphviz.Digraph(f"{ir.name}_lowered", graph_attr=dict(_GRAPH_ATTR), node_attr=dict(_NODE_ATTR), edge_attr=dict(_EDGE_ATTR))
    g.attr(rankdir="LR", splines="spline", nodesep="0.15", ranksep="0.35", label=f"{ir.name} (lowered: {len(ir.ops)} ops)", labelloc="t", fontsize="14")
    for name, shape in ir.inputs:
        attrs = {"peripheries": "2", "penwidth": "1.6"} if name in outputs else {}
        g.node(name, f"{name}\n{_shape_text(shape)}", fillcolor=INPUT_COLOUR, style="filled", **attrs)
    by_node: dict[str, list[IROp]] = {}
    for op in ir.ops:
        by_node.setdefault(str(op.meta.get("node", op.name)), []).append(op)
    for node_id, ops in by_node.items():
        with g.subgraph(name=f"cluster_{node_id}") as sub:
            sub.attr(label=node_id, style="rounded,dashed", color="#999999", fontsize="10", labeljust="l")
            for op in ops:
                role = op.meta.get("role")
                colour = _fuse_colour(op.op.name) if role == "fuse" else "#eef3fa" if role == "edge" else NO_FUSION_COLOUR
                attrs = {"peripheries": "2", "penwidth": "1.6"} if op.name in outputs else {}
                size_refs = op.args[len(_tensor_args(op)) :]
                tooltip = f"{op.name} (module {op.module})" + (f"; resizes to the size of {', '.join(size_refs)}" if size_refs else "")
                sub.node(op.name, f"{op.op.label()}\n{_shape_text(op.shape)}", fillcolor=colour, tooltip=tooltip, **attrs)
    for op in ir.ops:
        for arg in _tensor_args(op):
            g.edge(arg, op.name)
    return g


def _tensor_args(op: IROp) -> list[str]:
    """The values an op computes on; an edge op's further arguments are size references (the
    map whose size an upsample takes), which are not data flow and are not drawn."""
    return op.args[:1] if op.meta.get("role") == "edge" else op.args
