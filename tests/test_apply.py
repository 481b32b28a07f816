"""``apply`` nodes: one op over inputs at their own levels, ops with several outputs, and
``share:`` (weights of another node or include)."""

from __future__ import annotations

import pytest
import torch

import pyramidgraph

BASE = """
pyramidgraph: 1
example: {in_channels: [16, 32], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4, optional: true}}
nodes:
  halves: {from: [C3], apply: {split: 2}}
%s
"""


def _issues(body: str) -> list[str]:
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(BASE % body)
    return [issue.format() for issue in info.value.issues]


@pytest.mark.parametrize(
    "body, message",
    [
        ("  A: {from: [halves], post: [conv3x3]}\noutputs: [A]", "<string>:7:3: nodes.A: input 'halves': 'halves' has 2 outputs; read one of them: halves.0, halves.1"),
        ("  A: {from: [halves.2], post: [conv3x3]}\noutputs: [A, halves.0]", "<string>:7:3: nodes.A: input 'halves.2': 'halves' has 2 outputs: halves.0, halves.1"),
        ("  A: {from: [C3.0], post: [conv3x3]}\noutputs: [A, halves.0]", "<string>:7:3: nodes.A: input 'C3.0': 'C3' has one output; read it as 'C3'"),
        ("outputs: [halves]", "<string>:7:11: outputs[0]: 'halves' has 2 outputs; return one of them: halves.0, halves.1"),
        ("outputs: [halves.0, halves.3]", "<string>:7:21: outputs[1]: 'halves.3': 'halves' has 2 outputs: halves.0, halves.1"),
        ("  A: {from: [C3, C4], apply: {split: 3}}\noutputs: [A.0, halves.0]", "<string>:7:3: nodes.A: apply 'split' takes 1 input, got 2"),
        ("  A: {from: [C3], apply: {split: 3}}\noutputs: [A.0, halves.0]", "<string>:7:3: nodes.A: split: 16 channels do not divide into 3 equal parts; give sizes instead"),
        ("  A: {from: [C3], apply: {split: {sizes: [4, 4]}}}\noutputs: [A.0, halves.0]", "<string>:7:3: nodes.A: split: sizes [4, 4] add up to 8 channels, but the input has 16"),
        ("  A: {from: [C3], apply: {split: {sizes: [4, x]}}}\noutputs: [A.0, halves.0]", "<string>:7:46: nodes.A.apply.split.sizes[1]: expected an integer or a $expression, got 'x'"),
        ("  A: {from: [C3, C4], apply: split, fuse: sum}\noutputs: [A.0, halves.0]", "<string>:7:23: nodes.A.apply: node 'A' has both apply and fuse; apply reads the inputs as they are and replaces the fuse: keep one"),
        ("  A: {from: [halves.0, C4], apply: concat_levels, level: 4}\noutputs: [A, halves.1]", "<string>:7:3: nodes.A: 'A' declares level 4 but apply 'concat_levels' gives level 3"),
        (
            "  A: {from: [halves.0, {from: C4, via: [nearest]}], apply: concat_levels}\noutputs: [A, halves.1]",
            "<string>:7:3: nodes.A: input 'C4': an apply node reads its inputs as they are, so it takes no via; resample in a node before it",
        ),
        (
            "  A: {from: [halves.0], post: [conv3x3]}\n  B: {from: [C4], share: A, post: [conv3x3]}\noutputs: [A, B]",
            "<string>:8:26: nodes.B.share: share: 'B' uses the weights of 'A', but 'A.post0' is conv3x3 with 8 -> 8 channels in 'A' and conv3x3 with 32 -> 32 in 'B'; shared weights need the same ops and widths",
        ),
        (
            "  A: {from: [halves.0], post: [conv3x3]}\n  B: {from: [halves.1], share: Q, post: [conv3x3]}\noutputs: [A, B]",
            "<string>:8:32: nodes.B.share: share: there is no node or include 'Q' whose weights 'B' could use",
        ),
    ],
)
def test_bad_apply_and_share_specs_are_refused_where_they_are_written(body, message):
    assert _issues(body) == [message]


