"""Diagrams (``pyramidgraph.render`` and ``pyramidgraph render``).

The DOT text is parsed here (a small parser for the subset Graphviz's Python package writes)
and checked for structure: one box per map, one line into a node per ``from`` entry, resample
labels, rows by level and columns by dataflow, blocks titled "x N". Every bundled spec is also
drawn to PNG through Graphviz, whose own layout must keep the rows.
"""

from __future__ import annotations

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
from pyramidgraph.render import GraphvizMissing, render, save

SPECS = sorted(pyramidgraph.bundled_specs())
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
needs_graphviz = pytest.mark.skipif(shutil.which("neato") is None, reason="Graphviz is not installed")

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
                if token == "node" and not clusters:
                    dot.node_defaults.update(found)
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


# -- what the tests expect of a spec, from the spec itself ---------------------------------------------


def _is_first_repetition(node_id: str) -> bool:
    """Repetition k of block ``cell`` is named ``cell.k.NAME``; the compact drawing shows k = 0."""
    return all(part == "0" for part in node_id.split(".")[1:] if part.isdigit())


def _as_first(node_id: str) -> str:
    return re.sub(r"(?<=\.)\d+(?=\.)", "0", node_id)


def _levels(analysis) -> dict[str, int]:
    values = analysis.ir.values()
    return {name: values[value].level for name, value in analysis.ir.node_values.items() if not name.endswith(".pre")}


# -- a small FPN, written out by hand --------------------------------------------------------------------


def test_tiny_fpn_boxes_labels_fills_and_outputs():
    dot = parse_dot(render(TINY, TINY_WIDTHS).source)
    assert dot.boxes() == {"C3", "C4", "C5", "P3", "P4", "P5", "P6"}
    labels = {name: dot.nodes[name]["label"] for name in dot.boxes()}
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
    assert {name: dot.nodes[name]["label"] for name in ("cell.0.Q5", "cell.0.Q4")} == {"cell.0.Q5": "Q5", "cell.0.Q4": "Q4\nconv3x3"}
    # the outputs are the last repetition's, shown on repetition 0; the edges from repetition 0
    # into repetition 1 are left out
    assert {name for name in dot.boxes() if dot.nodes[name].get("peripheries") == "2"} == {"cell.0.Q5", "cell.0.Q4"}
    assert sorted(dot.from_entries()) == sorted([("C5", "cell.0.Q5", None, GREY), ("C4", "cell.0.Q4", None, GREY), ("cell.0.Q5", "cell.0.Q4", "up x2", BLUE)])


def test_expand_draws_every_repetition_in_its_own_box():
    dot = parse_dot(render(TWICE, expand=True).source)
    assert {name: attrs["label"] for name, attrs in dot.clusters.items() if name != "cluster_legend"} == {"cluster_cell.0": "cell 1/2", "cluster_cell.1": "cell 2/2"}
    assert [m for m in dot.members["cluster_cell.1"] if not m.startswith("#")] == ["cell.1.Q5", "cell.1.Q4"]
    assert dot.nodes["cell.1.Q5"]["label"] == "Q5\nrelu"
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


# -- every bundled spec -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SPECS)
def test_bundled_spec_dot_structure(name):
    analysis = pyramidgraph.analyze(name)
    flat = analysis.flat
    drawn = [node for node in flat.nodes.values() if _is_first_repetition(node.id)]
    dot = parse_dot(render(name).source)

    # one box per input and per node drawn (repetition 0 of repeated blocks)
    assert dot.boxes() == {d.name for d in flat.inputs} | {node.id for node in drawn}

    # one line into a node per `from` entry, from the map it reads
    entries = dot.from_entries()
    assert sorted((tail, head) for tail, head, _, _ in entries) == sorted((_as_first(base_of(e.source)), node.id) for node in drawn for e in node.edges)

    # an entry that changes level is resampled, and says how
    levels = _levels(analysis)
    for tail, head, label, colour in entries:
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
    assert dot.boxes() == {d.name for d in flat.inputs} | set(flat.nodes)
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
    first = render("bifpn").source
    assert render("bifpn").source == first
    code = "import sys, pyramidgraph.render as r; sys.stdout.write(r.render('bifpn').source)"
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
