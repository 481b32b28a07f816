"""pyramidgraph.expand: params, foreach, when, defaults, blocks with repeat/share, references."""

from __future__ import annotations

import pytest

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.expand import expand
from pyramidgraph.loader import load_document


def flat_of(spec, in_channels=None, **params):
    return pyramidgraph.validate(spec, in_channels, **params).flat


def edges(flat, node_id):
    return [edge.source for edge in flat.nodes[node_id].edges]


def issues_of(spec, in_channels=None, **params) -> list[str]:
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec, in_channels, **params)
    return [issue.format() for issue in info.value.issues]


# -- params ----------------------------------------------------------------------------------

PARAMS = """\
pyramidgraph: 1
name: params
params:
  channels: 16
  double: ${channels * 2}
  first: 3
  last: ${first + num_inputs - 1}
  widths: $in_channels
  label: "w$channels"
example: {in_channels: [4, 8, 12]}
inputs:
  C$l: {foreach: {l: "${range(first, last + 1)}"}, level: $l}
defaults: {channels: $double}
nodes:
  P$l: {foreach: {l: "${range(first, last + 1)}"}, from: [C$l]}
outputs: [{foreach: {l: "${range(first, last + 1)}"}, each: P$l}]
"""


def test_params_defaults_and_derived_values():
    flat = flat_of(PARAMS)
    assert flat.params == {"in_channels": [4, 8, 12], "num_inputs": 3, "channels": 16, "double": 32, "first": 3, "last": 5, "widths": [4, 8, 12], "label": "w16"}
    assert [(d.name, d.level, d.channels) for d in flat.inputs] == [("C3", 3, 4), ("C4", 4, 8), ("C5", 5, 12)]
    assert [n.channels for n in flat.nodes.values()] == [32, 32, 32]


def test_params_overrides_flow_into_derived_params():
    flat = flat_of(PARAMS, [4, 8, 12, 16, 20], channels=5, first=2)
    assert flat.params["num_inputs"] == 5
    assert (flat.params["double"], flat.params["last"], flat.params["label"]) == (10, 6, "w5")
    assert [d.name for d in flat.inputs] == ["C2", "C3", "C4", "C5", "C6"]
    assert list(flat.nodes) == ["P2", "P3", "P4", "P5", "P6"]
    assert [o.name for o in flat.outputs] == ["P2", "P3", "P4", "P5", "P6"]


def test_num_inputs_follows_in_channels_given_as_a_mapping():
    flat = flat_of(PARAMS, {"C3": 1, "C4": 2, "C5": 3})
    assert flat.params["num_inputs"] == 3
    assert flat.params["in_channels"] == [1, 2, 3]
    assert [d.channels for d in flat.inputs] == [1, 2, 3]


def test_builtin_params_cannot_be_overridden():
    assert issues_of(PARAMS, [4, 8, 12], num_inputs=2) == ["<string>:4:3: params: parameter 'num_inputs' is derived from in_channels and cannot be set"]


def test_unknown_param_override_is_reported_with_a_hint():
    assert issues_of(PARAMS, [4, 8, 12], chanels=2) == ["<string>:4:3: params: unknown parameter 'chanels'; did you mean 'channels'?"]


def test_param_expression_errors_are_located_at_the_param():
    text = PARAMS.replace("double: ${channels * 2}", "double: ${channels * nope}")
    messages = issues_of(text)
    assert messages[0] == "<string>:5:11: params.double: unknown name 'nope'"


# -- foreach, when, defaults -------------------------------------------------------------------

FOREACH = """\
pyramidgraph: 1
params: {channels: 8, extra: true, levels: [3, 4, 5]}
inputs:
  C$l: {foreach: {l: $levels}, level: $l, channels: 8}
defaults:
  channels: $channels
  fuse: mean
  post: [conv3x3, relu]
  resample: {up: bilinear}
nodes:
  P${l}_td:
    foreach: {l: [3, 4]}
    from:
      - C$l
      - {foreach: {k: "${range(l + 1, 6)}"}, each: C$k}
  P5_td: {from: [C5], post: []}
  X${a}_$b:
    foreach: {a: [1, 2], b: [x, y]}
    when: ${a == 1 or b == 'y'}
    level: 5
    from: [P5_td]
    post: [conv1x1]
  E: {when: $extra, from: [P5_td], level: 6}
outputs: [P3_td, P4_td, P5_td, X1_x, X1_y, X2_y, {foreach: {n: "${['E'] if extra else []}"}, each: $n}]
"""


