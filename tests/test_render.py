"""Diagrams (``pyramidgraph.render`` and ``pyramidgraph render``).

The DOT text is parsed here (a small parser for the subset Graphviz's Python package writes)
and checked for structure: one box per map, one line into a node per ``from`` entry, resample
labels, rows by level and columns by dataflow, blocks titled "x N". Every bundled spec is also
drawn to PNG through Graphviz, whose own layout must keep the rows. The paper style is checked
in the SVG and PDF Graphviz writes: the scale it applies, the text sizes after it, the fonts.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

import pyramidgraph
from pyramidgraph.cli import main
from pyramidgraph.graph import base_of
from pyramidgraph.passes import DEFAULT_PASSES, PASSES, run_passes
from pyramidgraph.render import MIN_FONT_PT, PAPER_FONT, GraphvizMissing, paper_fit, render, save

SPECS = sorted(pyramidgraph.bundled_specs())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
needs_graphviz = pytest.mark.skipif(shutil.which("neato") is None, reason="Graphviz is not installed")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None or shutil.which("neato") is None, reason="Graphviz (dot, neato) is not installed: SVG and PDF are written by it, DOT text is checked without it")

BLUE, RED, GREY = "#1f5f9e", "#b03a2e", "#555555"  # top-down, bottom-up, same level
SUM, WHITE, INPUT = "#cfe2f3", "#ffffff", "#e6e6e6"

TINY = """\
pyramidgraph: 1
name: tiny_fpn
inputs: {C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}
defaults: {channels: 64}
nodes:
  P5: {from: [C5]}
  P4: {from: [C4, P5], post: [conv3x3]}
  P3: {from: [C3, P4], post: [conv3x3, relu]}
  P6: {level: 6, from: [P5], resample: {down: {maxpool: {kernel: 1}}}}
outputs: [P3, P4, P5, P6]
"""
TINY_WIDTHS = [32, 64, 128]

# A block repeated twice; its repetitions differ (the second ends Q5 with a relu).
TWICE = {
    "pyramidgraph": 1,
    "name": "twice",
    "inputs": {"C4": {"level": 4, "channels": 8}, "C5": {"level": 5, "channels": 8}},
    "defaults": {"channels": 8},
    "nodes": {
        "cell": {
            "repeat": 2,
            "inputs": ["C4", "C5"],
            "outputs": ["Q4", "Q5"],
            "nodes": {"Q5": {"from": ["C5"], "post": "${['relu'] if rep == 1 else []}"}, "Q4": {"from": ["C4", "Q5"], "post": ["conv3x3"]}},
        }
    },
    "outputs": ["cell.Q4", "cell.Q5"],
}


# -- a parser for the DOT that graphviz.Digraph writes -------------------------------------------


@dataclass
class Dot:
    graph: dict[str, str] = field(default_factory=dict)
    node_defaults: dict[str, str] = field(default_factory=dict)
    edge_defaults: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    clusters: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> attributes
    members: dict[str, list[str]] = field(default_factory=dict)  # cluster -> nodes declared in it (nested ones too)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def shape(self, name: str) -> str:
        return self.nodes[name].get("shape", self.node_defaults.get("shape", "ellipse"))

    def boxes(self) -> set[str]:
        return {name for name in self.nodes if self.shape(name) == "box" and "invis" not in self.nodes[name].get("style", "")}

    def pos(self, name: str) -> tuple[float, float]:
        x, y = self.nodes[name]["pos"].rstrip("!").split(",")
        return float(x), float(y)

    def from_entries(self) -> list[tuple[str, str, str | None, str]]:
        """(tail, head, label text or None, colour) per line ending at a box: a labelled edge
        runs through a plaintext label node."""
        into: dict[str, tuple[str, dict[str, str]]] = {head: (tail, attrs) for tail, head, attrs in self.edges if head.startswith("#label_")}
        entries = []
        for tail, head, attrs in self.edges:
            if head.startswith("#label_"):
                continue
            if tail.startswith("#label_"):
                source, first = into[tail]
                assert first.get("arrowhead") == "none" and first["color"] == attrs["color"]
                entries.append((source, head, self.nodes[tail]["label"], attrs["color"]))
            else:
                entries.append((tail, head, None, attrs["color"]))
        return entries


def _tokens(text: str):
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            j, out = i + 1, []
            while text[j] != '"':
                if text[j] == "\\" and text[j + 1] in '"\\':
                    j += 1
                out.append(text[j])
                j += 1
            yield "".join(out)
            i = j + 1
        elif c == "<":  # an HTML label, kept whole
            depth, j = 0, i
            while True:
                depth += {"<": 1, ">": -1}.get(text[j], 0)
                j += 1
                if depth == 0:
                    break
            yield text[i:j]
            i = j
        elif text.startswith("->", i):
            yield "->"
            i += 2
        elif c in "{}[]=;,":
            yield c
            i += 1
        else:
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in '{}[]=;,"<' and not text.startswith("->", j):
                j += 1
            yield text[i:j]
            i = j


def parse_dot(text: str) -> Dot:
    tokens = list(_tokens(text))
    dot = Dot()
    at = 0

    def attrs() -> dict[str, str]:
        nonlocal at
        found: dict[str, str] = {}
        if at < len(tokens) and tokens[at] == "[":
            at += 1
            while tokens[at] != "]":
                key, eq, value = tokens[at : at + 3]
                assert eq == "="
                found[key] = value
                at += 3
                if tokens[at] in ",;":
                    at += 1
            at += 1
        return found

    def body(clusters: list[str]) -> None:
        nonlocal at
        while tokens[at] != "}":
            token = tokens[at]
            if token in ("graph", "node", "edge") and tokens[at + 1] == "[":
                at += 1
                found = attrs()
                if not clusters:
                    {"graph": dot.graph, "node": dot.node_defaults, "edge": dot.edge_defaults}[token].update(found)
            elif token in ("subgraph", "{"):
                name = None
                if token == "subgraph":
                    at += 1
                    if tokens[at] != "{":
                        name, at = tokens[at], at + 1
                at += 1  # {
                inner = clusters + [name] if name and name.startswith("cluster") else clusters
                if name and name.startswith("cluster"):
                    dot.clusters[name] = {}
                body(inner)
                at += 1  # }
            elif tokens[at + 1] == "=":
                target = dot.clusters[clusters[-1]] if clusters else dot.graph
                target[token] = tokens[at + 2]
                at += 3
            elif tokens[at + 1] == "->":
                tail, head = token, tokens[at + 2]
                at += 3
                dot.edges.append((tail, head, attrs()))
            else:
                at += 1
                dot.nodes.setdefault(token, {}).update(attrs())
                for cluster in clusters:
                    dot.members.setdefault(cluster, []).append(token)
            if at < len(tokens) and tokens[at] == ";":
                at += 1

    assert tokens[0] == "digraph"
    at = tokens.index("{") + 1
    body([])
    return dot


def text_of(label: str) -> str:
    """A node label's lines, joined by newlines: plain, or the two-line HTML table render writes."""
    if not label.startswith("<"):
        return label
    return "\n".join(html.unescape(cell) for cell in re.findall(r"<TD>([^<]*)</TD>", label))


