"""Stage ``lower``: the spec's nodes as IR ops, with every value's shape inferred on the way.

One node becomes its edges' resample ops, one fusion and its post ops (an apply node one op,
and one value per output); module paths follow the node; each op records its node, role and
spec position; sizes come from the image when one is known."""

from __future__ import annotations

import pytest

import pyramidgraph
from pyramidgraph.compiler import Compilation
from pyramidgraph.shape import FeatureShape

SPEC = """
pyramidgraph: 1
example: {in_channels: [8, 16], image: [64, 96]}
inputs: {C3: {level: 3}, C4: {level: 4}}
nodes:
  P4: {from: [C4], channels: 8}
  P3: {from: [C3, P4], channels: 8, post: [conv3x3, relu]}
  S: {from: [P3], apply: {split: {sizes: [2, 6]}}}
outputs: [P3, S.1, P4]
"""


def _ir():
    return Compilation(SPEC).run("lower").ir


def test_each_node_becomes_its_edge_fuse_and_post_ops_with_shapes():
    ir = _ir()
    rows = [(op.name, op.module, op.op.label(), op.meta["role"], op.shape if not isinstance(op.shape, tuple) else tuple(op.shape)) for op in ir.ops]
    assert rows == [
        ("P4", "P4.from_C4", "1x1 proj", "edge", FeatureShape(8, 4, (4, 6))),
        ("P3.from_P4", "P3.from_P4", "up x2", "edge", FeatureShape(8, 3, (8, 12))),
        ("P3.pre", "P3.fuse", "sum", "fuse", FeatureShape(8, 3, (8, 12))),
        ("P3.post0", "P3.post0", "conv3x3", "post", FeatureShape(8, 3, (8, 12))),
        ("P3", "P3.post1", "relu", "post", FeatureShape(8, 3, (8, 12))),
        ("S.outputs", "S.op", "split 2/6", "apply", (FeatureShape(2, 3, (8, 12)), FeatureShape(6, 3, (8, 12)))),
        ("S.0", "S.op", "output 0", "apply", FeatureShape(2, 3, (8, 12))),
        ("S.1", "S.op", "output 1", "apply", FeatureShape(6, 3, (8, 12))),
    ]
    assert ir.outputs == [("P3", "P3"), ("S.1", "S.1"), ("P4", "P4")]


def test_upsampling_by_size_reads_the_first_map_at_the_target_level():
    ir = _ir()
    up = next(op for op in ir.ops if op.name == "P3.from_P4")
    assert up.args == ["P4", "C3"]  # the source, then the size reference


def test_ops_record_their_node_and_its_place_in_the_spec():
    ir = _ir()
    assert {op.meta["node"]: op.meta["source"] for op in ir.ops} == {"P4": "<string>:6:3", "P3": "<string>:7:3", "S": "<string>:8:3"}


def test_without_an_image_sizes_stay_unknown_and_with_sizes_given_they_are_checked():
    from pyramidgraph.lower import lower

    compilation = Compilation(SPEC.replace("image: [64, 96]", "params: {}")).run("graph")
    ir, issues = lower(compilation.doc, compilation.flat)
    assert issues == [] and {op.shape.size for op in ir.ops if not isinstance(op.shape, tuple)} == {None}
    ir, issues = lower(compilation.doc, compilation.flat, input_sizes=[(9, 9), (4, 4)])
    assert ir is not None and ir.values()["P3"].size == (9, 9)  # upsampling by size lines up with any size


def test_a_shape_problem_is_reported_at_its_node_and_what_reads_it_is_not():
    with pytest.raises(pyramidgraph.SpecError) as info:
        Compilation(SPEC.replace("post: [conv3x3, relu]", "post: [{conv: {groups: 3}}]")).run("lower")
    assert [i.format() for i in info.value.issues] == ["<string>:7:3: nodes.P3: conv with groups=3 needs widths divisible by it, got 8 -> 8"]
