"""``include``: a spec inlined into another, its problems located in its own file or at the include."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph import SpecError

LIBRA = """\
pyramidgraph: 1
example: {in_channels: [8, 16, 32, 64], image: 64}
inputs:
  C2: {level: 2}
  C3: {level: 3}
  C4: {level: 4}
  C5: {level: 5}
nodes:
  fpn: {include: fpn, inputs: [C2, C3, C4, C5], params: {channels: 8}}
  bfp: {include: bfp, inputs: [fpn.P2, fpn.P3, fpn.P4, fpn.P5, fpn.P6], params: {refine: conv}}
outputs: [bfp.O2, bfp.O3, bfp.O4, bfp.O5, bfp.O6]
"""

INNER = """\
pyramidgraph: 1
params: {width: 8}
inputs:
  A3: {level: 3}
  A4: {level: 4}
defaults: {channels: $width}
nodes:
  X3: {from: [A3, A4]}
  X4: {from: [A4], post: [conv3x3]}
outputs: [X3, X4]
"""

OUTER = """\
pyramidgraph: 1
example: {in_channels: [8, 16], image: 64}
inputs:
  C3: {level: 3}
  C4: {level: 4}
nodes:
  sub: {include: inner.yaml, inputs: [C3, C4]}
outputs: [sub.X3, sub.X4]
"""


def col(path: Path, line: int, token: str) -> int:
    """1-based column of ``token`` on ``line`` of the file: where an issue about it must point."""
    return path.read_text().splitlines()[line - 1].index(token) + 1


def issues_of(spec) -> list[str]:
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec)
    return [issue.format() for issue in info.value.issues]


def write(tmp_path: Path, inner: str = INNER, outer: str = OUTER) -> Path:
    (tmp_path / "inner.yaml").write_text(inner, encoding="utf-8")
    (tmp_path / "outer.yaml").write_text(outer, encoding="utf-8")
    return tmp_path / "outer.yaml"


def test_chained_necks_compute_what_the_two_necks_compute_in_turn():
    chained = pyramidgraph.compile(LIBRA).eval()
    fpn = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8).eval()
    bfp = pyramidgraph.compile("bfp", [8] * 5, refine="conv").eval()
    state = chained.state_dict()
    assert sorted(state) == sorted([f"fpn.{k}" for k in fpn.state_dict()] + [f"bfp.{k}" for k in bfp.state_dict()])
    fpn.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("fpn.")})
    bfp.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("bfp.")})
    inputs = chained.example_inputs(batch=2)
    with torch.no_grad():
        expected = bfp(list(fpn(inputs)))
        got = chained(inputs)
    assert chained.output_names == ["O2", "O3", "O4", "O5", "O6"]
    assert [tuple(t.shape) for t in got] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2), (2, 8, 1, 1)]
    for ours, theirs in zip(got, expected):
        assert torch.equal(ours, theirs)


def test_included_file_is_found_next_to_the_including_one_with_its_params_and_module_names(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("inputs: [C3, C4]}", "inputs: [C3, C4], params: {width: 4}}"))
    neck = pyramidgraph.compile(str(outer))
    assert neck.output_names == ["X3", "X4"]
    assert [s.channels for s in neck.output_shapes.values()] == [4, 4]
    # width 4: every input is projected (A3 has 8 channels, A4 16)
    assert sorted(neck.state_dict()) == sorted(f"sub.{m}.{k}" for m in ("X3.from_A3.conv", "X3.from_A4.conv", "X4.from_A4.conv", "X4.post0") for k in ("weight", "bias"))


def test_unreachable_node_of_an_included_spec_is_reported_in_its_file(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("outputs: [sub.X3, sub.X4]", "outputs: [sub.X3]"))
    inner = tmp_path / "inner.yaml"
    assert issues_of(str(outer)) == [
        f"{inner}:9:{col(inner, 9, 'X4')}: nodes.X4: node 'sub.X4' of an included spec does not reach any output; use the included spec's outputs, or turn unused ones off with its params"
    ]


def test_shape_problem_in_an_included_spec_is_reported_in_its_file(tmp_path):
    outer = write(tmp_path, inner=INNER.replace("post: [conv3x3]", "post: [conv3x3, gn]"))
    assert issues_of(str(outer)) == [f"{tmp_path / 'inner.yaml'}:9:{col(tmp_path / 'inner.yaml', 9, 'X4')}: nodes.X4: group norm with 32 groups needs channels divisible by 32, got 8"]


def test_unknown_name_passed_to_an_include_is_reported_once_where_it_is_passed(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("inputs: [C3, C4]}", "inputs: [C3, C44]}"))
    assert issues_of(str(outer)) == [f"{outer}:7:{col(outer, 7, 'C44')}: nodes.sub.inputs[1]: unknown input or node 'C44'; did you mean 'C4'?"]


def test_unknown_include_parameter_is_reported_where_it_is_set(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("inputs: [C3, C4]}", "inputs: [C3, C4], params: {widht: 4, num_inputs: 2}}"))
    assert issues_of(str(outer)) == [
        f"{outer}:7:{col(outer, 7, 'widht')}: nodes.sub.params.widht: 'inner.yaml' has no parameter 'widht' to set; did you mean 'width'?",
        f"{outer}:7:{col(outer, 7, 'num_inputs')}: nodes.sub.params.num_inputs: 'inner.yaml' has no parameter 'num_inputs' to set (it is derived from the inputs)",
    ]


def test_include_inputs_must_be_at_the_levels_the_included_spec_declares(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("inputs: [C3, C4]}", "inputs: [C4, C3]}"))
    assert issues_of(str(outer)) == [
        f"{outer}:7:{col(outer, 7, 'C4,')}: nodes.sub.inputs[0]: 'C4' is at level 4, but the included spec's input 'A3' is at level 3; set the included spec's level parameters (e.g. first_level) to match",
        f"{outer}:7:{col(outer, 7, 'C3]')}: nodes.sub.inputs[1]: 'C3' is at level 3, but the included spec's input 'A4' is at level 4; set the included spec's level parameters (e.g. first_level) to match",
    ]
    # a bundled spec whose levels follow a parameter: fed C3..C5, fpn must be told first_level: 3
    spec = LIBRA.replace("C2: {level: 2}\n  ", "").replace("[8, 16, 32, 64]", "[16, 32, 64]").replace("inputs: [C2, C3, C4, C5]", "inputs: [C3, C4, C5]")
    spec = spec.replace("  bfp:", "  #").replace("[bfp.O2, bfp.O3, bfp.O4, bfp.O5, bfp.O6]", "[fpn.P2, fpn.P3, fpn.P4, fpn.P5]")
    assert [line.split(": ", 1)[1] for line in issues_of(spec)] == [
        f"nodes.fpn.inputs[{i}]: 'C{level}' is at level {level}, but the included spec's input 'C{level - 1}' is at level {level - 1}; set the included spec's level parameters (e.g. first_level) to match"
        for i, level in enumerate((3, 4, 5))
    ]


def test_include_needs_one_name_per_input_and_an_existing_spec(tmp_path):
    outer = write(tmp_path, outer=OUTER.replace("inputs: [C3, C4]}", "inputs: [C3]}"))
    assert issues_of(str(outer)) == [f"{outer}:7:{col(outer, 7, '[C3]')}: nodes.sub.inputs: 'inner.yaml' takes 2 inputs (A3, A4), got 1"]
    outer = write(tmp_path, outer=OUTER.replace("include: inner.yaml", "include: iner.yaml"))
    assert issues_of(str(outer)) == [f"{outer}:7:{col(outer, 7, 'iner.yaml')}: nodes.sub.include: cannot include 'iner.yaml': no such file or bundled spec"]
