"""pyramidgraph.compile and the PyramidNeck it returns: sources, arguments, calling
conventions, return types, state_dict names, metadata, copying, pickling and code."""

from __future__ import annotations

import copy
import pickle
from collections import OrderedDict

import pytest
import torch

import pyramidgraph
from pyramidgraph import PyramidNeck, ShapeSpec, SpecError

FPN_ARGS = ([8, 16, 32, 64],)
FPN_KW = {"channels": 16}


@pytest.fixture(scope="module")
def fpn() -> PyramidNeck:
    torch.manual_seed(0)
    return pyramidgraph.compile("fpn", *FPN_ARGS, **FPN_KW)


def _inputs(neck: PyramidNeck, batch: int = 2, image=(64, 96), seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return neck.example_inputs(batch=batch, image=image)


def _same(a, b) -> bool:
    a = list(a.values()) if isinstance(a, dict) else list(a)
    b = list(b.values()) if isinstance(b, dict) else list(b)
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# -- spec sources ----------------------------------------------------------------------------


def test_bundled_name_path_yaml_text_and_dict_give_the_same_neck(tmp_path):
    path = pyramidgraph.bundled_specs()["fpn"]
    text = path.read_text(encoding="utf-8")
    copy_path = tmp_path / "my_fpn.yaml"
    copy_path.write_text(text, encoding="utf-8")
    data = pyramidgraph.load("fpn").data
    necks = [
        pyramidgraph.compile("fpn", *FPN_ARGS, **FPN_KW),
        pyramidgraph.compile("fpn.yaml", *FPN_ARGS, **FPN_KW),
        pyramidgraph.compile(str(copy_path), *FPN_ARGS, **FPN_KW),
        pyramidgraph.compile(copy_path, *FPN_ARGS, **FPN_KW),
        pyramidgraph.compile(text, *FPN_ARGS, **FPN_KW),
        pyramidgraph.compile(data, *FPN_ARGS, **FPN_KW),
    ]
    keys = list(necks[0].state_dict())
    state = necks[0].state_dict()
    inputs = _inputs(necks[0])
    expected = necks[0](inputs)
    for neck in necks[1:]:
        assert list(neck.state_dict()) == keys
        assert neck.output_names == ["P2", "P3", "P4", "P5", "P6"]
        neck.load_state_dict(state)
        assert _same(neck(inputs), expected)


def test_unknown_spec_name_is_a_spec_error_with_a_hint():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("fpnn")
    assert str(info.value) == "fpnn: <spec>: no spec 'fpnn': not a file and not a bundled spec; did you mean 'fpn'?"


# -- arguments -------------------------------------------------------------------------------


def test_in_channels_as_list_or_mapping(fpn):
    by_name = pyramidgraph.compile("fpn", {"C2": 8, "C3": 16, "C4": 32, "C5": 64}, **FPN_KW)
    assert by_name.in_channels == [8, 16, 32, 64]
    assert by_name.input_names == ["C2", "C3", "C4", "C5"]
    assert {k: tuple(v.shape) for k, v in by_name.state_dict().items()} == {k: tuple(v.shape) for k, v in fpn.state_dict().items()}


def test_in_channels_mapping_with_an_unknown_name_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("fpn", {"C2": 8, "C3": 16, "C4": 32, "C9": 64}, **FPN_KW)
    assert "in_channels names 'C9', which is not an input" in [issue.message for issue in info.value.issues]


def test_params_override_by_keyword_and_by_mapping():
    default = pyramidgraph.compile("bifpn")
    narrow = pyramidgraph.compile("bifpn", channels=32)
    assert (default.out_channels, narrow.out_channels) == (64, 32)
    assert narrow.info.params["channels"] == 32
    by_mapping = pyramidgraph.compile("bifpn", params={"channels": 32})
    assert {k: tuple(v.shape) for k, v in by_mapping.state_dict().items()} == {k: tuple(v.shape) for k, v in narrow.state_dict().items()}


def test_unknown_param_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("bifpn", chanels=32)
    assert [issue.message for issue in info.value.issues] == ["unknown parameter 'chanels'; did you mean 'channels'?"]


def test_unknown_pass_name_is_a_spec_error():
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile("fpn", *FPN_ARGS, passes=("cse", "csee"), **FPN_KW)
    assert [(issue.path, issue.message) for issue in info.value.issues] == [("passes", "unknown pass 'csee'; did you mean 'cse'?")]


# -- calling conventions ---------------------------------------------------------------------


def test_list_tuple_and_dict_inputs_give_identical_results(fpn):
    inputs = _inputs(fpn)
    from_list = fpn(inputs)
    from_tuple = fpn(tuple(inputs))
    from_dict = fpn(dict(zip(["C2", "C3", "C4", "C5"], inputs)))
    from_reversed_dict = fpn(dict(reversed(list(zip(["C2", "C3", "C4", "C5"], inputs)))))
    assert _same(from_list, from_tuple)
    assert _same(from_list, from_dict)
    assert _same(from_list, from_reversed_dict)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x: x[:3], "neck 'fpn': expected 4 feature maps (C2, C3, C4, C5), got 3"),
        (lambda x: x + x[:1], "neck 'fpn': expected 4 feature maps (C2, C3, C4, C5), got 5"),
        (lambda x: {"C2": x[0]}, "neck 'fpn': missing inputs ['C3', 'C4', 'C5']; expected keys ['C2', 'C3', 'C4', 'C5'], got ['C2']"),
        (lambda x: x[0], "neck 'fpn': expected a list, tuple or dict of tensors (C2, C3, C4, C5), got Tensor"),
    ],
)
def test_wrong_inputs_at_call_time_raise_type_error(fpn, make, message):
    with pytest.raises(TypeError) as info:
        fpn(make(_inputs(fpn)))
    assert str(info.value) == message


