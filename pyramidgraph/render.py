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
  (``silu · sepconv3x3 · bn``); outputs have a double border; a legend lists what is used. An
  optional input that nothing reads (fpn's inputs below ``start`` or past ``used``) is not
  drawn: the spec accepts it only to ignore it;
* a line per ``from`` entry, coloured by direction (top-down blue, bottom-up red, along a level
  grey) and labelled with its resample chain (``1x1 proj → maxpool /2``; no label when the map
  passes as it is; ``.pre`` when it reads the tap before the post ops). The label is a small
  text node the line runs through (``#label_N``), pinned just left of the node the line feeds,
  because neato puts edge labels over the line or far from its ends (:func:`_label_positions`);
* a repeated block once, in a dashed box titled ``cell x3``: one repetition, fed by what the
  block's inputs name. The edges that carry repetition k's outputs into repetition k+1 are left
  out (they would all run backwards across the cell; "x3" says it), and a node after the block
  that reads its last repetition is drawn reading the one shown. That is repetition 0 when the
  repetitions are alike. When they differ (FPG's first pathways pass most levels through) it is
  the most common kind, the first of them, and the title says how many are drawn as shown
  (``path x9 (repetitions differ; 5 of 9 as drawn)``): repetition 0 of FPG is four pass-throughs
  and one sum, nothing like the pathway the paper draws. ``expand=True`` draws every repetition
  in its own box (``cell 1/3``, ...).

A node's label is its name, and its post ops on a second line. Two plain lines (``"P4_td\\nC2f
x1"``) are set by Graphviz about 1.1 em apart, and an underscore hangs below its baseline, so
the ``_`` of the name sat a point above the cap height of the line below and read as an overline
there ("C2f̄"; no markup is involved, the same happens in SVG, PNG and PDF). A two-line label is
therefore an HTML-like table with a 3 pt spacer row between the lines.

``style="paper"`` is the figure for a publication (:data:`STYLES`): one repetition of the neck's
repeated block with the maps it reads as its inputs, levels as rows, as the EfficientDet and
NAS-FPN papers draw their cells (``cell=False`` draws the whole neck); columns as compact as the
levels allow (a node shares its source's column when the two are on adjacent levels, so a
top-down chain is one column); names only (``ops=True`` adds the post ops); no edge labels
(``edge_labels=True``); black and greys that print (bottom-up lines dashed); one sans-serif
font family with fallbacks (:data:`PAPER_FONT`), at one size, chosen so that the smallest text
is at least :data:`MIN_FONT_PT` once the drawing is scaled to ``width`` inches
(:data:`PAPER_WIDTH`, Graphviz's ``size``; a smaller drawing is not scaled up), and a one-row
legend under the grid (``legend=False`` leaves it out). :func:`paper_fit` says what was chosen.
SVG keeps text as ``<text>`` with that family list; Graphviz's PDF (cairo) embeds the fonts.

``lowered=True`` draws the IR instead, after the compiler's default passes: one box per op the
compiler emits, labelled with the op and its output shape, grouped by the spec node it
implements, laid out by ``dot``. The map an upsample takes its size from is named in the op's
tooltip, not drawn: it is not data flow, and a line from one input to every resize in seven
stacked cells made the drawing unreadable.
"""

from __future__ import annotations

import os
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import graphviz

from .compiler import Analysis, SpecSource, analyze
from .expand import FlatSpec, NodeDecl
from .graph import base_of, dataflow, topological_order
from .ir import IRGraph, IROp
from .shape import FeatureShape

__all__ = [
    "render",
    "save",
    "paper_fit",
    "PaperFit",
    "FORMATS",
    "STYLES",
    "GraphvizMissing",
    "FUSE_COLOURS",
    "EDGE_COLOURS",
    "INSTALL_HINT",
    "PAPER_FONT",
    "PAPER_WIDTH",
    "MIN_FONT_PT",
]

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

STYLES = ("default", "paper")
"""What ``render(style=...)`` (``--style``) accepts."""

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
_LINE_GAP_PT = 3  # the spacer between a node's name and its post ops (see the module docstring)

PAPER_FONT = "Helvetica,Arial,Liberation Sans,DejaVu Sans,sans-serif"
"""The paper style's font: Graphviz lays out with the first one installed (Liberation Sans and
Arial have Helvetica's widths) and SVG names the whole list, so a viewer without Helvetica picks
the next rather than a serif default."""
PAPER_WIDTH = 7.0
"""The paper style's default ``width``: a two-column page's full text width, in inches."""
MIN_FONT_PT = 8.0
"""The smallest text the paper style aims for, in points, after scaling to ``width``."""
_PAPER_TARGET_PT = 8.5  # what the estimate aims for: Graphviz's own text widths may differ a little
_PAPER_SIZES = tuple(x / 2 for x in range(18, 33))  # 9 .. 16 pt, the first that fits wins
_PAPER_INPUT = "#ececec"
_PAPER_FILLS = ("#ffffff", "#c8c8c8", "#8f8f8f", "#e3e3e3", "#ababab", "#f5f5f5")
"""Paper fills, by how many drawn nodes have the kind (one input, or a fusion op): the commonest white."""
_PAPER_EDGES = {"down": ("#000000", "solid"), "up": ("#000000", "dashed"), "same": ("#7f7f7f", "solid")}
_PAPER_DIRECTIONS = {"down": "top-down", "up": "bottom-up", "same": "same level"}
_PAPER_CHAR_EM = 0.6  # a character of an identifier, in ems; Liberation Sans averages about 0.55
_PAPER_PAD = 0.05
_PAPER_HEIGHT = 100  # size's height: large, so that only the width limits the drawing
_LEGEND_SAMPLE = 0.28  # a legend entry: its sample's width, then a space (inches) wide enough
_LEGEND_SPACE = 0.12  # that neato's spline router does not find the text touching the sample
_LEGEND_CHAR = 0.92  # legend text is lower case and spaces, narrower than names (of _PAPER_CHAR_EM)


class GraphvizMissing(RuntimeError):
    """Graphviz's ``dot`` program is needed (for every format but DOT) and is not installed."""


@dataclass(frozen=True)
class PaperFit:
    """How a paper-style drawing was fitted to its width (estimated: text widths are guessed).

    ``natural_width`` and ``natural_height`` are the drawing's size in inches before scaling,
    ``scale`` is ``min(1, width / natural_width)`` (Graphviz's ``size`` never scales up), and
    ``min_font_pt`` the smallest text after scaling: ``font_pt * scale``."""

    width: float
    natural_width: float
    natural_height: float
    scale: float
    font_pt: float

    @property
    def min_font_pt(self) -> float:
        return self.font_pt * self.scale


@dataclass(frozen=True)
class _Look:
    """What the spec diagram's appearance depends on; the defaults are the default style.

    Grid measures are in inches. The edge-label geometry in :func:`_label_positions` was tuned
    at 9 pt; ``label_scale`` stretches it for other sizes."""

    paper: bool = False
    node_pt: float = 11
    label_pt: float = 9
    header_pt: float = 10
    title_pt: float = 12
    char: float = _CHAR
    label_char: float = _LABEL_CHAR
    title_char: float = _TITLE_CHAR
    box_margin: float = _BOX_MARGIN
    column_gap: float = _COLUMN_GAP
    row: float = _ROW
    level_gap: float = _LEVEL_GAP
    header_width: float = 0.8
    label_pad: float = 0.45
    label_scale: float = 1.0
    box_width: float = 0.0  # paper: the one width of every box (0: from its label)
    box_height: float = 0.0  # paper: the one height of every box (0: Graphviz's)
    cluster_margin: float = 12  # points
    ops: bool = True
    edge_labels: bool = True
    legend: bool = True
    cell: bool = False
    width: float | None = None


_DEFAULT_LOOK = _Look()


def _paper_look(font_pt: float, ops: bool, edge_labels: bool, legend: bool, cell: bool, width: float) -> _Look:
    """The paper style at ``font_pt``: text measures follow the font, gaps are fixed, so a larger
    font makes the text a larger part of the width (what :func:`_fit_paper` relies on)."""
    em = font_pt / 72
    lines = 2 if ops else 1
    box_height = lines * 1.2 * em + 0.06 + (_LINE_GAP_PT / 72 if ops else 0)
    vertical_gap = 0.24 + (2.4 * em if edge_labels else 0)  # room for an arrow (and a label) between rows
    return _Look(
        paper=True,
        node_pt=font_pt,
        label_pt=font_pt,
        header_pt=font_pt,
        title_pt=font_pt,
        char=_PAPER_CHAR_EM * em,
        label_char=_PAPER_CHAR_EM * em,
        title_char=_PAPER_CHAR_EM * em,
        box_margin=0.16,
        column_gap=0.3,
        row=box_height + vertical_gap,
        level_gap=0.08,
        header_width=7 * _PAPER_CHAR_EM * em + 0.15,  # "level 7"
        label_pad=0.3 + 0.5 * em,  # a label node in the middle of the gap, clear of neato's 4 pt router margin
        label_scale=font_pt / 9,
        box_height=box_height,
        cluster_margin=8,
        ops=ops,
        edge_labels=edge_labels,
        legend=legend,
        cell=cell,
        width=width,
    )


def render(
    spec: SpecSource,
    in_channels: Sequence[int] | Mapping[str, int] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    image: int | tuple[int, int] | None = None,
    lowered: bool = False,
    expand: bool = False,
    style: str = "default",
    width: float | None = None,
    legend: bool | None = None,
    edge_labels: bool | None = None,
    ops: bool | None = None,
    cell: bool | None = None,
    include_dirs: Sequence[str | os.PathLike] = (),
) -> graphviz.Digraph:
    """The diagram of ``spec`` as a ``graphviz.Digraph`` (the module docstring says what it shows).

    ``in_channels``, ``params`` and ``image`` are :func:`pyramidgraph.analyze`'s (the spec's
    ``example`` by default); the spec is checked first, so a broken one raises
    :class:`~pyramidgraph.SpecError`. ``expand`` draws every repetition of repeated blocks;
    ``lowered`` draws the IR the compiler emits (every op of every repetition).

    ``style`` is one of :data:`STYLES`. ``width`` (inches) makes Graphviz scale a wider drawing
    down to it (paper: :data:`PAPER_WIDTH`; default style: no limit). ``legend``,
    ``edge_labels`` (resample chains on the lines) and ``ops`` (post ops under a node's name)
    default to on in the default style and, but for the legend, to off in the paper style;
    ``cell`` (paper default, unless ``expand``) draws only one repetition of the neck's largest
    repeated block, with the maps it reads as its inputs. Raises ``ValueError`` for an unknown
    style, a width that is not positive, the paper style with ``lowered``, or ``cell`` with
    ``expand``.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
    if width is not None and not width > 0:
        raise ValueError(f"width must be a positive number of inches, got {width!r}")
    paper = style == "paper"
    if paper and lowered:
        raise ValueError("the paper style draws the spec, not the lowered IR; leave out one of them")
    if cell and expand:
        raise ValueError("cell draws one repetition and expand every one; leave out one of them")
    analysis = analyze(spec, in_channels, image=image, params=params, include_dirs=include_dirs)
    if lowered:
        return _lowered_diagram(analysis, width)
    if paper:
        options = dict(
            ops=bool(ops),
            edge_labels=bool(edge_labels),
            legend=legend is not False,
            cell=not expand if cell is None else cell,
            width=PAPER_WIDTH if width is None else float(width),
        )
        return _spec_diagram(analysis, expand, _paper_look(_PAPER_SIZES[0], **options))
    look = _DEFAULT_LOOK
    if (width, legend, edge_labels, ops, cell) != (None, None, None, None, None):
        look = replace(look, width=width, legend=legend is not False, edge_labels=edge_labels is not False, ops=ops is not False, cell=bool(cell))
    return _spec_diagram(analysis, expand, look)


def paper_fit(graph: graphviz.Digraph) -> PaperFit | None:
    """How :func:`render` fitted a paper-style ``graph`` to its width; None for other graphs."""
    return getattr(graph, "_pyramidgraph_fit", None)


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


def _merge_of(node: Any) -> Any:
    """What a box shows as the node's merge: its apply op, or its fuse when it has several inputs."""
    return node.apply if node.apply is not None else node.fuse if len(node.edges) > 1 else None


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


@dataclass(frozen=True)
class _Block:
    """A repeated block as the compact drawing shows it (keyed by its repetition-0 path)."""

    count: int  # repetitions
    shown: int = 0  # the repetition drawn
    like: int = 1  # how many repetitions are like the one drawn
    differ: bool = False  # whether they are not all alike


def _blocks(flat: FlatSpec) -> dict[str, _Block]:
    """Every repeated block, with the repetition to draw: the first of the commonest kind.

    Repetitions are alike when they have the same nodes with the same ``from`` lists and ops.
    Repetition 0 is drawn when all are alike (or all differ); FPG's first pathways pass most
    levels through, and the pathway its paper draws is the kind the later ones all share."""
    counts: dict[str, int] = {}
    kinds: dict[str, dict[int, set]] = {}
    for node in flat.nodes.values():
        reps = _repetitions(node.id)
        for block, rep in reps:
            key = _first_repetition(block)
            counts[key] = max(counts.get(key, 0), rep + 1)
        if not reps:
            continue
        block, rep = reps[-1]
        signature = (_local_name(node.id), tuple(_local_name(e.ref) for e in node.edges), _merge_of(node).label() if _merge_of(node) else "", tuple(op.label() for op in node.post))
        kinds.setdefault(_first_repetition(block), {}).setdefault(rep, set()).add(signature)
    blocks = {}
    for key, count in counts.items():
        groups: dict[frozenset, list[int]] = {}
        for rep, signatures in sorted(kinds.get(key, {}).items()):
            groups.setdefault(frozenset(signatures), []).append(rep)
        if len(groups) < 2:
            blocks[key] = _Block(count)
            continue
        best = max(groups.values(), key=lambda reps: (len(reps), -reps[0]))
        blocks[key] = _Block(count, best[0], len(best), True)
    return blocks


def _shown_as(node_id: str, blocks: Mapping[str, _Block]) -> str:
    """The id of the same node in the repetition drawn of every block around it."""
    parts = node_id.split(".")
    for i, part in enumerate(parts):
        if i and part.isdigit():
            block = blocks.get(_first_repetition(".".join(parts[:i])))
            parts[i] = str(block.shown if block else 0)
    return ".".join(parts)


def _crossed_block(node_id: str, source: str) -> str | None:
    """The block whose other repetition ``source`` belongs to, seen from ``node_id`` (a block
    input read in repetition k > 0 is repetition k - 1's output), or None."""
    for block, rep in _repetitions(node_id):
        if source.startswith(block + "."):
            other = source[len(block) + 1 :].split(".")[0]
            if other.isdigit() and int(other) != rep:
                return block
    return None


def _block_inputs(flat: FlatSpec) -> dict[tuple[str, str], str]:
    """``(block key, name) -> what the name reads from outside the block in repetition 0``.

    A block input is a plain name; in repetition 0 it is the outer map of that name, later the
    previous repetition's output. Drawing repetition k as fed by the block's inputs needs the
    first: it is read off repetition 0's edges."""
    found: dict[tuple[str, str], str] = {}
    for node in flat.nodes.values():
        for block, rep in _repetitions(node.id):
            if rep != 0:
                continue
            for edge in node.edges:
                if edge.source and not base_of(edge.source).startswith(block + "."):
                    found.setdefault((_first_repetition(block), edge.ref.split(".")[0]), base_of(edge.source))
    return found


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
    ops: bool = True  # whether the label has the post ops line

    @property
    def level(self) -> int:
        return self.shape.level

    @property
    def lines(self) -> list[str]:
        return [self.title] + ([" · ".join(self.post)] if self.post and self.ops else [])

    @property
    def label(self) -> str:
        return "\n".join(self.lines)


@dataclass
class _Edge:
    """One ``from`` entry."""

    tail: str
    head: str
    chain: list[str]  # resample op labels, in order
    tap: bool  # reads the ``.pre`` tap
    direction: str  # down, up or same (see EDGE_COLOURS)
    shown: bool = True  # whether the label is drawn

    @property
    def label(self) -> str:
        if not self.shown:
            return ""
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
    if node.apply is not None:  # an apply node reads its inputs as they are: no chains
        return [[] for _ in node.edges]
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


def _unused_optional_inputs(flat: FlatSpec) -> set[str]:
    """Optional inputs that no node reads and no output names: the spec takes them to ignore
    them (fpn below ``start`` or past ``used``), and a box with no line would look like a map
    the neck uses."""
    read = {base_of(edge.source) for node in flat.nodes.values() for edge in node.edges if edge.source}
    named = {base_of(output.source) for output in flat.outputs if output.source}
    return {decl.name for decl in flat.inputs if decl.optional and decl.name not in read | named}


def _spec_boxes(analysis: Analysis, expand: bool, look: _Look = _DEFAULT_LOOK) -> tuple[list[_Box], list[_Edge]]:
    """The inputs, nodes and edges to draw, in dataflow order (columns are placed later)."""
    flat, ir = analysis.flat, analysis.ir
    values = ir.values()
    producers = {op.name: op for op in ir.ops}
    every_block = _blocks(flat)
    blocks = {} if expand else every_block
    shown = (lambda node_id: node_id) if expand else (lambda node_id: _shown_as(node_id, blocks))
    block_inputs = {} if expand else _block_inputs(flat)
    outputs = {shown(base_of(o.source)) for o in flat.outputs if o.source}
    carried = set()  # what a repetition hands the next: the block's outputs
    for node in flat.nodes.values():
        for edge in node.edges:
            if edge.source and _crossed_block(node.id, base_of(edge.source)):
                carried.add(shown(base_of(edge.source)))

    boxes: dict[str, _Box] = {}
    hidden = _unused_optional_inputs(flat)
    for decl in flat.inputs:
        if decl.name in hidden:
            continue
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
            first = _first_repetition(block)
            key = f"{block}.{rep}" if expand else first
            name, count = block.split(".")[-1], every_block[first].count
            if expand:
                title = f"{name} {rep + 1}/{count}"
            else:
                info = every_block[first]
                title = f"{name} x{count}" + (f" (repetitions differ{f'; {info.like} of {count} as drawn' if info.like > 1 else ''})" if info.differ else "")
            clusters.append((key, title))
        fuse = _merge_of(node)
        post = [op.label() for op in node.post]
        tooltip = f"{node_id}: {_shape_text(shape)}" + (f"; fuse {fuse.label()}" if fuse else "") + (f"; post {', '.join(post)}" if post else "")
        boxes[node_id] = _Box(node_id, _local_name(node_id), shape, "node", fuse, post, node_id in outputs, clusters, tooltip, ops=look.ops)
        for edge, chain in zip(node.edges, _edge_chains(ir, node, producers)):
            source = base_of(edge.source)
            crossed = None if expand else _crossed_block(node_id, source)
            if crossed is not None:  # the previous repetition's output: what the block's input names
                source = block_inputs.get((_first_repetition(crossed), edge.ref.split(".")[0]))
                if source is None:
                    continue
            tail = shown(source)
            level = boxes[tail].level
            read = values.get(edge.source) if edge.source != source and not edge.source.endswith(".pre") else None
            if read is not None and not isinstance(read, tuple):  # output i of a node with one per level (DyHead's block): at its own level
                level = read.level
            direction = "down" if level > shape.level else "up" if level < shape.level else "same"
            if node.apply is not None and level != shape.level:  # an apply op reads the map at its own level: nothing resamples it
                chain = [f"level {level}"]
            edges.append(_Edge(tail, node_id, chain, edge.source.endswith(".pre"), direction, look.edge_labels))
    drawn = list(boxes.values())
    if look.cell:
        drawn, edges = _one_cell(drawn, edges, carried)
    return drawn, edges


def _one_cell(boxes: list[_Box], edges: list[_Edge], carried: set[str]) -> tuple[list[_Box], list[_Edge]]:
    """Only the largest outermost block (the first, of equal ones) and what it reads, drawn as
    its inputs, as a paper draws a cell; the whole neck when there is no block.

    The cell's outputs are what it hands its next repetition or the rest of the neck."""
    members: dict[str, list[_Box]] = {}
    for box in boxes:
        if box.clusters:
            members.setdefault(box.clusters[0][0], []).append(box)
    if not members:
        return boxes, edges
    inside = max(members.values(), key=len)
    names = {box.name for box in inside}
    read_outside = {edge.tail for edge in edges if edge.tail in names and edge.head not in names}
    sources = {edge.tail for edge in edges if edge.head in names and edge.tail not in names}
    cell_inputs = [_Box(box.name, _local_name(box.name), box.shape, tooltip=f"{box.name}, read by the block: {_shape_text(box.shape)}") for box in boxes if box.name in sources]
    for box in inside:
        box.output = box.output or box.name in carried or box.name in read_outside
    return cell_inputs + inside, [edge for edge in edges if edge.head in names]


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


def _place_columns(boxes: list[_Box], edges: list[_Edge], compact: bool = False) -> None:
    """Set every box's column: inputs 0, a node one more than its latest source.

    ``compact`` (the paper style) lets a node share the column of a source on an adjacent level
    (never column 0, the inputs'): the line between them is short and vertical, and a top-down or
    bottom-up chain is one column, as papers draw it, instead of a staircase.

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

    def earliest(box: _Box) -> int:
        if box.kind != "node":
            return 0
        if not compact:
            return 1 + max((by_name[s].column for s in sources[box.name]), default=0)
        return max([1] + [by_name[s].column + (abs(by_name[s].level - box.level) != 1) for s in sources[box.name]])

    minimum: dict[str, int] = {}
    for _ in range(len(boxes) + 1):  # each round moves at least one node past a block
        for box in boxes:  # dataflow order: sources first
            box.column = max(earliest(box), minimum.get(box.name, 0))
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


def _positions(boxes: list[_Box], edges: list[_Edge], look: _Look = _DEFAULT_LOOK) -> tuple[dict[str, tuple[float, float]], dict[int, float], float]:
    """Centre of every box (inches, y up), the y of every level's first row, and the x of the
    level headers' column.

    Rows: the levels from the coarsest down; a level has as many rows as the most maps that
    share one of its columns. Columns are as wide as their widest box, with room before them for
    the labels of the edges arriving from an earlier column (see :func:`_label_positions`)."""
    stacks: dict[tuple[int, int], list[_Box]] = {}
    for box in boxes:
        stacks.setdefault((box.level, box.column), []).append(box)
    rows_of_level: dict[int, int] = {}
    for (level, _), stack in stacks.items():
        rows_of_level[level] = max(rows_of_level.get(level, 0), len(stack))
    level_y: dict[int, float] = {}
    y = 0.0
    for level in sorted(rows_of_level):  # finest at the bottom
        y += (rows_of_level[level] - 1) * look.row
        level_y[level] = y
        y += look.row + look.level_gap

    by_name = {box.name: box for box in boxes}
    width: dict[int, float] = {}
    for box in boxes:
        width[box.column] = max(width.get(box.column, 0.0), _box_width(box, look))
    gap: dict[int, float] = {}
    for edge in edges:
        column = by_name[edge.head].column
        if edge.label and by_name[edge.tail].column < column:
            gap[column] = max(gap.get(column, 0.0), _text_width(edge.label, look.label_char) + look.label_pad)
    x = look.header_width
    column_x: dict[int, float] = {}
    for column in range(max(width) + 1):
        x += max(look.column_gap, gap.get(column, 0.0)) + width.get(column, 0.0) / 2
        column_x[column] = x
        x += width.get(column, 0.0) / 2
    centres = {}
    for (level, column), stack in stacks.items():
        for slot, box in enumerate(stack):
            centres[box.name] = (column_x[column], level_y[level] - slot * look.row)
    return centres, level_y, look.header_width / 2


def _pos(x: float, y: float) -> str:
    return f"{x:.2f},{y:.2f}!"


def _box_width(box: _Box, look: _Look = _DEFAULT_LOOK) -> float:
    return look.box_width or _text_width(box.label, look.char) + look.box_margin


def _label_positions(boxes: list[_Box], edges: list[_Edge], centres: dict[str, tuple[float, float]], look: _Look = _DEFAULT_LOOK) -> dict[int, tuple[float, float]]:
    """Where each labelled edge's label sits (by edge index): in the gap just left of the edge's
    head, on the straight line from the tail's centre to the head's; between the two boxes when
    they share a column (compact columns).

    A label is a small node the edge runs through, not an edge label: neato puts edge labels by
    a corner at the edge's middle, often over the line or far along it, and for an edge across
    several columns the middle is wherever other edges are. Here it is next to the map it feeds
    and the line stops at the text. Labels that would overlap move down, one line at a time."""
    by_name = {box.name: box for box in boxes}
    k = look.label_scale
    placed: list[tuple[float, float, float, float]] = []  # x, y, half width, half height
    where: dict[int, tuple[float, float]] = {}
    for index, edge in enumerate(edges):
        if not edge.label:
            continue
        head, tail = by_name[edge.head], by_name[edge.tail]
        (hx, hy), (tx, ty) = centres[head.name], centres[tail.name]
        lines = edge.label.count("\n") + 1
        half_w, half_h = _text_width(edge.label, look.label_char) / 2 + 0.04 * k, lines * (0.075 * k) + 0.03 * k
        x = hx - _box_width(head, look) / 2 - 0.15 * k - half_w
        if tail.column == head.column - 1:  # the whole gap is the edge's: its middle
            x = (tx + _box_width(tail, look) / 2 + hx - _box_width(head, look) / 2) / 2
        y = ty + (hy - ty) * (x - tx) / (hx - tx) if hx != tx else hy
        if tail.column == head.column:
            x, y = hx, (ty + hy) / 2
        while any(abs(x - px) < half_w + pw + 0.1 * k and abs(y - py) < half_h + ph + 0.06 * k for px, py, pw, ph in placed):
            y -= 2 * half_h + 0.06 * k
        placed.append((x, y, half_w, half_h))
        where[index] = (x, y)
    return where


# -- the default style --------------------------------------------------------------------------------


def _spec_diagram(analysis: Analysis, expand: bool, look: _Look = _DEFAULT_LOOK) -> graphviz.Digraph:
    flat: FlatSpec = analysis.flat
    boxes, edges = _spec_boxes(analysis, expand, look)
    _place_columns(boxes, edges, compact=look.paper)
    if look.paper:
        return _paper_diagram(flat, boxes, edges, look)
    centres, level_y, header_x = _positions(boxes, edges, look)

    g = graphviz.Digraph(flat.name, engine="neato", graph_attr=dict(_GRAPH_ATTR), node_attr=dict(_NODE_ATTR), edge_attr=dict(_EDGE_ATTR))
    # layout=neato also when someone runs `dot -Tpng` on the DOT file; every node is pinned and
    # splines=true routes the edges around the boxes
    g.attr(layout="neato", splines="true", overlap="true", outputorder="edgesfirst", label=flat.name, labelloc="t", fontsize="14")
    if look.width is not None:
        g.attr(size=f"{look.width:g},{_PAPER_HEIGHT}")
    for level in sorted(level_y, reverse=True):
        g.node(f"#level_{level}", f"level {level}\n/{2**level}", shape="plaintext", style="", fontsize="10", fontcolor="#666666", pos=_pos(header_x, level_y[level]))

    def dress(sub: graphviz.Digraph, key: str, inside: list[_Box], depth: int) -> None:
        sub.attr(label=inside[0].clusters[depth][1], style="rounded,dashed", color="#888888", fontsize="12", labeljust="l", margin="12")

    def title(sub: graphviz.Digraph, key: str, inside: list[_Box], depth: int) -> None:
        # neato sizes a box to its members and writes the title over whatever is at its
        # top: an empty member above the top row keeps the title's place free
        left = min(centres[b.name][0] - _box_width(b) / 2 for b in inside)
        top = max(centres[b.name][1] for b in inside) + 0.45 + 0.3 * (max(len(b.clusters) for b in inside) - depth - 1)
        width = len(inside[0].clusters[depth][1]) * _TITLE_CHAR
        sub.node(f"#title_{key}", "", shape="plaintext", style="", width=f"{width:.2f}", height="0.2", fixedsize="true", pos=_pos(left + width / 2, top))

    _emit_nested(g, boxes, 0, lambda parent, box: _emit_box(parent, box, centres[box.name]), dress, title)
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

    if look.legend:
        right = max(centres[b.name][0] + _box_width(b) / 2 for b in boxes)
        _legend(g, boxes, edges, right + _COLUMN_GAP, min(level_y.values()) - _ROW / 2)
    return g


def _label_markup(lines: list[str]) -> str:
    """A node's label: plain text for one line; for two, an HTML-like table with a spacer row,
    so that an underscore in the first line does not sit on the second (module docstring)."""
    if len(lines) == 1:
        return lines[0]
    rows = f'<TR><TD HEIGHT="{_LINE_GAP_PT}"></TD></TR>'.join(f"<TR><TD>{_html(line)}</TD></TR>" for line in lines)
    return f'<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0">{rows}</TABLE>>'


def _emit_nested(parent: graphviz.Digraph, members: list[_Box], depth: int, emit_box: Callable, dress: Callable, title: Callable) -> None:
    """Write boxes into Graphviz clusters nested by each box's ``clusters`` path (a block inside
    a block is a cluster inside a cluster). ``dress`` styles a cluster before its members are
    written, ``title`` adds its title's placeholder after them; both styles share the walk."""
    inner: dict[str, list[_Box]] = {}
    for box in members:
        if len(box.clusters) > depth:
            inner.setdefault(box.clusters[depth][0], []).append(box)
        else:
            emit_box(parent, box)
    for key, inside in inner.items():
        with parent.subgraph(name=f"cluster_{key}") as sub:
            dress(sub, key, inside, depth)
            _emit_nested(sub, inside, depth + 1, emit_box, dress, title)
            title(sub, key, inside, depth)


def _emit_box(g: graphviz.Digraph, box: _Box, centre: tuple[float, float]) -> None:
    attrs = {"tooltip": box.tooltip, "pos": _pos(*centre)}
    if box.kind == "input":
        attrs.update(fillcolor=INPUT_COLOUR, style="filled")
    else:
        attrs["fillcolor"] = _fuse_colour(box.fuse.name) if box.fuse is not None else NO_FUSION_COLOUR
    if box.output:
        attrs.update(peripheries="2", penwidth="1.6")
    g.node(box.name, _label_markup(box.lines), **attrs)


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


def _dot_escape(text: str) -> str:
    """``text`` in a DOT string where escapes (``\\l``) are read: a backslash doubled."""
    return text.replace("\\", "\\\\")


# -- the paper style ----------------------------------------------------------------------------------


@dataclass
class _PaperLayout:
    """Everything placed, in inches (y up), and the extent of what Graphviz will draw."""

    look: _Look
    centres: dict[str, tuple[float, float]]
    level_y: dict[int, float]
    header_x: float
    labels: dict[int, tuple[float, float]]
    titles: dict[str, tuple[float, float, float]]  # block key -> centre x, y and width of its title's place
    legend: list[tuple[str, str, dict[str, str], float, float, float]]  # kind, text, attributes, x, y, text width
    bounds: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, bottom, right, top

    @property
    def natural_width(self) -> float:
        return self.bounds[2] - self.bounds[0] + 2 * _PAPER_PAD

    @property
    def natural_height(self) -> float:
        return self.bounds[3] - self.bounds[1] + 2 * _PAPER_PAD


def _paper_fills(boxes: list[_Box]) -> dict[str, str]:
    """Legend text -> fill of every kind of node drawn (one input, or a fusion op), the
    commonest kind white, the next ones darker greys: print keeps them apart, colours it may not."""
    counts: dict[str, int] = {}
    for box in boxes:
        if box.kind == "node":
            kind = f"fuse: {box.fuse.label()}" if box.fuse is not None else "one input"
            counts[kind] = counts.get(kind, 0) + 1
    ranked = sorted(counts, key=lambda kind: -counts[kind])  # stable: first drawn first among equals
    return {kind: _PAPER_FILLS[i % len(_PAPER_FILLS)] for i, kind in enumerate(ranked)}


def _paper_kind(box: _Box) -> str:
    return f"fuse: {box.fuse.label()}" if box.fuse is not None else "one input"


def _paper_layout(boxes: list[_Box], edges: list[_Edge], look: _Look) -> _PaperLayout:
    """The grid at ``look``'s font size, every box as wide as the widest (a paper's figure has
    one box size), the blocks' titles, the legend rows under the grid, and the extent of it all."""
    look = replace(look, box_width=max(_box_width(box, look) for box in boxes))
    centres, level_y, header_x = _positions(boxes, edges, look)
    labels = _label_positions(boxes, edges, centres, look)
    width, height = look.box_width, look.box_height
    line = 1.2 * look.node_pt / 72
    border = {box.name: 0.06 if box.output else 0.0 for box in boxes}  # a double border is 4 pt outside
    left = min(centres[name][0] - width / 2 - border[name] for name in centres)
    right = max(centres[name][0] + width / 2 + border[name] for name in centres)
    bottom = min(centres[name][1] - height / 2 - border[name] for name in centres)
    top = max(centres[name][1] + height / 2 + border[name] for name in centres)
    header_w = max(len(f"level {level}") for level in level_y) * look.char
    left = min(left, header_x - header_w / 2)

    titles: dict[str, tuple[float, float, float]] = {}
    members: dict[str, list[_Box]] = {}
    for box in boxes:
        for key, _ in box.clusters:
            members.setdefault(key, []).append(box)
    margin = look.cluster_margin / 72
    for key, inside in members.items():
        depth = next(i for i, (k, _) in enumerate(inside[0].clusters) if k == key)
        title = inside[0].clusters[depth][1]
        nested = max(len(b.clusters) for b in inside) - depth - 1
        box_left = min(centres[b.name][0] for b in inside) - width / 2
        title_w = len(title) * look.title_char
        # above the top row and a double border's 4 pt
        y = max(centres[b.name][1] for b in inside) + height / 2 + 0.06 + line / 2 + 0.04 + nested * (line + 2 * margin)
        titles[key] = (box_left + title_w / 2, y, title_w)
        left = min(left, box_left - margin * (nested + 1))
        right = max(right, box_left + title_w + margin, max(centres[b.name][0] for b in inside) + width / 2 + margin * (nested + 1))
        top = max(top, y + line / 2 + margin)
        bottom = min(bottom, min(centres[b.name][1] for b in inside) - height / 2 - margin * (nested + 1))
    for index, (x, _) in labels.items():
        half = _text_width(edges[index].label, look.label_char) / 2 + 0.04
        left, right = min(left, x - half), max(right, x + half)

    legend: list[tuple[str, str, dict[str, str], float, float, float]] = []
    if look.legend:
        x, y = left, bottom - 0.12 - line / 2
        for kind, text, attrs in _paper_legend_entries(boxes, edges, look):
            text_w = len(text) * look.label_char * _LEGEND_CHAR
            end = x + _LEGEND_SAMPLE + _LEGEND_SPACE + text_w
            if x > left and end > max(right, left + 3.0):  # a new row, but never narrower than 3 in
                x, y = left, y - line - 0.08
                end = x + _LEGEND_SAMPLE + _LEGEND_SPACE + text_w
            legend.append((kind, text, attrs, x, y, text_w))
            right = max(right, end)
            x = end + 0.18
        bottom = min(bottom, y - line / 2)
    layout = _PaperLayout(look, centres, level_y, header_x, labels, titles, legend)
    layout.bounds = (left, bottom, right, top)
    return layout


def _paper_legend_entries(boxes: list[_Box], edges: list[_Edge], look: _Look) -> list[tuple[str, str, dict[str, str]]]:
    """What the paper legend shows: (``box`` or ``line``, text, the sample's attributes)."""
    entries: list[tuple[str, str, dict[str, str]]] = []
    noun = "cell " if look.cell and any(box.clusters for box in boxes) else ""
    if any(box.kind == "input" for box in boxes):
        entries.append(("box", f"{noun}input", {"style": "filled", "fillcolor": _PAPER_INPUT}))
    for text, fill in _paper_fills(boxes).items():
        entries.append(("box", text, {"style": "rounded,filled", "fillcolor": fill}))
    if any(box.output for box in boxes):
        entries.append(("box", f"{noun}output", {"style": "rounded,filled", "fillcolor": "#ffffff", "peripheries": "2"}))
    for direction in [d for d in _PAPER_EDGES if any(e.direction == d for e in edges)]:
        colour, line_style = _PAPER_EDGES[direction]
        entries.append(("line", _PAPER_DIRECTIONS[direction], {"color": colour, "style": line_style}))
    return entries


def _fit_paper(boxes: list[_Box], edges: list[_Edge], look: _Look, name: str) -> tuple[_PaperLayout, PaperFit]:
    """The smallest font size (from 9 pt) at which the smallest text, once the drawing is scaled
    down to ``look.width``, is at least :data:`_PAPER_TARGET_PT`; warns when none up to 16 pt is.

    Every text is one size and every gap a fixed length, so scaling the font by f scales the
    drawing's width by less than f: a larger font helps a wide drawing, up to a point."""
    assert look.width is not None
    best: tuple[_PaperLayout, PaperFit] | None = None
    for font_pt in _PAPER_SIZES:
        layout = _paper_layout(boxes, edges, _paper_look(font_pt, look.ops, look.edge_labels, look.legend, look.cell, look.width))
        fit = PaperFit(look.width, layout.natural_width, layout.natural_height, min(1.0, look.width / layout.natural_width), font_pt)
        if best is None or fit.min_font_pt > best[1].min_font_pt + 1e-9:
            best = (layout, fit)
        if fit.min_font_pt >= _PAPER_TARGET_PT:
            return layout, fit
    layout, fit = best
    if fit.min_font_pt < MIN_FONT_PT:
        warnings.warn(
            f"{name}: at {look.width:g} in wide the smallest text is {fit.min_font_pt:.1f} pt, under {MIN_FONT_PT:g} pt"
            f" (the drawing is {fit.natural_width:.1f} in wide at {fit.font_pt:g} pt); give it more width, or draw less (edge labels, ops)",
            stacklevel=5,  # the warning names the line that called render
        )
    return layout, fit


def _paper_diagram(flat: FlatSpec, boxes: list[_Box], edges: list[_Edge], look: _Look) -> graphviz.Digraph:
    layout, fit = _fit_paper(boxes, edges, look, flat.name)
    look = layout.look
    size = f"{look.node_pt:g}"
    g = graphviz.Digraph(
        flat.name,
        engine="neato",
        graph_attr={"fontname": PAPER_FONT, "fontsize": size, "bgcolor": "white", "pad": f"{_PAPER_PAD:g}"},
        node_attr={"fontname": PAPER_FONT, "fontsize": size, "shape": "box", "style": "rounded,filled", "penwidth": "0.8", "margin": "0.05,0.03"},
        edge_attr={"fontname": PAPER_FONT, "fontsize": size, "arrowsize": "0.5", "penwidth": "0.8"},
    )
    comment = f"paper style: {fit.natural_width:.2f} x {fit.natural_height:.2f} in at {fit.font_pt:g} pt, scaled by {fit.scale:.3f} to fit {fit.width:g} in: smallest text {fit.min_font_pt:.1f} pt (estimated)"
    g.attr(layout="neato", splines="true", overlap="true", outputorder="edgesfirst", size=f"{fit.width:g},{_PAPER_HEIGHT}", comment=comment)
    g._pyramidgraph_fit = fit  # type: ignore[attr-defined]  # read by paper_fit()
    box_w, box_h = f"{look.box_width:.2f}", f"{look.box_height:.2f}"
    for level in sorted(layout.level_y, reverse=True):
        g.node(f"#level_{level}", f"level {level}", shape="plaintext", style="", fontcolor="#444444", width="0", height="0", margin="0", pos=_pos(layout.header_x, layout.level_y[level]))

    fills = _paper_fills(boxes)

    def emit_box(parent: graphviz.Digraph, box: _Box) -> None:
        attrs = {"tooltip": box.tooltip, "pos": _pos(*layout.centres[box.name]), "width": box_w, "height": box_h}
        if box.kind == "input":
            attrs.update(fillcolor=_PAPER_INPUT, style="filled")
        else:
            attrs["fillcolor"] = fills[_paper_kind(box)]
        if box.output:
            attrs.update(peripheries="2")
        parent.node(box.name, _label_markup(box.lines), **attrs)

    def dress(sub: graphviz.Digraph, key: str, inside: list[_Box], depth: int) -> None:
        sub.attr(label=inside[0].clusters[depth][1], style="rounded,dashed", color="#7f7f7f", labeljust="l", margin=f"{look.cluster_margin:g}")

    def title(sub: graphviz.Digraph, key: str, inside: list[_Box], depth: int) -> None:
        x, y, title_w = layout.titles[key]
        sub.node(f"#title_{key}", "", shape="plaintext", style="", width=f"{title_w:.2f}", height=f"{1.2 * look.title_pt / 72:.2f}", fixedsize="true", pos=_pos(x, y))

    _emit_nested(g, boxes, 0, emit_box, dress, title)
    for index, edge in enumerate(edges):
        colour, line_style = _PAPER_EDGES[edge.direction]
        attrs = {"color": colour} | ({"style": line_style} if line_style != "solid" else {})
        if index in layout.labels:
            name = f"#label_{index}"
            g.node(name, edge.label, shape="plaintext", style="", fontcolor=colour, margin="0.02,0.01", width="0", height="0", pos=_pos(*layout.labels[index]))
            g.edge(edge.tail, name, arrowhead="none", **attrs)
            g.edge(name, edge.head, **attrs)
        else:
            g.edge(edge.tail, edge.head, **attrs)

    if layout.legend:
        with g.subgraph(name="cluster_legend") as legend:
            legend.attr(label="", style="invis")
            sample_h = f"{look.node_pt / 72:.2f}"
            for i, (kind, text, attrs, x, y, text_w) in enumerate(layout.legend):
                if kind == "box":
                    legend.node(f"#legend_{i}", "", shape="box", width=f"{_LEGEND_SAMPLE:g}", height=sample_h, fixedsize="true", pos=_pos(x + _LEGEND_SAMPLE / 2, y), **attrs)
                else:  # a real line between two invisible points: a dashed line reads as one only drawn
                    legend.node(f"#legend_{i}", "", shape="point", style="invis", width="0.01", pos=_pos(x, y))
                    legend.node(f"#legend_{i}_end", "", shape="point", style="invis", width="0.01", pos=_pos(x + _LEGEND_SAMPLE, y))
                    legend.edge(f"#legend_{i}", f"#legend_{i}_end", **{"color": attrs["color"]} | ({"style": attrs["style"]} if attrs["style"] != "solid" else {}))
                # as wide as the estimate and left-justified (\l), so the text starts where it should
                # whatever the font's real widths
                left = x + _LEGEND_SAMPLE + _LEGEND_SPACE
                legend.node(f"#legend_{i}_text", _dot_escape(text) + "\\l", shape="plaintext", style="", width=f"{text_w:.2f}", height="0", margin="0", pos=_pos(left + text_w / 2, y))
    return g


# -- the lowered diagram ----------------------------------------------------------------------------


def _lowered_diagram(analysis: Analysis, width: float | None = None) -> graphviz.Digraph:
    ir = analysis.compilation.run("passes").optimised
    outputs = {value for _, value in ir.outputs}
    hidden = _unused_optional_inputs(analysis.flat)
    g = graphviz.Digraph(f"{ir.name}_lowered", graph_attr=dict(_GRAPH_ATTR), node_attr=dict(_NODE_ATTR), edge_attr=dict(_EDGE_ATTR))
    g.attr(rankdir="LR", splines="spline", nodesep="0.15", ranksep="0.35", label=f"{ir.name} (lowered: {len(ir.ops)} ops)", labelloc="t", fontsize="14")
    if width is not None:
        g.attr(size=f"{width:g},{_PAPER_HEIGHT}")
    for name, shape in ir.inputs:
        if name in hidden:
            continue
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
                shapes = op.shape if isinstance(op.shape, tuple) else (op.shape,)  # an op with several outputs shows each
                sub.node(op.name, f"{op.op.label()}\n{' | '.join(_shape_text(s) for s in shapes)}", fillcolor=colour, tooltip=tooltip, **attrs)
    for op in ir.ops:
        for arg in _tensor_args(op):
            g.edge(arg, op.name)
    return g


def _tensor_args(op: IROp) -> list[str]:
    """The values an op computes on; an edge op's further arguments are size references (the
    map whose size an upsample takes), which are not data flow and are not drawn."""
    return op.args[:1] if op.meta.get("role") == "edge" else op.args