def test_foreach_in_node_keys_and_in_list_items():
    flat = flat_of(FOREACH)
    assert list(flat.nodes) == ["P3_td", "P4_td", "P5_td", "X1_x", "X1_y", "X2_y", "E"]
    assert edges(flat, "P3_td") == ["C3", "C4", "C5"]
    assert edges(flat, "P4_td") == ["C4", "C5"]
    assert [e.ref for e in flat.nodes["P3_td"].edges] == ["C3", "C4", "C5"]


def test_when_drops_nodes_and_foreach_combinations():
    flat = flat_of(FOREACH, extra=False)
    assert list(flat.nodes) == ["P3_td", "P4_td", "P5_td", "X1_x", "X1_y", "X2_y"]
    assert [o.name for o in flat.outputs] == ["P3_td", "P4_td", "P5_td", "X1_x", "X1_y", "X2_y"]


def test_defaults_apply_where_a_node_says_nothing():
    flat = flat_of(FOREACH)
    p3 = flat.nodes["P3_td"]
    assert p3.channels == 8
    assert p3.fuse.name == "mean"
    conv = {"kernel": 3, "stride": None, "bias": True, "groups": 1, "dilation": 1, "padding": None, "out": None, "norm": None, "act": None, "init": "default"}
    assert [(op.name, op.params()) for op in p3.post] == [("conv", conv), ("act", {"fn": "relu", "slope": 0.01})]
    assert p3.edges[1].up.params()["mode"] == "bilinear"
    assert p3.edges[1].down.name == "maxpool"
    assert p3.edges[1].project.name == "project"
    # a node's own fields win over the defaults
    assert flat.nodes["P5_td"].post == []
    assert [op.params()["kernel"] for op in flat.nodes["X1_x"].post] == [1]
    assert flat.nodes["E"].level == 6 and flat.nodes["P3_td"].level is None


def test_foreach_duplicate_names_are_reported():
    text = FOREACH.replace("foreach: {l: [3, 4]}", "foreach: {l: [3, 3]}")
    assert issues_of(text) == [
        "<string>:11:3: nodes.P3_td: duplicate name 'P3_td' (made by foreach)",
        "<string>:24:18: outputs[1]: unknown output 'P4_td'; did you mean 'P5_td'?",
    ]


def test_when_must_be_boolean():
    text = FOREACH.replace("when: $extra", "when: $channels")
    assert issues_of(text) == ["<string>:23:13: nodes.E.when: when must be true or false, got 8"]


# -- blocks ----------------------------------------------------------------------------------

BLOCK = """\
pyramidgraph: 1
name: blk
params: {channels: 8, cells: 2, share: false}
inputs:
  C3: {level: 3}
  C4: {level: 4}
defaults: {channels: $channels}
nodes:
  cell:
    repeat: $cells
    share: $share
    inputs: [C3, C4]
    outputs: [P3_out, P4_out]
    nodes:
      P4_td: {from: [C4]}
      P3_out: {from: [C3, P4_td], post: [conv3x3]}
      P4_out: {from: [P4_td, P3_out.pre], post: [conv3x3]}
  head: {from: [cell.P4_out], level: 5}
outputs: [cell.P3_out, cell.P4_out, head]
"""


def test_block_repeat_makes_uniquely_named_nodes_with_unshared_modules():
    flat = flat_of(BLOCK, [4, 8])
    assert list(flat.nodes) == ["cell.0.P4_td", "cell.0.P3_out", "cell.0.P4_out", "cell.1.P4_td", "cell.1.P3_out", "cell.1.P4_out", "head"]
    assert [n.module for n in flat.nodes.values()] == ["cell0.P4_td", "cell0.P3_out", "cell0.P4_out", "cell1.P4_td", "cell1.P3_out", "cell1.P4_out", "head"]
    assert all(n.block is None for n in flat.nodes.values())


def test_block_share_reuses_module_paths():
    flat = flat_of(BLOCK, [4, 8], share=True)
    assert list(flat.nodes) == ["cell.0.P4_td", "cell.0.P3_out", "cell.0.P4_out", "cell.1.P4_td", "cell.1.P3_out", "cell.1.P4_out", "head"]
    assert [n.module for n in flat.nodes.values()] == ["cell.P4_td", "cell.P3_out", "cell.P4_out", "cell.P4_td", "cell.P3_out", "cell.P4_out", "head"]
    assert [n.block for n in flat.nodes.values()] == ["cell"] * 6 + [None]