RETURNS = """\
pyramidgraph: 1
name: ret
inputs:
  C3: {level: 3, channels: 4}
  C4: {level: 4, channels: 8}
defaults: {channels: 8}
nodes:
  P4: {from: [C4], post: [conv1x1]}
  P3: {from: [C3, P4], post: [conv3x3]}
outputs: {fine: P3, coarse: P4}
return: RETURN
"""


@pytest.mark.parametrize("kind, cls", [("tuple", tuple), ("list", list), ("dict", OrderedDict)])
def test_return_types(kind, cls):
    torch.manual_seed(0)
    neck = pyramidgraph.compile(RETURNS.replace("RETURN", kind))
    outputs = neck([torch.randn(2, 4, 8, 6), torch.randn(2, 8, 4, 3)])
    assert type(outputs) is cls
    assert neck.output_names == ["fine", "coarse"]
    values = list(outputs.values()) if kind == "dict" else list(outputs)
    assert [tuple(v.shape) for v in values] == [(2, 8, 8, 6), (2, 8, 4, 3)]
    if kind == "dict":
        assert list(outputs) == ["fine", "coarse"]


def test_return_types_give_the_same_values():
    torch.manual_seed(0)
    as_tuple = pyramidgraph.compile(RETURNS.replace("RETURN", "tuple"))
    as_dict = pyramidgraph.compile(RETURNS.replace("RETURN", "dict"))
    as_dict.load_state_dict(as_tuple.state_dict())
    inputs = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)]
    assert _same(as_tuple(inputs), as_dict(inputs))


def test_return_defaults_to_tuple():
    neck = pyramidgraph.compile(RETURNS.replace("return: RETURN\n", ""))
    assert type(neck([torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)])) is tuple


# -- state_dict ------------------------------------------------------------------------------


def test_state_dict_keys_are_named_after_spec_nodes(fpn):
    assert list(fpn.state_dict()) == [
        "L2.post0.weight",
        "L2.post0.bias",
        "L3.post0.weight",
        "L3.post0.bias",
        "L4.post0.weight",
        "L4.post0.bias",
        "L5.post0.weight",
        "L5.post0.bias",
        "P2.post0.weight",
        "P2.post0.bias",
        "P3.post0.weight",
        "P3.post0.bias",
        "P4.post0.weight",
        "P4.post0.bias",
        "P5.post0.weight",
        "P5.post0.bias",
    ]
    shapes = {k: tuple(v.shape) for k, v in fpn.state_dict().items()}
    assert shapes["L2.post0.weight"] == (16, 8, 1, 1)
    assert shapes["L5.post0.weight"] == (16, 64, 1, 1)
    assert shapes["P2.post0.weight"] == (16, 16, 3, 3)