def test_split_outputs_are_the_channel_pieces_and_keep_their_names():
    neck = pyramidgraph.compile(BASE % "  A: {from: [C3], apply: {split: {sizes: [4, 12]}}}\noutputs: [A.0, A.1, halves.1]")
    assert neck.output_names == ["A.0", "A.1", "halves.1"]
    x = torch.randn(2, 16, 8, 8)
    a0, a1, h1 = neck([x, torch.randn(2, 32, 4, 4)])
    assert torch.equal(a0, x[:, :4]) and torch.equal(a1, x[:, 4:]) and torch.equal(h1, x[:, 8:])
    names = [n.name for n in neck.graph.nodes]
    assert "a_0" in names and "a_1" in names and "halves_1" in names


def test_an_apply_node_reads_each_input_at_its_own_size():
    neck = pyramidgraph.compile(BASE % "  G: {from: [C3, C4], apply: concat_levels}\noutputs: [G, halves.0]")
    c3, c4 = torch.randn(1, 16, 8, 12), torch.randn(1, 32, 4, 6)
    g, _ = neck([c3, c4])
    assert g.shape == (1, 48, 8, 12)
    assert torch.equal(g, torch.cat([c3, torch.nn.functional.interpolate(c4, size=(8, 12), mode="nearest")], 1))


def test_a_shared_node_calls_the_other_nodes_modules():
    neck = pyramidgraph.compile(BASE % "  A: {from: [halves.0], post: [conv3x3]}\n  B: {from: [halves.1], share: A, post: [conv3x3]}\noutputs: [A, B]")
    assert list(neck.state_dict()) == ["A.post0.weight", "A.post0.bias"]
    x = torch.randn(1, 16, 8, 8)
    a, b = neck([x, torch.randn(1, 32, 4, 4)])
    conv = neck.get_submodule("A.post0")
    assert torch.equal(a, conv(x[:, :8])) and torch.equal(b, conv(x[:, 8:]))


def test_an_include_shares_another_includes_weights():
    spec = """
pyramidgraph: 1
example: {in_channels: [16, 32, 64], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}
nodes:
  first: {include: fpn, inputs: [C3, C4, C5], params: {channels: 16, first_level: 3, extra: none}}
  second: {include: fpn, inputs: [first.P3, first.P4, first.P5], params: {channels: 16, first_level: 3, extra: none}, share: first}
outputs: [second.P3, second.P4, second.P5]
"""
    with pytest.raises(pyramidgraph.SpecError) as info:  # first's inputs are 16, 32, 64 wide; second's all 16
        pyramidgraph.compile(spec)
    assert str(info.value) == (  # at the include's share:, not inside the included file
        "<string>:7:126: nodes.second.share: share: 'second.L4' uses the weights of 'first', but 'first.L4.post0' is conv1x1 with 32 -> 16 channels in 'first.L4' "
        "and conv1x1 with 16 -> 16 in 'second.L4'; shared weights need the same ops and widths"
    )
    same = spec.replace("[16, 32, 64]", "[16, 16, 16]")
    neck = pyramidgraph.compile(same)
    assert all(key.startswith("first.") for key in neck.state_dict())
    calls = [n.target for n in neck.graph.nodes if n.op == "call_module"]
    assert len(calls) == 2 * len(set(calls))  # every module of the FPN runs once per include


CALLS = """
pyramidgraph: 1
example: {in_channels: [16, 32], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4}}
nodes:
  P4: {from: [C4], channels: 16}
  P3: {from: [C3, P4], channels: 16}
  B4: {from: [P3], apply: {call: {module: stage4, channels: 32, stride: 2}}}
  F4: {from: [B4, C4], fuse: sum}
outputs: [P3, F4]
"""


