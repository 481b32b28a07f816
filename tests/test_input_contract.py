"""The run-time input contract: a neck called with inputs it cannot take raises one
NeckInputError naming the neck, the input, what was expected and what came; sizes are checked
by the compiler's own shape inference, remembered, and refused exactly when torch would fail."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import pyramidgraph
from pyramidgraph import NeckInputError, contract


def _contract(neck) -> contract.InputContract:
    return next(node.target.__self__ for node in neck.graph.nodes if node.name == "inputs")


def _maps(neck, sizes, batch: int = 1) -> list[torch.Tensor]:
    return [torch.randn(batch, c, *((s, s) if isinstance(s, int) else s)) for c, s in zip(neck.in_channels, sizes)]


@pytest.fixture(scope="module")
def fpn():
    torch.manual_seed(0)
    return pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8).eval()


@pytest.fixture(scope="module")
def yolov8():
    torch.manual_seed(0)
    return pyramidgraph.compile("yolov8").eval()


# -- number, container, rank, width, batch ---------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda x: x[:3], "neck 'fpn': expected 4 feature maps (C2, C3, C4, C5), got 3"),
        (lambda x: tuple(x) + (x[0],), "neck 'fpn': expected 4 feature maps (C2, C3, C4, C5), got 5"),
        (lambda x: {"C2": x[0], "C3": x[1], "C5": x[3]}, "neck 'fpn': missing inputs ['C4']; expected keys ['C2', 'C3', 'C4', 'C5'], got ['C2', 'C3', 'C5']"),
        (lambda x: x[0], "neck 'fpn': expected a list, tuple or dict of tensors (C2, C3, C4, C5), got Tensor"),
        (lambda x: [x[0], x[1][0], x[2], x[3]], "neck 'fpn': input C3: expected a 4-D tensor (batch, 16, height, width), got a 3-D tensor of shape (16, 8, 8)"),
        (lambda x: [x[0], x[1], x[2].numpy(), x[3]], "neck 'fpn': input C4: expected a 4-D tensor (batch, 32, height, width), got ndarray"),
        (lambda x: [x[0], x[1], torch.randn(1, 33, 4, 4), x[3]], "neck 'fpn': input C4: expected 32 channels, got 33 (shape (1, 33, 4, 4))"),
        (lambda x: [x[0], x[1], torch.randn(2, 32, 4, 4), x[3]], "neck 'fpn': input C4: expected batch size 1 (as C2), got 2"),
        (lambda x: [x[0], x[1], torch.randn(1, 32, 0, 4), x[3]], "neck 'fpn': input C4: expected height and width of at least 1, got 0x4"),
    ],
)
def test_wrong_inputs_raise_one_message(fpn, make, message):
    with pytest.raises(NeckInputError) as info:
        fpn(make(_maps(fpn, [16, 8, 4, 2])))
    assert str(info.value) == message


def test_the_error_is_a_type_error_and_a_value_error(fpn):
    inputs = _maps(fpn, [16, 8, 4, 2])
    with pytest.raises(TypeError):  # what a wrong number of inputs always raised
        fpn(inputs[:3])
    with pytest.raises(ValueError):
        fpn([inputs[0], torch.randn(1, 3, 8, 8), inputs[2], inputs[3]])


def test_dict_inputs_use_the_callers_names():
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8, input_names=["res2", "res3", "res4", "res5"])
    inputs = dict(zip(neck.input_names, _maps(neck, [16, 8, 4, 2])))
    inputs["res4"] = torch.randn(1, 31, 4, 4)
    with pytest.raises(NeckInputError, match=r"^neck 'fpn': input res4: expected 32 channels, got 31"):
        neck(inputs)


def test_inputs_a_spec_ignores_are_not_checked():
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8, start=1)  # C2 is accepted and ignored
    outputs = neck([None] + _maps(neck, [16, 8, 4, 2])[1:])
    assert [tuple(o.shape[-2:]) for o in outputs] == [(8, 8), (4, 4), (2, 2), (1, 1)]


# -- sizes -----------------------------------------------------------------------------------


def test_yolov8_at_odd_sizes_names_the_rule(yolov8):
    with pytest.raises(NeckInputError) as info:
        yolov8(_maps(yolov8, [41, 21, 11]))
    assert str(info.value) == (
        "neck 'yolov8': input sizes fail at nodes.P4_td: inputs of 'P4_td' do not line up: 'C5' gives 22x22, 'C4' gives 21x21; "
        "expected image sides divisible by 32 (fixed-factor upsampling in P4_td.from_C5, P3_out.from_P4_td): "
        "C3 a multiple of 4, each input exactly half the next finer; got C3 41x41, C4 21x21, C5 11x11"
    )


def test_yolov8_by_size_takes_odd_sizes():
    neck = pyramidgraph.compile("yolov8", upsample_by="size").eval()
    with torch.no_grad():
        outputs = neck(_maps(neck, [41, 21, 11]))
    assert [tuple(o.shape) for o in outputs] == [(1, 64, 41, 41), (1, 128, 21, 21), (1, 256, 11, 11)]


def test_fpn_at_odd_ceil_sizes(fpn):
    """A 201x333 image through stride-2 padded convs: each input is ceil(image / stride)."""
    sizes = [(51, 84), (26, 42), (13, 21), (7, 11)]
    with torch.no_grad():
        outputs = fpn(_maps(fpn, sizes, batch=2))
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 51, 84), (2, 8, 26, 42), (2, 8, 13, 21), (2, 8, 7, 11), (2, 8, 4, 6)]


def test_fpn_at_floor_sizes_passes_the_precise_check_once():
    """41, 20, 10, 5 (unpadded stride-2 pooling): not the pattern remembered at compile time,
    so shape inference runs, accepts, and is not asked again for these sizes."""
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=8).eval()
    checks = _contract(neck)
    before = checks.precise_checks
    with torch.no_grad():
        outputs = neck(_maps(neck, [41, 20, 10, 5]))
        assert checks.precise_checks == before + 1
        assert [tuple(o.shape) for o in outputs] == [(1, 8, 41, 41), (1, 8, 20, 20), (1, 8, 10, 10), (1, 8, 5, 5), (1, 8, 3, 3)]
        neck(_maps(neck, [41, 20, 10, 5], batch=3))
        neck(_maps(neck, [57, 28, 14, 7]))  # the same residue class (41 + 16), larger: known to work
    assert checks.precise_checks == before + 1


def test_compile_time_sizes_need_no_shape_inference(yolov8):
    checks = _contract(yolov8)
    before = checks.precise_checks
    with torch.no_grad():
        yolov8(yolov8.example_inputs())  # the spec's example image, 640
        yolov8(yolov8.example_inputs(image=(800, 1216)))  # another multiple of 32, larger
    assert checks.precise_checks == before


def test_pafpn_refuses_floor_sizes_and_says_which_work():
    neck = pyramidgraph.compile("pafpn", [8, 16, 32, 64], channels=8)
    with pytest.raises(NeckInputError) as info:
        neck(_maps(neck, [41, 20, 10, 5]))
    assert str(info.value) == (
        "neck 'pafpn': input sizes fail at nodes.N3: inputs of 'N3' do not line up: 'P3' gives 20x20, 'D3' gives 21x21; "
        "expected inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; "
        "floor(image / stride) only for image sides divisible by 32; got C2 41x41, C3 20x20, C4 10x10, C5 5x5"
    )
    checks = _contract(neck)
    before = checks.precise_checks
    with pytest.raises(NeckInputError):
        neck(_maps(neck, [41, 20, 10, 5]))
    assert checks.precise_checks == before  # the verdict is remembered too
    assert [tuple(o.shape[-2:]) for o in neck(_maps(neck, [41, 21, 11, 6]))][:4] == [(41, 41), (21, 21), (11, 11), (6, 6)]


SPECS = {
    "fpn": {"channels": 8},
    "pafpn": {"channels": 8},
    "yolov8": {},
    "fpg": {"channels": 8, "inter_channels": 8, "stack_times": 3},
    "asff": {"in_channels": [16, 16, 32], "out3": 8, "out4": 8, "out5": 8},
}


def _succeeds(neck, inputs, failure: type[Exception]) -> bool:
    """Whether the neck runs on ``inputs``; False when it raises ``failure`` (anything else propagates)."""
    try:
        with torch.no_grad():
            neck(inputs)
    except failure:
        return False
    return True


@pytest.mark.parametrize("name", list(SPECS))
def test_the_check_refuses_exactly_what_torch_cannot_run(name, monkeypatch):
    torch.manual_seed(0)
    options = dict(SPECS[name])
    neck = pyramidgraph.compile(name, options.pop("in_channels", None), **options).eval()
    levels = [shape.level for _, shape in neck.info.inputs]
    for finest in range(32, 48):
        for kind in ("ceil", "floor"):
            sides = [-(-finest >> (level - levels[0])) if kind == "ceil" else finest >> (level - levels[0]) for level in levels]
            inputs = _maps(neck, sides)
            monkeypatch.setattr(contract, "ENABLED", False)
            runs = _succeeds(neck, inputs, RuntimeError)
            monkeypatch.setattr(contract, "ENABLED", True)
            assert _succeeds(neck, inputs, NeckInputError) == runs, (kind, sides)


RULES = {
    "fpn": "any image size (inputs of ceil or floor of image / stride)",
    "nasfpn": "any image size (inputs of ceil or floor of image / stride)",
    "bfp": "any image size (inputs of ceil or floor of image / stride)",
    "pafpn": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "bifpn": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "fpg": "image sides divisible by 64 (fixed-factor upsampling in path.1.Q5.from_P6.0, path.2.Q4.from_P5.0, ...): C2 a multiple of 16, each input exactly half the next finer",
    "yolox_pafpn": "image sides divisible by 32 (fixed-factor upsampling in T4.from_R5, T3.from_R4): C3 a multiple of 4, each input exactly half the next finer",
    "yolov8": "image sides divisible by 32 (fixed-factor upsampling in P4_td.from_C5, P3_out.from_P4_td): C3 a multiple of 4, each input exactly half the next finer",
    "asff": "image sides divisible by 32 (fixed-factor upsampling in L4_fused.from_C5, L3_fused.from_C5, ...): C3 a multiple of 4, each input exactly half the next finer",
    "fpt": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "rfp": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "pan_attention": "any image size (inputs of ceil or floor of image / stride)",
    "efm": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "m2det": "image sides divisible by 16 (fixed-factor upsampling in base.from_up_reduce): shallow a multiple of 2, each input exactly half the next finer",
    "hrfpn": "image sides divisible by 32 (fixed-factor upsampling in R.from_C3, R.from_C4, ...): C2 a multiple of 8, each input exactly half the next finer",
    "channel_mapper": "any image size (inputs of ceil or floor of image / stride)",
    "ssh": "any image size (inputs of ceil or floor of image / stride)",
    "dilated_encoder": "any image size (inputs of ceil or floor of image / stride)",
    "ct_resnet_neck": "any image size (inputs of ceil or floor of image / stride)",
    "cspnext_pafpn": "image sides divisible by 32 (fixed-factor upsampling in pafpn.T4.from_R5, pafpn.T3.from_R4): C3 a multiple of 4, each input exactly half the next finer",
    "nasfcos_fpn": "any image size (inputs of ceil or floor of image / stride)",
    "ssd_neck": "any image size (inputs of ceil or floor of image / stride)",
    "yolov3_neck": "image sides divisible by 32 (fixed-factor upsampling in O4.from_U5, O3.from_U4): C3 a multiple of 4, each input exactly half the next finer",
    "dyhead": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 128",
    "fpn_carafe": "inputs of ceil(image / stride), as padded stride-2 convs give them, for any image size; floor(image / stride) only for image sides divisible by 32",
    "yolo11": "image sides divisible by 32 (fixed-factor upsampling in P4_td.from_C5, P3_out.from_P4_td): C3 a multiple of 4, each input exactly half the next finer",
    "rtdetr_hybrid_encoder": "image sides divisible by 32 (fixed-factor upsampling in Y4.from_Y5, P3.from_Y4): C3 a multiple of 4, each input exactly half the next finer",
    "afpn": "image sides divisible by 32 (fixed-factor upsampling in S1_2.from_R3, S2_2.from_S1_3, ...): C2 a multiple of 8, each input exactly half the next finer",
    "giraffe_neck_v2": "image sides divisible by 32 (fixed-factor upsampling in P4_td.from_P5_td, P3_out.from_P4_td): C3 a multiple of 4, each input exactly half the next finer",
}


def test_every_bundled_spec_has_its_size_rule_here():
    assert set(RULES) == set(pyramidgraph.bundled_specs())


@pytest.mark.parametrize("name", list(RULES))
def test_size_rule_of_each_bundled_spec(name):
    """The table of the README's input section."""
    assert _contract(pyramidgraph.compile(name)).size_rule() == RULES[name]