def test_state_dict_keys_are_stable_across_compiles():
    for name in ("fpn", "pafpn", "bifpn"):
        first = list(pyramidgraph.compile(name).state_dict())
        second = list(pyramidgraph.compile(name).state_dict())
        assert first == second


def test_bifpn_state_dict_names_cells_and_edges():
    keys = set(pyramidgraph.compile("bifpn", [8, 16, 32], channels=8, cells=2).state_dict())
    for key in (
        "P6.from_P5.conv.weight",
        "P6.from_P5.bn.running_mean",
        "cell0.P4_td.fuse.weight",
        "cell0.P4_td.post1.dw.weight",
        "cell0.P4_td.post1.pw.weight",
        "cell0.P4_td.post2.weight",
        "cell0.P4_out.from_P4.conv.weight",
        "cell0.P5_out.from_P5.bn.weight",
        "cell1.P7_out.fuse.weight",
    ):
        assert key in keys
    assert not any(k.startswith("cell2.") for k in keys)
    assert "cell0.P3_out.from_P3.conv.weight" not in keys  # P3 is already 8 wide: no projection
    assert not any(".from_" in k for k in keys if k.startswith("cell1."))  # cell 1 reads cell 0's 8-wide outputs


# -- metadata --------------------------------------------------------------------------------


def test_metadata(fpn):
    assert fpn.out_channels == 16
    assert fpn.output_names == ["P2", "P3", "P4", "P5", "P6"]
    assert fpn.input_names == ["C2", "C3", "C4", "C5"]
    assert fpn.in_channels == [8, 16, 32, 64]
    assert fpn.strides == [4, 8, 16, 32, 64]
    assert fpn.output_shapes == OrderedDict(
        [("P2", ShapeSpec(16, 4)), ("P3", ShapeSpec(16, 8)), ("P4", ShapeSpec(16, 16)), ("P5", ShapeSpec(16, 32)), ("P6", ShapeSpec(16, 64))]
    )
    assert repr(fpn) == "PyramidNeck(fpn: 4 inputs -> P2: 16ch/4, P3: 16ch/8, P4: 16ch/16, P5: 16ch/32, P6: 16ch/64)"


def test_out_channels_is_a_list_when_widths_differ():
    spec = RETURNS.replace("return: RETURN\n", "").replace("P4: {from: [C4], post: [conv1x1]}", "P4: {from: [C4], post: [conv1x1], channels: 12}")
    spec = spec.replace("P3: {from: [C3, P4], post: [conv3x3]}", "P3: {from: [C3, {from: P4, project: project}], post: [conv3x3]}")
    neck = pyramidgraph.compile(spec)
    assert neck.out_channels == [8, 12]


def test_example_inputs_shapes(fpn):
    inputs = fpn.example_inputs(batch=2, image=(64, 96))
    assert [tuple(x.shape) for x in inputs] == [(2, 8, 16, 24), (2, 16, 8, 12), (2, 32, 4, 6), (2, 64, 2, 3)]
    # odd sizes round up, like a backbone's stride-2 convs with padding
    assert [tuple(x.shape) for x in fpn.example_inputs(image=(65, 33))] == [(1, 8, 17, 9), (1, 16, 9, 5), (1, 32, 5, 3), (1, 64, 3, 2)]
    # without an image: the spec example's (512)
    assert [tuple(x.shape[-2:]) for x in fpn.example_inputs()] == [(128, 128), (64, 64), (32, 32), (16, 16)]


def test_forward_output_shapes_at_64x96(fpn):
    with torch.no_grad():
        outputs = fpn(fpn.example_inputs(batch=2, image=(64, 96)))
    assert [tuple(o.shape) for o in outputs] == [(2, 16, 16, 24), (2, 16, 8, 12), (2, 16, 4, 6), (2, 16, 2, 3), (2, 16, 1, 2)]