def test_a_called_module_is_the_callers_own_and_survives_pickling():
    import pickle

    from torch import nn

    stage = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
    neck = pyramidgraph.compile(CALLS, modules={"stage4": stage})
    assert neck.get_submodule("external.stage4") is stage
    x = neck.example_inputs()
    p3, f4 = neck(x)
    assert torch.equal(f4, stage(p3) + x[1])
    again = pickle.loads(pickle.dumps(neck))
    assert torch.equal(again(x)[1], f4)
    traced = torch.fx.symbolic_trace(neck)
    assert [n.target for n in traced.graph.nodes if n.op == "call_module" and n.target.startswith("external")] == ["external.stage4.0", "external.stage4.1"]


def test_a_called_module_must_be_given_and_be_a_module():
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(CALLS)
    assert str(info.value) == "<string>:8:3: nodes.B4.apply: call: the spec calls module 'stage4' but no such module was given; compile(spec, modules={'stage4': module})"
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(CALLS, modules={"stage4": 3})
    assert str(info.value) == "<string>:8:3: nodes.B4.apply: call: the spec calls module 'stage4' but it is a int, not an nn.Module; compile(spec, modules={'stage4': module})"


def test_checking_and_measuring_a_spec_with_calls_needs_no_module():
    assert pyramidgraph.validate(CALLS).ir.values()["B4"].describe() == "32 channels at level 4, 4x4"
    cost = pyramidgraph.neck_info(CALLS)
    assert [(n.name, n.channels, n.size, n.params) for n in cost.nodes] == [("P4", 16, (4, 4), 528), ("P3", 16, (8, 8), 0), ("B4", 32, (4, 4), 0), ("F4", 32, (4, 4), 0)]


SHARES = """
pyramidgraph: 1
example: {in_channels: [16, 16], image: 64}
inputs: {C3: {level: 3}, C4: {level: 4}}
nodes:
%s
"""


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "  A: {from: [C3], channels: 8}\n  B: {from: [C4], share: A, level: 3, channels: 8}\noutputs: [A, B]",
            "<string>:7:26: nodes.B.share: share: 'B' uses the weights of 'A' but would hold weights 'A' does not have (A.from_C4); a node that shares weights has the same inputs and ops as the one it shares with",
        ),
        (
            "  A: {from: [C3], post: [conv3x3]}\n  B: {from: [C4], share: A, post: [conv3x3, conv1x1]}\noutputs: [A, B]",
            "<string>:7:26: nodes.B.share: share: 'B' uses the weights of 'A' but would hold weights 'A' does not have (A.post1); a node that shares weights has the same inputs and ops as the one it shares with",
        ),
        (
            "  A: {from: [C3], post: [conv3x3, conv1x1]}\n  B: {from: [C4], share: A, post: [conv3x3]}\noutputs: [A, B]",
            "<string>:7:26: nodes.B.share: share: 'B' uses the weights of 'A' but leaves out weights of 'A' (A.post1); a node that shares weights has the same inputs and ops as the one it shares with",
        ),
        (
            "  A: {from: [C3], post: [conv3x3]}\n  B: {from: [C4], share: A, post: [conv3x3]}\n  C: {from: [C4], share: B, post: [conv3x3]}\noutputs: [A, B, C]",
            "<string>:8:26: nodes.C.share: share: 'B' uses the weights of 'A' itself; share 'A' instead",
        ),
        (
            "  inc: {include: fpn, inputs: [C3, C4], params: {channels: 8, first_level: 3, extra: none}}\n  B: {from: [inc.P4], share: inc, post: [conv3x3]}\noutputs: [inc.P3, B]",
            "<string>:7:30: nodes.B.share: share: 'inc' is an included spec; a node shares another node's weights (an include shares another include's)",
        ),
        (
            "  A: {from: [C3], post: [bn]}\n  B: {from: [A], share: A, post: [{bn: {eps: 0.001}}]}\noutputs: [B, C4]",
            "<string>:7:25: nodes.B.share: share: 'B' uses the weights of 'A', but 'A.post0' is bn (eps=1e-05) with 16 -> 16 channels in 'A' "
            "and bn (eps=0.001) with 16 -> 16 in 'B'; shared weights need the same ops and widths",
        ),
        ("  external: {from: [C3], post: [conv1x1]}\noutputs: [external, C4]", "<string>:6:3: nodes.external: 'external' holds the modules a spec calls (apply: {call: ...}); choose another name, such as 'external_'"),
        (
            "  A: {from: [C3], apply: {call: {module: forward}}}\noutputs: [A, C4]",
            "<string>:6:3: nodes.A: call: module 'forward' must be a plain name (letters, digits and _) that is not an attribute of nn.Module, such as 'stage2'",
        ),
        ("  A: {from: [C3], apply: {split: 1}}\noutputs: [A.0, C4]", "<string>:6:3: nodes.A: split: parts must be at least 2, got 1"),
        ("  A: {from: [C3], apply: {split: 0}}\noutputs: [A.0, C4]", "<string>:6:26: nodes.A.apply: apply op 'split': parameter 'parts' must be between 1 and 65536, not 0"),
    ],
)
def test_shares_that_cannot_hold_and_bad_names_are_refused_where_written(body, message):
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(SHARES % body)
    assert [issue.format() for issue in info.value.issues] == [message]