# -- what the tests expect of a spec, from the spec itself ---------------------------------------------


_IN_BLOCK = re.compile(r"([^.]+)\.(\d+)\.(.*)")  # repetition k of block `cell` is named cell.k.NAME


def _drawn_repetitions(dot: Dot) -> dict[str, int]:
    """Block -> the one repetition the compact drawing shows, read off the boxes' names."""
    found: dict[str, set[int]] = {}
    for name in dot.boxes():
        match = _IN_BLOCK.match(name)
        if match:
            found.setdefault(match[1], set()).add(int(match[2]))
    assert all(len(reps) == 1 for reps in found.values()), found
    return {block: min(reps) for block, reps in found.items()}


def _expected_tail(node, edge, reps: dict[str, int]) -> str:
    """The box a `from` entry is drawn from: the map it reads, in the repetition drawn; a block
    input read in a later repetition (the previous repetition's output) is drawn from the outer
    map the block input names, which is what repetition 0 reads."""
    source = base_of(edge.source)
    match, here = _IN_BLOCK.match(source), _IN_BLOCK.match(node.id)
    if match and here and match[1] == here[1] and match[2] != here[2]:
        return edge.ref.split(".")[0]
    return f"{match[1]}.{reps[match[1]]}.{match[3]}" if match else source


def _used_inputs(flat) -> set[str]:
    """Every input but the optional ones nothing reads (the drawing leaves those out)."""
    read = {base_of(e.source) for node in flat.nodes.values() for e in node.edges} | {base_of(o.source) for o in flat.outputs}
    return {d.name for d in flat.inputs if d.name in read or not d.optional}


def _levels(analysis) -> dict[str, int]:
    values = analysis.ir.values()
    return {name: values[value].level for name, value in analysis.ir.node_values.items() if not name.endswith(".pre")}


# -- a small FPN, written out by hand --------------------------------------------------------------------


def test_tiny_fpn_boxes_labels_fills_and_outputs():
    dot = parse_dot(render(TINY, TINY_WIDTHS).source)
    assert dot.boxes() == {"C3", "C4", "C5", "P3", "P4", "P5", "P6"}
    labels = {name: text_of(dot.nodes[name]["label"]) for name in dot.boxes()}
    assert labels == {"C3": "C3", "C4": "C4", "C5": "C5", "P5": "P5", "P4": "P4\nconv3x3", "P3": "P3\nconv3x3 · relu", "P6": "P6"}
    fills = {name: dot.nodes[name]["fillcolor"] for name in dot.boxes()}
    assert fills == {"C3": INPUT, "C4": INPUT, "C5": INPUT, "P5": WHITE, "P6": WHITE, "P4": SUM, "P3": SUM}
    assert {name for name in dot.boxes() if dot.nodes[name].get("peripheries") == "2"} == {"P3", "P4", "P5", "P6"}
    assert dot.graph["layout"] == "neato" and dot.graph["splines"] == "true"


def test_tiny_fpn_edges_are_the_from_entries_with_their_resample_chain():
    dot = parse_dot(render(TINY, TINY_WIDTHS).source)
    assert sorted(dot.from_entries()) == sorted(
        [
            ("C5", "P5", "1x1 proj", GREY),  # 128 -> 64 channels
            ("C4", "P4", None, GREY),  # already 64 wide, same level: nothing to do
            ("P5", "P4", "up x2", BLUE),
            ("C3", "P3", "1x1 proj", GREY),
            ("P4", "P3", "up x2", BLUE),
            ("P5", "P6", "maxpool /2", RED),
        ]
    )


def test_tiny_fpn_grid_levels_are_rows_and_dataflow_runs_left_to_right():
    dot = parse_dot(render(TINY, TINY_WIDTHS).source)
    x = {name: dot.pos(name)[0] for name in dot.boxes()}
    y = {name: dot.pos(name)[1] for name in dot.boxes()}
    # rows: one per level, coarsest on top (y grows upwards), the level's header beside it
    assert y["P6"] > y["C5"] == y["P5"] > y["C4"] == y["P4"] > y["C3"] == y["P3"]
    for level, row in [(6, "P6"), (5, "C5"), (4, "C4"), (3, "C3")]:
        assert dot.pos(f"#level_{level}")[1] == y[row]
        assert dot.nodes[f"#level_{level}"]["label"] == f"level {level}\n/{2**level}"
    # columns: inputs 0, P5 1, P4 and P6 2, P3 3 (one right of the latest source)
    assert x["C3"] == x["C4"] == x["C5"] < x["P5"] < x["P4"] == x["P6"] < x["P3"]
    assert all(dot.pos(f"#level_{level}")[0] < x["C3"] for level in (3, 4, 5, 6))