# -- copies, pickling, torch.export ---------------------------------------------------------


def test_the_check_survives_deepcopy_and_pickle(yolov8):
    for clone in (copy.deepcopy(yolov8), pickle.loads(pickle.dumps(yolov8))):
        with pytest.raises(NeckInputError, match=r"^neck 'yolov8': input sizes fail at nodes.P4_td: .*divisible by 32"):
            clone(_maps(clone, [41, 21, 11]))
        with pytest.raises(NeckInputError, match=r"^neck 'yolov8': input C4: expected 128 channels, got 127"):
            clone(_maps(clone, [40, 20, 10])[:1] + [torch.randn(1, 127, 20, 20), torch.randn(1, 256, 10, 10)])


def test_a_pickled_contract_rebuilds_its_shape_inference(yolov8):
    checks = pickle.loads(pickle.dumps(_contract(yolov8)))
    with pytest.raises(NeckInputError, match="divisible by 32"):
        checks.check_inputs(_maps(yolov8, [41, 21, 11]))
    assert len(checks.check_inputs(_maps(yolov8, [44, 22, 11]))) == 3


def test_the_switch_turns_the_check_off(fpn, monkeypatch):
    monkeypatch.setattr(contract, "ENABLED", False)
    with pytest.raises(RuntimeError) as info:
        fpn(_maps(fpn, [16, 8, 4, 2])[:2] + [torch.randn(1, 33, 4, 4), torch.randn(1, 64, 2, 2)])
    assert not isinstance(info.value, NeckInputError)


def test_torch_export_skips_the_check(fpn):
    inputs = _maps(fpn, [16, 8, 4, 2])
    exported = torch.export.export(fpn, (inputs,))
    assert not any("check_inputs" in str(node.target) for node in exported.graph.nodes)
    for a, b in zip(exported.module()(inputs), fpn(inputs)):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_torch_compile_of_a_neck_with_the_check():
    torch.manual_seed(0)
    neck = pyramidgraph.compile("yolov8").eval()
    compiled = torch.compile(neck)
    with torch.no_grad():
        for image in (320, 416):
            inputs = neck.example_inputs(image=image)
            for a, b in zip(compiled(inputs), neck(inputs)):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(NeckInputError):
        neck(_maps(neck, [41, 21, 11]))  # eager calls are still checked