def test_a_share_inside_a_shared_block_keeps_the_block_the_owner():
    body = (
        "  A: {from: [C3], post: [conv3x3]}\n  cell:\n    repeat: 2\n    share: true\n    inputs: [A]\n    outputs: [O4]\n    nodes:\n"
        "      O3: {from: [A], post: [conv3x3]}\n      O4: {from: [O3], share: O3, post: [conv3x3]}\noutputs: [cell.O4, C4]"
    )
    neck = pyramidgraph.compile(SHARES % body)
    assert list(neck.state_dict()) == ["A.post0.weight", "A.post0.bias", "cell.O3.post0.weight", "cell.O3.post0.bias"]
    assert [n.target for n in neck.graph.nodes if n.op == "call_module"] == ["A.post0"] + ["cell.O3.post0"] * 4


def test_an_index_may_be_part_of_an_included_specs_output_name(tmp_path):
    (tmp_path / "halves.yaml").write_text("pyramidgraph: 1\ninputs: {X: {level: 3}}\nnodes:\n  halves: {from: [X], apply: {split: 2}}\noutputs: [halves.0, halves.1]\n")
    (tmp_path / "main.yaml").write_text(
        "pyramidgraph: 1\nexample: {in_channels: [16], image: 64}\ninputs: {C3: {level: 3}}\nnodes:\n"
        "  inc: {include: halves.yaml, inputs: [C3]}\n  A: {from: [inc.halves.0], post: [conv3x3]}\n"
        "  cell:\n    inputs: [A]\n    outputs: [S]\n    nodes:\n      S: {from: [A], apply: {split: 2}}\n"
        "outputs: [A, inc.halves.1, cell.S.1]\n"
    )
    neck = pyramidgraph.compile(tmp_path / "main.yaml")
    assert neck.output_names == ["A", "halves.1", "S.1"]
    assert [tuple(o.shape) for o in neck(neck.example_inputs())] == [(1, 8, 8, 8), (1, 8, 8, 8), (1, 4, 8, 8)]


def test_a_spec_with_several_outputs_renders():
    from pyramidgraph.render import render

    spec = BASE % "  A: {from: [halves.0], post: [conv3x3]}\n  B: {from: [halves.1], share: A, post: [conv3x3]}\noutputs: [A, B]"
    assert '"halves" ->' in render(spec).source or "halves ->" in render(spec).source
    assert "split /2" in render(spec, lowered=True).source


def test_list_parameters_take_expressions_item_by_item():
    spec = """
pyramidgraph: 1
example: {in_channels: [16], image: 64}
params: {half: 8}
inputs: {C3: {level: 3}}
nodes:
  A: {from: [C3], apply: {split: {sizes: [$half, "${half}"]}}}
outputs: [A.0, A.1]
"""
    neck = pyramidgraph.compile(spec)
    assert [tuple(o.shape) for o in neck(neck.example_inputs())] == [(1, 8, 8, 8), (1, 8, 8, 8)]
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate(spec.replace("$half, ", "x, "))
    assert str(info.value) == "<string>:7:43: nodes.A.apply.split.sizes[0]: expected an integer or a $expression, got 'x'"