def test_tiny_fpn_legend_lists_the_fills_and_edge_colours_used():
    dot = parse_dot(render(TINY, TINY_WIDTHS).source)
    assert dot.members["cluster_legend"] == ["#legend"]
    table = dot.nodes["#legend"]["label"]
    cells = re.findall(r'BGCOLOR="(#[0-9a-f]+)"[^>]*></TD><TD[^>]*>([^<]+)</TD>', table)
    assert cells == [(INPUT, "input"), (SUM, "fuse: sum"), (WHITE, "one input, no fusion")]
    assert re.findall(r'<FONT COLOR="(#[0-9a-f]+)">([^<&]+)</FONT>', table) == [
        (BLUE, "top-down (to a finer level)"),
        (RED, "bottom-up (to a coarser level)"),
        (GREY, "same level"),
    ]


def test_tiny_fpn_lowered_draws_every_ir_op_with_its_shape():
    dot = parse_dot(render(TINY, TINY_WIDTHS, lowered=True).source)
    labels = {name: dot.nodes[name]["label"] for name in dot.boxes()}
    assert labels == {
        "C3": "C3\n32 ch · /8",
        "C4": "C4\n64 ch · /16",
        "C5": "C5\n128 ch · /32",
        "P5": "1x1 proj\n64 ch · /32",
        "P4.from_P5": "up x2\n64 ch · /16",
        "P4.pre": "sum\n64 ch · /16",
        "P4": "conv3x3\n64 ch · /16",
        "P3.from_C3": "1x1 proj\n64 ch · /8",
        "P3.from_P4": "up x2\n64 ch · /8",
        "P3.pre": "sum\n64 ch · /8",
        "P3.post0": "conv3x3\n64 ch · /8",
        "P3": "relu\n64 ch · /8",
        "P6": "maxpool /2\n64 ch · /64",
    }
    assert sorted((tail, head) for tail, head, _ in dot.edges) == sorted(
        [
            ("C5", "P5"),
            ("P5", "P4.from_P5"),
            ("C4", "P4.pre"),
            ("P4.from_P5", "P4.pre"),
            ("P4.pre", "P4"),
            ("C3", "P3.from_C3"),
            ("P4", "P3.from_P4"),
            ("P3.from_C3", "P3.pre"),
            ("P3.from_P4", "P3.pre"),
            ("P3.pre", "P3.post0"),
            ("P3.post0", "P3"),
            ("P5", "P6"),
        ]
    )
    # grouped by the spec node each op implements
    assert {name: sorted(members) for name, members in dot.members.items()} == {
        "cluster_P5": ["P5"],
        "cluster_P4": ["P4", "P4.from_P5", "P4.pre"],
        "cluster_P3": ["P3", "P3.from_C3", "P3.from_P4", "P3.post0", "P3.pre"],
        "cluster_P6": ["P6"],
    }
    assert dot.graph["label"] == "tiny_fpn (lowered: 10 ops)"


# -- repeated blocks ----------------------------------------------------------------------------------------


def test_repeated_block_is_drawn_once_titled_x_n():
    dot = parse_dot(render(TWICE).source)
    assert dot.clusters["cluster_cell"]["label"] == "cell x2 (repetitions differ)"
    assert [m for m in dot.members["cluster_cell"] if not m.startswith("#")] == ["cell.0.Q5", "cell.0.Q4"]
    assert dot.boxes() == {"C4", "C5", "cell.0.Q5", "cell.0.Q4"}
    assert {name: text_of(dot.nodes[name]["label"]) for name in ("cell.0.Q5", "cell.0.Q4")} == {"cell.0.Q5": "Q5", "cell.0.Q4": "Q4\nconv3x3"}
    # the outputs are the last repetition's, shown on repetition 0; the edges from repetition 0
    # into repetition 1 are left out
    assert {name for name in dot.boxes() if dot.nodes[name].get("peripheries") == "2"} == {"cell.0.Q5", "cell.0.Q4"}
    assert sorted(dot.from_entries()) == sorted([("C5", "cell.0.Q5", None, GREY), ("C4", "cell.0.Q4", None, GREY), ("cell.0.Q5", "cell.0.Q4", "up x2", BLUE)])


def test_expand_draws_every_repetition_in_its_own_box():
    dot = parse_dot(render(TWICE, expand=True).source)
    assert {name: attrs["label"] for name, attrs in dot.clusters.items() if name != "cluster_legend"} == {"cluster_cell.0": "cell 1/2", "cluster_cell.1": "cell 2/2"}
    assert [m for m in dot.members["cluster_cell.1"] if not m.startswith("#")] == ["cell.1.Q5", "cell.1.Q4"]
    assert text_of(dot.nodes["cell.1.Q5"]["label"]) == "Q5\nrelu"
    assert {name for name in dot.boxes() if dot.nodes[name].get("peripheries") == "2"} == {"cell.1.Q5", "cell.1.Q4"}
    assert sorted(dot.from_entries()) == sorted(
        [
            ("C5", "cell.0.Q5", None, GREY),
            ("C4", "cell.0.Q4", None, GREY),
            ("cell.0.Q5", "cell.0.Q4", "up x2", BLUE),
            ("cell.0.Q5", "cell.1.Q5", None, GREY),
            ("cell.0.Q4", "cell.1.Q4", None, GREY),
            ("cell.1.Q5", "cell.1.Q4", "up x2", BLUE),
        ]
    )
    x = {name: dot.pos(name)[0] for name in dot.boxes()}
    assert max(x["cell.0.Q5"], x["cell.0.Q4"]) < min(x["cell.1.Q5"], x["cell.1.Q4"])