# -- copying and pickling ----------------------------------------------------------------------


def test_deepcopy_keeps_metadata_and_outputs(fpn):
    clone = copy.deepcopy(fpn)
    assert isinstance(clone, PyramidNeck)
    assert clone is not fpn
    assert (clone.output_names, clone.strides, clone.out_channels, clone.in_channels) == (fpn.output_names, fpn.strides, fpn.out_channels, fpn.in_channels)
    assert clone.info.params == fpn.info.params
    inputs = _inputs(fpn)
    assert _same(clone(inputs), fpn(inputs))
    # the copy owns its weights
    with torch.no_grad():
        clone.get_parameter("P2.post0.bias").add_(1.0)
    assert not torch.equal(clone.get_parameter("P2.post0.bias"), fpn.get_parameter("P2.post0.bias"))


def test_pickle_round_trip_keeps_metadata_and_outputs(fpn):
    clone = pickle.loads(pickle.dumps(fpn))
    assert isinstance(clone, PyramidNeck)
    assert (clone.output_names, clone.strides, clone.out_channels, clone.in_channels, clone.input_names) == (
        fpn.output_names,
        fpn.strides,
        fpn.out_channels,
        fpn.in_channels,
        fpn.input_names,
    )
    assert list(clone.state_dict()) == list(fpn.state_dict())
    inputs = _inputs(fpn)
    assert _same(clone(inputs), fpn(inputs))
    assert clone.code == fpn.code


def test_pickle_keeps_training_mode_and_buffers():
    torch.manual_seed(0)
    neck = pyramidgraph.compile("bifpn", [8, 16, 32], channels=8, cells=1)
    neck(neck.example_inputs(batch=2, image=64))  # updates BN running stats
    neck.eval()
    clone = pickle.loads(pickle.dumps(neck))
    assert clone.training is False
    for key, value in neck.state_dict().items():
        assert torch.equal(clone.state_dict()[key], value), key
    inputs = _inputs(neck, image=64)
    with torch.no_grad():
        assert _same(clone(inputs), neck(inputs))


# -- generated code --------------------------------------------------------------------------


def test_code_is_straight_line_and_named_after_spec_nodes(fpn):
    code = fpn.code
    assert "for " not in code
    assert "while " not in code
    assert "if " not in code
    for line in (
        "l2 = self.L2.post0(c2)",
        "p4_inner = l4 + p4_inner_from_p5_inner",
        "p2 = self.P2.post0(p2_inner)",
        "p6 = torch.nn.functional.max_pool2d(p5, 1, 2, 0)",
        "return (p2, p3, p4, p5, p6)",
    ):
        assert line in code


@pytest.mark.parametrize("name", ["pafpn", "bifpn"])
def test_code_has_no_loops_for_other_specs(name):
    code = pyramidgraph.compile(name).code
    assert "for " not in code
    assert "while " not in code


def test_neck_is_a_graph_module_with_the_spec_as_submodules(fpn):
    assert isinstance(fpn, torch.fx.GraphModule)
    assert isinstance(fpn.get_submodule("L3.post0"), torch.nn.Conv2d)
    assert fpn.get_submodule("P3.post0").kernel_size == (3, 3)


def test_torch_compile_matches_eager():
    """The one torch.compile test of the default run (15-40 s on a cold CPU cache): the
    generated code is straight-line enough for dynamo and inductor."""
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8).eval()
    inputs = neck.example_inputs(batch=2, image=(64, 96))
    with torch.no_grad():
        eager = neck(inputs)
        compiled = torch.compile(neck)(inputs)
    assert [tuple(o.shape) for o in compiled] == [(2, 8, 16, 24), (2, 8, 8, 12), (2, 8, 4, 6), (2, 8, 2, 3), (2, 8, 1, 2)]
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_analysis_repr_is_one_short_line():
    analysis = pyramidgraph.validate("fpn")
    assert repr(analysis) == f"Analysis('fpn': 4 inputs, 13 nodes, {len(analysis.ir.ops)} ops, 5 outputs; {pyramidgraph.bundled_specs()['fpn']})"