def test_block_inputs_chain_through_repetitions_and_pre_taps_resolve():
    flat = flat_of(BLOCK, [4, 8])
    assert edges(flat, "cell.0.P4_td") == ["C4"]
    assert edges(flat, "cell.0.P3_out") == ["C3", "cell.0.P4_td"]
    assert edges(flat, "cell.0.P4_out") == ["cell.0.P4_td", "cell.0.P3_out.pre"]
    # repetition 1 reads repetition 0's outputs in place of the block inputs
    assert edges(flat, "cell.1.P4_td") == ["cell.0.P4_out"]
    assert edges(flat, "cell.1.P3_out") == ["cell.0.P3_out", "cell.1.P4_td"]
    assert edges(flat, "cell.1.P4_out") == ["cell.1.P4_td", "cell.1.P3_out.pre"]


def test_block_outputs_outside_are_the_last_repetition():
    flat = flat_of(BLOCK, [4, 8], cells=3)
    assert edges(flat, "head") == ["cell.2.P4_out"]
    assert [(o.name, o.ref, o.source) for o in flat.outputs] == [("P3_out", "cell.P3_out", "cell.2.P3_out"), ("P4_out", "cell.P4_out", "cell.2.P4_out"), ("head", "head", "head")]


def test_shared_block_state_dict_has_one_copy_of_each_weight():
    unshared = pyramidgraph.compile(BLOCK, [8, 8])
    shared = pyramidgraph.compile(BLOCK, [8, 8], share=True)
    assert list(unshared.state_dict()) == [
        "cell0.P3_out.post0.weight",
        "cell0.P3_out.post0.bias",
        "cell0.P4_out.post0.weight",
        "cell0.P4_out.post0.bias",
        "cell1.P3_out.post0.weight",
        "cell1.P3_out.post0.bias",
        "cell1.P4_out.post0.weight",
        "cell1.P4_out.post0.bias",
    ]
    assert list(shared.state_dict()) == ["cell.P3_out.post0.weight", "cell.P3_out.post0.bias", "cell.P4_out.post0.weight", "cell.P4_out.post0.bias"]
    assert sum(p.numel() for p in shared.parameters()) == 2 * (8 * 8 * 9 + 8)
    assert sum(p.numel() for p in unshared.parameters()) == 4 * (8 * 8 * 9 + 8)


def test_unknown_block_output_is_reported_with_the_outputs():
    text = BLOCK.replace("from: [cell.P4_out], level: 5", "from: [cell.P4_ot], level: 5")
    assert issues_of(text, [4, 8]) == ["<string>:18:17: nodes.head.from[0]: block 'cell' has no output 'P4_ot'; did you mean 'P4_out'? (its outputs: P3_out, P4_out)"]


def test_block_inputs_and_outputs_must_pair_up():
    text = BLOCK.replace("outputs: [P3_out, P4_out]\n", "outputs: [P3_out]\n").replace("outputs: [cell.P3_out, cell.P4_out, head]", "outputs: [cell.P3_out, head]")
    messages = issues_of(text, [4, 8])
    assert messages[0] == (
        "<string>:13:14: nodes.cell.outputs: block 'cell' has 2 inputs but 1 outputs; repetition k+1 reads repetition k's outputs in place of the inputs, so they must pair up"
    )


def test_repeat_bounds():
    assert issues_of(BLOCK, [4, 8], cells=0)[0] == "<string>:10:13: nodes.cell.repeat: repeat must be between 1 and 1000, got 0"


def test_references_may_point_below():
    text = """\
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 4}}
nodes:
  A: {from: [B]}
  B: {from: [C3]}
outputs: [A]
"""
    flat = flat_of(text)
    assert edges(flat, "A") == ["B"]


def test_expand_returns_issues_instead_of_raising():
    doc = load_document(BLOCK.replace("from: [C4]}", "from: [C9]}"))
    flat, issues = expand(doc, [4, 8])
    assert flat is not None
    assert [issue.message for issue in issues] == ["unknown input or node 'C9'"] * 2
    assert [issue.path for issue in issues] == ["nodes.cell.nodes.P4_td.from[0]"] * 2


def test_node_count_is_bounded():
    text = """\
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 4}}
nodes:
  N$i: {foreach: {i: "${range(6000)}"}, from: [C3]}
outputs: [N0]
"""
    assert issues_of(text) == ["<string>:4:18: nodes.N$i.foreach: foreach makes 6000 copies; the limit is 5000"]