def test_bundled_blocks_titles_follow_the_repeat_count():
    assert parse_dot(render("bifpn").source).clusters["cluster_cell"]["label"] == "cell x3"
    assert parse_dot(render("bifpn", params={"cells": 2}).source).clusters["cluster_cell"]["label"] == "cell x2"
    assert parse_dot(render("nasfpn", params={"stack_times": 4}).source).clusters["cluster_stage"]["label"] == "stage x4"
    expanded = parse_dot(render("bifpn", params={"cells": 2}, expand=True).source)
    assert sorted(a["label"] for n, a in expanded.clusters.items() if n != "cluster_legend") == ["cell 1/2", "cell 2/2"]


def test_a_node_beside_a_block_is_not_drawn_inside_its_box():
    # Q4 reads only C4, so the block would start in column 1, where P5 (which it reads) is; and
    # X (level 4, reading P5) would share Q4's column. The block starts right of P5, and X,
    # which the block does not read, moves right of the block.
    spec = {
        "pyramidgraph": 1,
        "name": "beside",
        "inputs": {"C4": {"level": 4, "channels": 8}, "C5": {"level": 5, "channels": 8}},
        "defaults": {"channels": 8},
        "nodes": {
            "P5": {"from": ["C5"], "post": ["conv3x3"]},
            "cell": {"repeat": 2, "inputs": ["C4", "P5"], "outputs": ["Q4", "Q5"], "nodes": {"Q4": {"from": ["C4"]}, "Q5": {"from": ["P5", "Q4"]}}},
            "X": {"level": 4, "from": ["P5"], "post": ["conv3x3"]},
        },
        "outputs": ["X", "cell.Q4", "cell.Q5"],
    }
    dot = parse_dot(render(spec).source)
    x = {name: dot.pos(name)[0] for name in dot.boxes()}
    assert x["C4"] == x["C5"] < x["P5"] < x["cell.0.Q4"] < x["cell.0.Q5"] < x["X"]


def test_fpg_collapsed_draws_one_representative_repetition_titled_x_n():
    # FPG's pathway k passes level j through when k is in skip[j] (default [[0, 1, 2, 3], [0, 1, 2],
    # [0, 1], [0], []]): pathways 0-3 are mostly pass-throughs, 4-8 alike and complete. The
    # drawing shows pathway 4, once, fed by what the block's inputs name (P_l), not pathway 3.
    dot = parse_dot(render("fpg").source)
    drawn = {f"path.4.Q{level}" for level in range(2, 7)}
    assert dot.clusters["cluster_path"]["label"] == "path x9 (repetitions differ; 5 of 9 as drawn)"
    assert {m for m in dot.members["cluster_path"] if not m.startswith("#")} == drawn
    assert {name for name in dot.boxes() if name.startswith("path.")} == drawn
    into = lambda head: sorted((tail, label, colour) for tail, h, label, colour in dot.from_entries() if h == head)  # noqa: E731
    assert into("path.4.Q3") == [
        ("L3", "relu → conv1x1-bn", GREY),  # skip from pathway 0
        ("P3", "relu → conv1x1-bn", GREY),  # across, lateral: the previous pathway, as the block input names it
        ("P4", "up x2 → relu → conv3x3-bn", BLUE),  # across, down
        ("path.4.Q2", "relu → conv3x3-bn /2", RED),  # same pathway, bottom-up
    ]
    assert [tail for tail, _, _ in into("O4")] == ["path.4.Q4"]  # the last pathway's output, shown on the one drawn
    # alike repetitions: the first is drawn, and the title says only how many
    alike = parse_dot(render("fpg", params={"stack_times": 2, "skip": [[], [], [], [], []]}).source)
    assert alike.clusters["cluster_path"]["label"] == "path x2"
    assert {m for m in alike.members["cluster_path"] if not m.startswith("#")} == {f"path.0.Q{level}" for level in range(2, 7)}


@pytest.mark.parametrize("spec, params, hidden", [("fpn", {"start": 1}, {"C2"}), ("fpn", {"used": 2}, {"C4", "C5"}), ("nasfpn", {}, {"C2"}), ("fpg", {"start": 1}, {"C2"})])
def test_optional_inputs_nothing_reads_are_not_drawn(spec, params, hidden):
    declared = {d.name for d in pyramidgraph.analyze(spec, params=params).flat.inputs}
    assert hidden < declared  # declared (optional), and nothing reads them
    for options in ({}, {"expand": True}, {"lowered": True}, {"style": "paper", "cell": False, "width": 30}):
        dot = parse_dot(render(spec, params=params, **options).source)
        assert not hidden & set(dot.nodes), options
        assert not any(tail in hidden or head in hidden for tail, head, _ in dot.edges), options
        assert declared - hidden <= dot.boxes(), options


def test_two_line_labels_set_the_post_ops_apart_from_the_name():
    # "P4_td\nC2f x1" as two plain lines put the underscore a point above the C2f's f: it read
    # "C2f" with an overline. The lines are now table rows with a 3 pt spacer row between them.
    dot = parse_dot(render("yolov8").source)
    assert dot.nodes["P4_td"]["label"] == '<<TABLE BORDER="0" CELLSPACING="0" CELLPADDING="0"><TR><TD>P4_td</TD></TR><TR><TD HEIGHT="3"></TD></TR><TR><TD>C2f x1</TD></TR></TABLE>>'
    assert {text_of(dot.nodes[n]["label"]) for n in ("P3_out", "P4_out", "P5_out")} == {"P3_out\nC2f x1", "P4_out\nC2f x1", "P5_out\nC2f x1"}
    assert dot.nodes["P4_down"]["label"] == "P4_down"  # one line stays plain text


