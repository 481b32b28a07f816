"""Stage 2c: graph checks on the expanded spec, with networkx.

References were resolved during expansion (scoping lives there); what is checked here needs the
whole graph: cycles (printed), nodes that reach no output, inputs no output uses, and taps of
inputs. :func:`dataflow` also gives the deterministic topological order lowering follows:
declaration order wherever the data dependencies allow it.
"""

from __future__ import annotations

import networkx as nx

from .errors import Issue
from .expand import FlatSpec
from .loader import Document

__all__ = ["dataflow", "check_graph", "topological_order"]


def base_of(source: str) -> str:
    """The node or input a reference reads, without its ``.pre`` tap or output index (``X.1``)."""
    if source.endswith(".pre"):
        return source[: -len(".pre")]
    head, _, last = source.rpartition(".")
    return head if head and last.isdigit() else source


def dataflow(flat: FlatSpec) -> nx.DiGraph:
    """Directed graph over input names and node ids; an edge per resolved ``from`` entry."""
    g = nx.DiGraph()
    for order, decl in enumerate(flat.inputs):
        g.add_node(decl.name, order=order, kind="input")
    for order, node in enumerate(flat.nodes.values(), start=len(flat.inputs)):
        g.add_node(node.id, order=order, kind="node")
    for node in flat.nodes.values():
        for edge in node.edges:
            if edge.source is not None and base_of(edge.source) in g:
                g.add_edge(base_of(edge.source), node.id, edge=edge)
    return g


def topological_order(g: nx.DiGraph) -> list[str]:
    return list(nx.lexicographical_topological_sort(g, key=lambda n: g.nodes[n]["order"]))


def check_graph(doc: Document, flat: FlatSpec, reachability: bool = True) -> list[Issue]:
    """Taps of inputs, cycles and (with ``reachability``) nodes and inputs no output uses.

    ``reachability=False`` when expansion already reported problems: a node or reference that
    failed to expand would make what it reads look unused, a follow-on error."""
    issues: list[Issue] = []
    input_names = {d.name for d in flat.inputs}
    for node in flat.nodes.values():
        for edge in node.edges:
            if edge.source and edge.source.endswith(".pre") and base_of(edge.source) in input_names:
                issues.append(edge.where.issue(doc, f"'{edge.ref}': inputs have no .pre tap; only nodes do"))
    for output in flat.outputs:
        if output.source and output.source.endswith(".pre") and base_of(output.source) in input_names:
            issues.append(output.where.issue(doc, f"'{output.ref}': inputs have no .pre tap; only nodes do"))
    g = dataflow(flat)
    cyclic: set[str] = set()
    for component in nx.strongly_connected_components(g):
        first = min(component, key=lambda n: g.nodes[n]["order"])
        if len(component) == 1 and not g.has_edge(first, first):
            continue
        cycle = _cycle_through(g.subgraph(component), first)
        cyclic |= component
        closing = g.edges[cycle[-2], cycle[-1]]["edge"]
        issues.append(closing.where.issue(doc, f"cycle: {' -> '.join(cycle)}; a node cannot depend on itself"))
    if issues or not reachability:
        return issues
    issues += _check_include_levels(doc, flat)
    if issues:  # an include fed at the wrong levels makes the wrong nodes; what is unused follows from that
        return issues
    used: set[str] = set()
    for output in flat.outputs:
        if output.source:
            target = base_of(output.source)
            used |= {target} | nx.ancestors(g, target)
    if not flat.outputs or any(o.source is None for o in flat.outputs):
        return issues
    for node in flat.nodes.values():
        if node.id not in used and node.id not in cyclic:
            if node.where.doc is not None:  # inside an included spec: its file is not the user's to edit
                message = f"node '{node.id}' of an included spec does not reach any output; use the included spec's outputs, or turn unused ones off with its params"
            else:
                message = f"node '{node.id}' does not reach any output; remove it or list it in outputs"
            issues.append(node.where.issue(doc, message, key=True))
    for decl in flat.inputs:
        if decl.name not in used and not decl.optional:
            issues.append(decl.where.issue(doc, f"input '{decl.name}' is not used by any output; remove it, read it from a node, or mark it optional: true", key=True))
    return issues


def node_levels(flat: FlatSpec) -> dict[str, int]:
    """The level of every input and node: its own ``level``, else its first source's (as lowering)."""
    levels = {decl.name: decl.level for decl in flat.inputs}
    g = dataflow(flat)
    for node_id in topological_order(g):
        node = flat.nodes.get(node_id)
        if node is None or node_id in levels:
            continue
        sources = [levels.get(base_of(e.source)) if e.source else None for e in node.edges]
        if node.level is not None:
            level = node.level
        elif node.apply is not None:  # the op decides (a stride-4 call is two levels down; a rendering transformer is at its query's level)
            level = node.apply.level_of(sources) if None not in sources else None
        else:
            level = sources[0] if sources else None
        if level is not None:
            levels[node_id] = level
    return levels


def _check_include_levels(doc: Document, flat: FlatSpec) -> list[Issue]:
    """An included spec's inputs must be fed maps at the levels it declares: its other levels
    (extra levels, a gather level) are computed from its parameters, and would silently disagree."""
    if not flat.include_inputs:
        return []
    levels = node_levels(flat)
    issues = []
    for bound in flat.include_inputs:
        got = levels.get(base_of(bound.source)) if bound.source else None
        if got is not None and got != bound.level:
            issues.append(
                bound.where.issue(
                    doc, f"'{bound.ref}' is at level {got}, but the included spec's input '{bound.name}' is at level {bound.level}; set the included spec's level parameters (e.g. first_level) to match"
                )
            )
    return issues


def _cycle_through(g: nx.DiGraph, start: str) -> list[str]:
    """A cycle from ``start`` back to itself, following declaration order where possible."""
    if g.has_edge(start, start):
        return [start, start]
    paths = nx.single_source_shortest_path(g, start)
    best = min((p for target, p in paths.items() if g.has_edge(target, start) and len(p) >= 1), key=len)
    return best + [start]