@needs_graphviz
def test_two_line_labels_baselines_are_further_apart_than_plain_lines(tmp_path):
    save(render("yolov8"), tmp_path / "yolov8.svg")
    svg = (tmp_path / "yolov8.svg").read_text(encoding="utf-8")
    node = svg[svg.index("<title>P4_td</title>") :]
    lines = re.findall(r'<text [^>]*y="([-\d.]+)"[^>]*font-size="([\d.]+)">([^<]*)</text>', node)[:2]
    assert [text for _, _, text in lines] == ["P4_td", "C2f x1"]
    (y1, size, _), (y2, _, _) = lines
    # plain lines are set 12 pt apart at 11 pt (the clash); the spacer adds 3 pt
    assert float(y2) - float(y1) >= 1.3 * float(size)


# -- every bundled spec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_bundled_spec_dot_structure(name):
    analysis = pyramidgraph.analyze(name)
    flat = analysis.flat
    dot = parse_dot(render(name).source)
    reps = _drawn_repetitions(dot)
    drawn = [node for node in flat.nodes.values() if not _IN_BLOCK.match(node.id) or int(_IN_BLOCK.match(node.id)[2]) == reps[_IN_BLOCK.match(node.id)[1]]]

    # one box per input used and per node drawn (one repetition of repeated blocks, all of it)
    assert dot.boxes() == _used_inputs(flat) | {node.id for node in drawn}

    # one line into a node per `from` entry, from the map it reads
    entries = dot.from_entries()
    assert sorted((tail, head) for tail, head, _, _ in entries) == sorted((_expected_tail(node, e, reps), node.id) for node in drawn for e in node.edges)

    # an entry that changes level is resampled, and says how; a node with one output per level
    # (DyHead's block) is one box at its first level, and each line from it is coloured by the
    # level of the output it carries (tests/test_dyhead.py checks those)
    levels = _levels(analysis)
    values = analysis.ir.values()
    for tail, head, label, colour in entries:
        if f"{tail}.0" in values:
            assert colour in (BLUE, RED, GREY)
            continue
        if levels[tail] != levels[head]:
            assert label, f"{tail} -> {head}"
            assert colour == (BLUE if levels[tail] > levels[head] else RED)
        else:
            assert colour == GREY

    # rows by level, coarsest on top; the level's header beside its first row
    y: dict[int, list[float]] = {}
    for box in dot.boxes():
        y.setdefault(levels[box], []).append(dot.pos(box)[1])
    ordered = sorted(y)
    for finer, coarser in zip(ordered, ordered[1:]):
        assert max(y[finer]) < min(y[coarser])
    for level, ys in y.items():
        assert dot.pos(f"#level_{level}")[1] == max(ys)

    # columns: every line runs to the right
    for tail, head, _, _ in entries:
        assert dot.pos(tail)[0] < dot.pos(head)[0], f"{tail} -> {head}"


@pytest.mark.parametrize("name", SPECS)
def test_bundled_spec_expanded_has_every_node_and_entry(name):
    flat = pyramidgraph.analyze(name).flat
    dot = parse_dot(render(name, expand=True).source)
    assert dot.boxes() == _used_inputs(flat) | set(flat.nodes)
    assert len(dot.from_entries()) == sum(len(node.edges) for node in flat.nodes.values())


@needs_graphviz
@pytest.mark.parametrize("name", SPECS)
def test_bundled_spec_renders_to_png_and_graphviz_keeps_the_rows(name, tmp_path):
    graph = render(name)
    assert save(graph, tmp_path / f"{name}.png") == "png"
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
    # Graphviz's own layout (not only our pins): the boxes of a coarser level are all above
    laid_out = json.loads(graph.pipe(format="json0"))
    centre = {o["name"]: float(o["pos"].split(",")[1]) for o in laid_out["objects"] if "pos" in o and "nodes" not in o}
    levels = _levels(pyramidgraph.analyze(name))
    boxes = parse_dot(graph.source).boxes()
    for a in boxes:
        for b in boxes:
            if levels[a] > levels[b]:
                assert centre[a] > centre[b], (a, b)


@needs_graphviz
@pytest.mark.parametrize("name", ["fpn", "bifpn"])
def test_lowered_has_one_box_per_ir_op_and_input(name, tmp_path):
    analysis = pyramidgraph.analyze(name)
    ir = run_passes(analysis.ir, [PASSES[p] for p in DEFAULT_PASSES])
    graph = render(name, lowered=True)
    dot = parse_dot(graph.source)
    assert dot.boxes() == {n for n, _ in ir.inputs} | {op.name for op in ir.ops}
    assert len(dot.boxes()) == len(ir.ops) + len(ir.inputs)
    assert save(graph, tmp_path / "lowered.svg") == "svg"
    assert "<svg" in (tmp_path / "lowered.svg").read_text(encoding="utf-8")


# -- determinism, notebooks ----------------------------------------------------------------------------------------


def test_same_spec_gives_byte_identical_dot_across_processes():
    first = render("bifpn").source + "\0" + render("bifpn", style="paper").source
    assert render("bifpn").source + "\0" + render("bifpn", style="paper").source == first
    code = "import sys, pyramidgraph.render as r; sys.stdout.write(r.render('bifpn').source + chr(0) + r.render('bifpn', style='paper').source)"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert other == first


@needs_graphviz
def test_graph_displays_inline_in_jupyter():
    bundle = render(TINY, TINY_WIDTHS)._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]
    assert "tiny_fpn" in bundle["image/svg+xml"]


# -- saving and the command line ------------------------------------------------------------------------------------


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_prints_dot_by_default(capsys):
    code, out, err = _run(capsys, "render", "fpn")
    assert (code, err) == (0, "")
    assert out == render("fpn").source


def test_cli_lowered_expand_and_params(capsys):
    assert _run(capsys, "render", "bifpn", "--lowered")[1] == render("bifpn", lowered=True).source
    assert _run(capsys, "render", "bifpn", "--expand", "--param", "cells=2")[1] == render("bifpn", params={"cells": 2}, expand=True).source
    code, out, _ = _run(capsys, "render", "bifpn", "--param", "cells=4")
    assert code == 0 and parse_dot(out).clusters["cluster_cell"]["label"] == "cell x4"


@needs_graphviz
@pytest.mark.parametrize("suffix, magic", [(".png", PNG_MAGIC), (".svg", b"<?xml"), (".pdf", b"%PDF-"), (".dot", b"digraph fpn {")])
def test_cli_writes_the_format_its_suffix_names(capsys, tmp_path, suffix, magic):
    path = tmp_path / f"fpn{suffix}"
    code, out, err = _run(capsys, "render", "fpn", "-o", str(path))
    assert (code, err) == (0, "")
    assert out == f"wrote {path} ({suffix[1:]})\n"
    assert path.read_bytes().startswith(magic)


def test_cli_dot_file_is_the_source(capsys, tmp_path):
    path = tmp_path / "tiny.gv"
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY, encoding="utf-8")
    assert _run(capsys, "render", str(spec), "--in-channels", "32,64,128", "-o", str(path))[0] == 0
    assert path.read_text(encoding="utf-8") == render(str(spec), TINY_WIDTHS).source


def test_cli_unknown_suffix_exits_2(capsys, tmp_path):
    code, out, err = _run(capsys, "render", "fpn", "-o", str(tmp_path / "fpn.jpg"))
    assert (code, out) == (2, "")
    assert err == f"pyramidgraph render: cannot tell the format of '{tmp_path / 'fpn.jpg'}' from its suffix; use one of .svg, .png, .pdf, .dot, .gv\n"
    assert not (tmp_path / "fpn.jpg").exists()


def test_without_graphviz_dot_text_works_and_images_say_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Graphviz programs to be found
    code, out, err = _run(capsys, "render", "fpn", "-o", str(tmp_path / "fpn.png"))
    assert (code, out) == (2, "")
    assert err.startswith("pyramidgraph render: writing PNG needs Graphviz, and its `neato` program is not on PATH; install Graphviz")
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install -c conda-forge graphviz"):
        assert hint in err
    assert not (tmp_path / "fpn.png").exists()
    with pytest.raises(GraphvizMissing, match="apt-get install graphviz"):
        save(render("fpn"), tmp_path / "fpn.svg")
    # DOT needs no Graphviz, to a file or on stdout
    assert _run(capsys, "render", "fpn", "-o", str(tmp_path / "fpn.dot"))[0] == 0
    assert (tmp_path / "fpn.dot").read_text(encoding="utf-8") == render("fpn").source
    code, out, _ = _run(capsys, "render", "fpn")
    assert code == 0 and out == render("fpn").source


def test_cli_broken_spec_exits_2_with_located_issue(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(TINY.replace("from: [C4, P5]", "from: [C4, P5x]"), encoding="utf-8")
    code, out, err = _run(capsys, "render", str(path), "--in-channels", "32,64,128")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == f"{path}:7:19: nodes.P4.from[1]: unknown input or node 'P5x'; did you mean 'P5'?"


# -- the paper style ------------------------------------------------------------------------------------------------

BIFPN_CELL = {f"cell.0.P{level}_td" for level in (4, 5, 6)} | {f"cell.0.P{level}_out" for level in range(3, 8)}


def _grey(colour: str) -> bool:
    return len(colour) == 7 and colour[1:3] == colour[3:5] == colour[5:7]


def test_paper_bifpn_is_one_cell_levels_as_rows_compact_columns():
    dot = parse_dot(render("bifpn", style="paper").source)
    drawn = {name for name in dot.boxes() if not name.startswith("#")}
    # one cell (as the EfficientDet paper draws it): the maps it reads, made outside it, are its inputs
    assert drawn == {"P3", "P4", "P5", "P6", "P7"} | BIFPN_CELL
    assert dot.clusters["cluster_cell"]["label"] == "cell x3"
    assert {m for m in dot.members["cluster_cell"] if not m.startswith("#")} == BIFPN_CELL
    assert {name for name in drawn if dot.nodes[name].get("peripheries") == "2"} == {f"cell.0.P{level}_out" for level in range(3, 8)}
    # names only: no post ops line, no edge labels, no title
    assert {name: dot.nodes[name]["label"] for name in drawn} == {name: name.split(".")[-1] for name in drawn}
    assert not any(name.startswith("#label_") for name in dot.nodes) and "label" not in dot.graph
    # levels as rows; columns: the inputs, the top-down chain in one column, the outputs in one
    x = {name: dot.pos(name)[0] for name in drawn}
    y = {name: dot.pos(name)[1] for name in drawn}
    for level in range(3, 8):
        assert y[f"P{level}"] == y[f"cell.0.P{level}_out"] == dot.pos(f"#level_{level}")[1]
        assert dot.nodes[f"#level_{level}"]["label"] == f"level {level}"
    assert y["P7"] > y["P6"] > y["P5"] > y["P4"] > y["P3"]
    assert len({x[f"P{level}"] for level in range(3, 8)}) == 1
    assert x["P3"] < x["cell.0.P6_td"] == x["cell.0.P5_td"] == x["cell.0.P4_td"] == x["cell.0.P3_out"] < x["cell.0.P4_out"]
    assert len({x[f"cell.0.P{level}_out"] for level in range(4, 8)}) == 1
    # one box size; greys that print; bottom-up dashed black, top-down solid black, same level grey
    assert len({(dot.nodes[name]["width"], dot.nodes[name]["height"]) for name in drawn}) == 1
    assert all(_grey(dot.nodes[name]["fillcolor"]) for name in drawn)
    lines = {(tail, head): attrs for tail, head, attrs in dot.edges if not tail.startswith("#")}
    assert {pair for pair, attrs in lines.items() if attrs.get("style") == "dashed"} == {(f"cell.0.P{level}_out", f"cell.0.P{level + 1}_out") for level in range(3, 7)}
    assert {attrs["color"] for attrs in lines.values()} == {"#000000", "#7f7f7f"}
    assert {pair for pair, attrs in lines.items() if attrs["color"] == "#7f7f7f"} == {(tail, head) for tail, head in lines if dot.pos(tail)[1] == dot.pos(head)[1]}


def test_paper_graph_attributes_width_font_and_one_font_size():
    graph = render("bifpn", style="paper")
    dot = parse_dot(graph.source)
    fit = paper_fit(graph)
    assert dot.graph["size"] == "7,100"  # at most 7 in wide: Graphviz scales a wider drawing down, never up
    assert PAPER_FONT.split(",") == ["Helvetica", "Arial", "Liberation Sans", "DejaVu Sans", "sans-serif"]
    assert dot.graph["fontname"] == dot.node_defaults["fontname"] == dot.edge_defaults["fontname"] == PAPER_FONT
    sizes = {dot.graph["fontsize"], dot.node_defaults["fontsize"], dot.edge_defaults["fontsize"]} | {a["fontsize"] for a in dot.nodes.values() if "fontsize" in a}
    assert sizes == {f"{fit.font_pt:g}"}
    assert parse_dot(render("bifpn", style="paper", width=3.5).source).graph["size"] == "3.5,100"
    # the default style has no width unless asked
    assert "size" not in parse_dot(render("bifpn").source).graph
    assert parse_dot(render("bifpn", width=12).source).graph["size"] == "12,100"
    assert parse_dot(render("bifpn", lowered=True, width=12).source).graph["size"] == "12,100"


@pytest.mark.parametrize("name", ["bifpn", "nasfpn"])
def test_paper_fit_text_is_at_least_8_pt_at_7_inches(name):
    fit = paper_fit(render(name, style="paper"))
    assert fit.width == 7.0
    assert fit.scale == min(1.0, fit.width / fit.natural_width)
    assert fit.font_pt * fit.scale >= MIN_FONT_PT
    assert fit.natural_width * fit.scale <= 7.0


def test_paper_options_legend_edge_labels_ops():
    plain = parse_dot(render("bifpn", style="paper").source)
    assert {text_of(plain.nodes[n]["label"]) for n in plain.nodes if n.startswith("#legend_") and n.endswith("_text")} == {
        "cell input\\l",
        "fuse: weighted (fast)\\l",
        "cell output\\l",
        "top-down\\l",
        "bottom-up\\l",
        "same level\\l",
    }
    dot = parse_dot(render("bifpn", style="paper", width=9, legend=False, edge_labels=True, ops=True).source)
    assert not any(name.startswith("#legend") for name in dot.nodes)
    assert text_of(dot.nodes["cell.0.P6_td"]["label"]) == "P6_td\nsilu · sepconv3x3 · bn"
    entries = {(tail, head): label for tail, head, label, _ in dot.from_entries()}
    assert entries[("P7", "cell.0.P6_td")] == "up x2"
    assert entries[("cell.0.P3_out", "cell.0.P4_out")] == "maxpool /2"
    assert entries[("P6", "cell.0.P6_td")] is None  # 64 channels already: nothing to resample
    # a shared column: the label sits between the two boxes, on the vertical line
    label = next(head for tail, head, _ in dot.edges if tail == "cell.0.P6_td" and head.startswith("#label_"))
    (x, y), (tx, ty), (hx, hy) = dot.pos(label), dot.pos("cell.0.P6_td"), dot.pos("cell.0.P5_td")
    assert dot.nodes[label]["label"] == "up x2" and x == tx == hx and hy < y < ty
    whole = parse_dot(render("bifpn", style="paper", cell=False).source)
    assert {"P6", "P7"} <= whole.boxes() and whole.nodes["P6"]["fillcolor"] != whole.nodes["P3"]["fillcolor"]  # nodes again, not inputs


def test_paper_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="unknown style 'poster'; use one of default, paper"):
        render("bifpn", style="poster")
    with pytest.raises(ValueError, match="the paper style draws the spec, not the lowered IR"):
        render("bifpn", style="paper", lowered=True)
    with pytest.raises(ValueError, match="cell draws one repetition and expand every one"):
        render("bifpn", cell=True, expand=True)
    with pytest.raises(ValueError, match="width must be a positive number of inches, got 0"):
        render("bifpn", style="paper", width=0)


def test_paper_warns_when_the_width_leaves_text_under_8_pt():
    with pytest.warns(UserWarning, match=r"nasfpn: at 3 in wide the smallest text is \d\.\d pt, under 8 pt"):
        graph = render("nasfpn", style="paper", width=3)
    assert paper_fit(graph).min_font_pt < MIN_FONT_PT
    assert paper_fit(render("nasfpn")) is None


@needs_dot
@pytest.mark.parametrize("name", ["bifpn", "nasfpn"])
def test_paper_svg_is_at_most_7_inches_wide_and_no_text_is_under_8_pt(name, tmp_path):
    graph = render(name, style="paper")
    save(graph, tmp_path / f"{name}.svg")
    svg = (tmp_path / f"{name}.svg").read_text(encoding="utf-8")
    # Graphviz's own layout, before scaling: its bounding box and the pad on each side
    bb = json.loads(graph.pipe(format="json0"))["bb"].split(",")
    natural = float(bb[2]) - float(bb[0]) + 2 * 0.05 * 72
    scale = min(1.0, 7 * 72 / natural)
    assert float(re.search(r'<svg width="([\d.]+)pt"', svg)[1]) == pytest.approx(natural * scale, abs=1)
    assert float(re.search(r'transform="scale\(([\d.]+) ', svg)[1]) == pytest.approx(scale, abs=0.01)
    sizes = [float(size) for size in re.findall(r'<text [^>]*font-size="([\d.]+)"', svg)]
    assert len(sizes) > 10 and min(sizes) == paper_fit(graph).font_pt
    assert min(sizes) * scale >= MIN_FONT_PT
    assert paper_fit(graph).natural_width == pytest.approx(natural / 72, rel=0.05)  # the estimate render fitted with


@needs_dot
def test_paper_svg_keeps_text_as_text_with_the_font_fallback_list(tmp_path):
    save(render("nasfpn", style="paper"), tmp_path / "nasfpn.svg")
    svg = (tmp_path / "nasfpn.svg").read_text(encoding="utf-8")
    texts = re.findall(r"<text ([^>]*)>([^<]*)</text>", svg)
    assert {"P4_1", "P5_gp", "P7_out", "stage x7", "level 7", "cell input", "bottom-up"} <= {html.unescape(text) for _, text in texts}
    assert {re.search(r'font-family="([^"]*)"', attrs)[1] for attrs, _ in texts} == {PAPER_FONT}


@needs_dot
def test_paper_pdf_embeds_its_fonts(tmp_path):
    save(render("bifpn", style="paper"), tmp_path / "bifpn.pdf")
    data = (tmp_path / "bifpn.pdf").read_bytes()
    descriptors = re.findall(rb"<<\s*/Type\s*/FontDescriptor(.*?)>>", data, re.S)
    assert descriptors, "no font in the PDF"
    assert all(re.search(rb"/FontFile[23]?\s", d) for d in descriptors), "a font is not embedded"
    if shutil.which("pdffonts"):
        listing = subprocess.run(["pdffonts", str(tmp_path / "bifpn.pdf")], capture_output=True, text=True, check=True).stdout.splitlines()[2:]
        assert listing and all(line.split()[-5] == "yes" for line in listing)  # the emb column


@needs_graphviz
@pytest.mark.parametrize("name", SPECS)
def test_paper_style_lays_out_without_graphviz_warnings(name):
    # neato falls back to straight lines for every edge when two nodes touch
    result = subprocess.run(["neato", "-Tsvg"], input=render(name, style="paper").source, capture_output=True, text=True, check=True)
    assert result.stderr == ""


def test_paper_fpg_cell_is_the_representative_pathway():
    dot = parse_dot(render("fpg", style="paper").source)
    assert {n for n in dot.boxes() if not n.startswith("#")} == {f"{p}{level}" for p in "LP" for level in range(2, 7)} | {f"path.4.Q{level}" for level in range(2, 7)}
    assert {n for n in dot.boxes() if n.startswith("path.") and dot.nodes[n].get("peripheries") == "2"} == {f"path.4.Q{level}" for level in range(2, 7)}


def test_cli_paper_options(capsys):
    code, out, err = _run(capsys, "render", "bifpn", "--style", "paper", "--width", "6", "--no-legend", "--edge-labels")
    assert (code, err) == (0, "")
    assert out == render("bifpn", style="paper", width=6, legend=False, edge_labels=True).source
    assert parse_dot(out).graph["size"] == "6,100"
    assert _run(capsys, "render", "bifpn", "--style", "paper", "--ops")[1:] == (render("bifpn", style="paper", ops=True).source, "")
    code, out, err = _run(capsys, "render", "bifpn", "--no-legend", "--no-edge-labels", "--no-ops")
    assert out == render("bifpn", legend=False, edge_labels=False, ops=False).source
    dot = parse_dot(out)
    assert not any(n.startswith(("#legend", "#label_")) for n in dot.nodes) and dot.nodes["cell.0.P6_td"]["label"] == "P6_td"


def test_cli_paper_refusals_and_warnings(capsys):
    assert _run(capsys, "render", "bifpn", "--style", "paper", "--lowered") == (2, "", "pyramidgraph render: the paper style draws the spec, not the lowered IR; leave out one of them\n")
    assert _run(capsys, "render", "bifpn", "--cell", "--expand")[0] == 2
    code, out, err = _run(capsys, "render", "nasfpn", "--style", "paper", "--width", "3")
    assert code == 0 and out.startswith("digraph nasfpn {")
    assert re.fullmatch(r"pyramidgraph render: warning: nasfpn: at 3 in wide the smallest text is \d\.\d pt, under 8 pt .*\n", err)


@needs_dot
def test_cli_writes_the_paper_figures_the_readme_shows(capsys, tmp_path):
    for name in ("bifpn", "nasfpn"):
        path = tmp_path / f"{name}_paper.svg"
        assert _run(capsys, "render", name, "--style", "paper", "-o", str(path)) == (0, f"wrote {path} (svg)\n", "")
        assert path.read_bytes().startswith(b"<?xml")
