"""pyramidgraph.ops: every registered op, in a tiny spec, compiles and runs with the exact output
shape; fusion weights and TensorFlow "same" pooling give the numbers computed by hand; the
registries explain what they do not know."""

from __future__ import annotations

import json
import math

import pytest
import torch

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.ops import FUSE, POST, REGISTRIES, RESAMPLE, OpError

# Three 32-wide inputs; with image 64x96: C3 is 8x12, C4 4x6, C5 2x3. Every input is also an
# output, so that a spec using only some of them is still complete.
HARNESS = """\
pyramidgraph: 1
name: harness
inputs:
  C3: {level: 3, channels: 32}
  C4: {level: 4, channels: 32}
  C5: {level: 5, channels: 32}
nodes:
  N: NODE
outputs: [N, C3, C4, C5]
"""
IMAGE = (64, 96)


def _run(node: dict) -> tuple[torch.Size, pyramidgraph.PyramidNeck]:
    spec = HARNESS.replace("NODE", json.dumps(node))
    torch.manual_seed(0)
    neck = pyramidgraph.compile(spec, image=IMAGE)
    outputs = neck(neck.example_inputs(batch=2, image=IMAGE))
    assert [tuple(o.shape) for o in outputs[1:]] == [(2, 32, 8, 12), (2, 32, 4, 6), (2, 32, 2, 3)]
    assert torch.isfinite(outputs[0]).all()
    return outputs[0].shape, neck


def _all(registry) -> list[str]:
    return sorted(registry.entries)


# -- resample ops: one edge, ``via: [op]`` ------------------------------------------------------

# op name -> (node fields, expected output shape). Up from C4 (4x6) to level 3 (8x12); down from
# C4 to level 5 (2x3); same level for identity and projections.
UP = {"level": 3}
DOWN = {"level": 5}
RESAMPLE_CASES = {
    "identity": ({"level": 4}, (2, 32, 4, 6)),
    "adown": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "aconv": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "scdown": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "upsample": (UP, (2, 32, 8, 12)),
    "nearest": (UP, (2, 32, 8, 12)),
    "bilinear": (UP, (2, 32, 8, 12)),
    "merge_resize": (UP, (2, 32, 8, 12)),
    "maxpool": (DOWN, (2, 32, 2, 3)),
    "avgpool": (DOWN, (2, 32, 2, 3)),
    "adaptive_pool": (DOWN, (2, 32, 2, 3)),
    "adaptive_maxpool": (DOWN, (2, 32, 2, 3)),
    "adaptive_avgpool": (DOWN, (2, 32, 2, 3)),
    "downsample": (DOWN, (2, 32, 2, 3)),
    "conv": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "conv_bn_act": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "ghost_conv": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "conv_module": ({"level": 5, "channels": 16}, (2, 16, 2, 3)),
    "project": ({"level": 4, "channels": 16}, (2, 16, 4, 6)),
    "deconv": ({"level": 3, "channels": 16}, (2, 16, 8, 12)),
    "deconv_padded": ({"level": 3, "channels": 16}, (2, 16, 8, 12)),
    "transposed_conv": ({"level": 3, "channels": 16}, (2, 16, 8, 12)),
    "pixel_shuffle": ({"level": 3, "channels": 16}, (2, 16, 8, 12)),
    "act": ({"level": 4}, (2, 32, 4, 6)),
    "carafe": (UP, (2, 32, 8, 12)),
    "crop": ({"level": 4}, (2, 32, 4, 6)),
    "dcn": ({"level": 4, "channels": 16}, (2, 16, 4, 6)),
    "modulated_deform_conv": ({"level": 4, "channels": 16}, (2, 16, 4, 6)),
}


def test_every_resample_op_has_a_case():
    assert sorted(RESAMPLE_CASES) == _all(RESAMPLE), "add the new resample op to RESAMPLE_CASES in tests/test_ops.py"


@pytest.mark.parametrize("name", _all(RESAMPLE))
def test_resample_op_in_a_spec(name):
    if name not in RESAMPLE_CASES:
        pytest.fail(f"no case for resample op '{name}'")
    fields, expected = RESAMPLE_CASES[name]
    shape, neck = _run(dict(fields, **{"from": [{"from": "C4", "via": [name]}]}))
    assert tuple(shape) == expected
    assert neck.info.outputs[0][1].channels == expected[1]


# -- fuse ops: two inputs, C4 and C5 (upsampled to C4's size) -------------------------------------

FUSE_WIDTH = {"concat": 64, "cat": 64}  # concatenation keeps both widths; the rest keep 32


@pytest.mark.parametrize("name", _all(FUSE))
def test_fuse_op_in_a_spec(name):
    shape, _neck = _run({"from": ["C4", "C5"], "fuse": name})
    assert tuple(shape) == (2, FUSE_WIDTH.get(name, 32), 4, 6)


# -- post ops: after a single input, at the node's width (32) ----------------------------------


# Post ops that need a larger map than C4's 4x6 run on C3 (8x12): PAN's FPA pools three times by 2.
POST_ON_C3 = {"fpa"}
# Post ops whose defaults do not fit a 32-wide node: A2C2f's hidden width (32 * 0.5) must be a multiple of 32.
POST_PARAMS = {"a2c2f": {"expansion": 1.0}}


@pytest.mark.parametrize("name", _all(POST))
def test_post_op_in_a_spec(name):
    source, size = ("C3", (8, 12)) if name in POST_ON_C3 else ("C4", (4, 6))
    shape, _neck = _run({"from": [source], "channels": 32, "post": [{name: POST_PARAMS[name]} if name in POST_PARAMS else name]})
    assert tuple(shape) == (2, 32, *size)


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registered_op_is_documented(kind):
    for name, (cls, _preset) in REGISTRIES[kind].entries.items():
        assert (cls.__doc__ or "").strip(), f"{kind} op '{name}' has no docstring (list-ops and the schema show it)"


def test_post_ops_change_widths_where_asked():
    shape, neck = _run({"from": ["C4"], "channels": 16, "post": [{"conv": {"kernel": 3}}, "bn", "relu"]})
    assert tuple(shape) == (2, 16, 4, 6)
    # a single input is projected to the node's width first (1x1), then the post ops run
    assert tuple(neck.get_submodule("N.from_C4.conv").weight.shape) == (16, 32, 1, 1)
    assert tuple(neck.get_submodule("N.post0").weight.shape) == (16, 16, 3, 3)
    shape, neck = _run({"from": ["C4"], "channels": 32, "post": [{"sepconv": {"kernel": 5, "out": 8}}, {"conv": {"kernel": 1}}]})
    assert tuple(shape) == (2, 32, 4, 6)
    assert tuple(neck.get_submodule("N.post0.dw").weight.shape) == (32, 1, 5, 5)
    assert tuple(neck.get_submodule("N.post0.pw").weight.shape) == (8, 32, 1, 1)
    assert tuple(neck.get_submodule("N.post1").weight.shape) == (32, 8, 1, 1)


# -- numerics: weighted fusion -----------------------------------------------------------------

# Three inputs, one per level (each input needs a level of its own); N sits at A's level, so B and
# C are upsampled to A's size (nearest) before fusion, and the expectations upsample them too.
WEIGHTED = """\
pyramidgraph: 1
inputs:
  A: {level: 4, channels: 3}
  B: {level: 5, channels: 3}
  C: {level: 6, channels: 3}
nodes:
  N: {level: 4, from: [A, B, C], fuse: FUSE}
outputs: [N]
"""
SIZES = [(5, 4), (3, 2), (2, 1)]  # ceil(80 / stride) x ceil(64 / stride) at strides 16, 32, 64


def _weighted(fuse: str, weights: list[float]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """N's output and the three inputs as N fuses them (upsampled to A's size)."""
    neck = pyramidgraph.compile(WEIGHTED.replace("FUSE", fuse))
    assert list(neck.state_dict()) == ["N.fuse.weight"]
    assert neck.state_dict()["N.fuse.weight"].tolist() == [1.0, 1.0, 1.0]  # EfficientDet starts at 1
    neck.load_state_dict({"N.fuse.weight": torch.tensor(weights)})
    torch.manual_seed(0)
    xs = [torch.randn(2, 3, *size, dtype=torch.float32) for size in SIZES]
    with torch.no_grad():
        (out,) = neck(xs)
    return out, [torch.nn.functional.interpolate(x, size=SIZES[0], mode="nearest") for x in xs]


def test_weighted_fast_is_relu_over_sum_plus_eps():
    out, (a, b, c) = _weighted("{weighted: {norm: fast}}", [2.0, -1.0, 0.5])
    # relu(w) = [2, 0, 0.5]; sum = 2.5; eps = 1e-4
    expected = a * (2.0 / 2.5001) + b * 0.0 + c * (0.5 / 2.5001)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_weighted_fast_eps_is_a_parameter():
    out, (a, b, c) = _weighted("{fast: {eps: 0.5}}", [1.0, 1.0, 2.0])
    expected = (a * 1.0 + b * 1.0 + c * 2.0) / 4.5
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_weighted_softmax():
    out, (a, b, c) = _weighted("softmax", [0.0, math.log(3.0), 0.0])
    # softmax([0, ln 3, 0]) = [1/5, 3/5, 1/5]
    expected = a * 0.2 + b * 0.6 + c * 0.2
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_weighted_none_uses_raw_weights():
    out, (a, b, c) = _weighted("{weighted: {norm: none}}", [2.0, -1.0, 0.5])
    torch.testing.assert_close(out, 2.0 * a - b + 0.5 * c, rtol=1e-6, atol=1e-6)


def test_weighted_fast_gradient_reaches_the_weights():
    neck = pyramidgraph.compile(WEIGHTED.replace("FUSE", "fast"))
    xs = [torch.full((1, 3, *size), float(i + 1)) for i, size in enumerate([(2, 2), (1, 1), (1, 1)])]
    neck(xs)[0].sum().backward()
    # out = sum_i w_i x_i / (sum w + eps); with w = 1: d/dw_j = (x_j - out) / (3 + eps) summed over 12 elements
    mean = (1.0 + 2.0 + 3.0) / 3.0001
    expected = [12 * (x - mean) / 3.0001 for x in (1.0, 2.0, 3.0)]
    torch.testing.assert_close(neck.get_parameter("N.fuse.weight").grad, torch.tensor(expected), rtol=1e-4, atol=1e-4)


def test_sum_and_mean_numerics():
    xs = [torch.full((1, 3, *size), v) for v, size in zip((1.0, 2.0, 6.0), [(2, 2), (1, 1), (1, 1)])]
    assert neck_of("sum")(xs)[0].unique().tolist() == [9.0]
    assert neck_of("mean")(xs)[0].unique().tolist() == [3.0]
    cat = neck_of("concat")(xs)[0]
    assert cat.shape == (1, 9, 2, 2)
    assert cat[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 6.0, 6.0, 6.0]


def neck_of(fuse: str):
    return pyramidgraph.compile(WEIGHTED.replace("FUSE", fuse))


# -- numerics: pooling -------------------------------------------------------------------------

POOL = """\
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 1}}
nodes:
  N: {level: 4, from: [{from: C3, via: [OP]}]}
outputs: [N]
"""


def _pool(op: str, x: torch.Tensor) -> torch.Tensor:
    neck = pyramidgraph.compile(POOL.replace("OP", op))
    with torch.no_grad():
        return neck([x])[0]


@pytest.mark.parametrize("size, expected", [((7, 5), (4, 3)), ((8, 6), (4, 3)), ((9, 9), (5, 5)), ((1, 2), (1, 1)), ((33, 17), (17, 9))])
def test_same_padding_maxpool_gives_ceil_half(size, expected):
    out = _pool("{maxpool: {kernel: 3, stride: 2, padding: same}}", torch.randn(1, 1, *size))
    assert tuple(out.shape[-2:]) == expected == (math.ceil(size[0] / 2), math.ceil(size[1] / 2))


def test_same_padding_maxpool_pads_bottom_right_with_minus_infinity():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # TensorFlow "same": pad 0 on top/left and 1 on bottom/right; windows rows/cols 0-2 and 2-4
    assert _pool("{maxpool: {kernel: 3, stride: 2, padding: same}}", x)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]
    # the default (symmetric padding 1) gives PyTorch's windows -1..1 and 1..3
    assert _pool("{maxpool: {kernel: 3, stride: 2}}", x)[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
    # padding never wins a max: all -1 stays -1
    assert _pool("{maxpool: {kernel: 3, stride: 2, padding: same}}", -torch.ones(1, 1, 5, 5)).unique().tolist() == [-1.0]


def test_same_padding_avgpool_counts_zero_padding():
    out = _pool("{avgpool: {kernel: 3, stride: 2, padding: same}}", torch.ones(1, 1, 4, 4))
    # bottom/right windows cover 2x3, 3x2 and 2x2 real ones out of 9
    torch.testing.assert_close(out[0, 0], torch.tensor([[1.0, 6 / 9], [6 / 9, 4 / 9]]))


def test_default_maxpool_window_is_stride_plus_one():
    out = _pool("maxpool", torch.arange(16.0).reshape(1, 1, 4, 4))
    assert out[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]


def test_nearest_upsample_by_size_and_by_scale():
    spec = """\
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 1}, C4: {level: 4, channels: 1}}
nodes:
  N: {from: [C3, {from: C4, up: UP}]}
outputs: [N]
"""
    x4 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    by_size = pyramidgraph.compile(spec.replace("UP", "nearest"))([torch.zeros(1, 1, 3, 3), x4])[0]
    assert by_size[0, 0].tolist() == [[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [3.0, 3.0, 4.0]]
    by_scale = pyramidgraph.compile(spec.replace("UP", "{upsample: {by: scale}}"))([torch.zeros(1, 1, 4, 4), x4])[0]
    assert by_scale[0, 0].tolist() == [[1.0, 1.0, 2.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 4.0, 4.0], [3.0, 3.0, 4.0, 4.0]]


# -- registries --------------------------------------------------------------------------------


def test_registry_make_accepts_every_item_form():
    assert POST.make("conv3x3").params()["kernel"] == 3
    assert POST.make({"conv": 5}).params()["kernel"] == 5
    assert POST.make({"conv": {"kernel": 1, "bias": False}}).params()["bias"] is False
    assert POST.make({"op": "conv", "kernel": 7}).params()["kernel"] == 7
    assert POST.make({"conv": None}).params()["kernel"] == 3
    assert FUSE.make("fast").params() == {"norm": "fast", "eps": 1e-4, "per": "input"}


@pytest.mark.parametrize(
    "registry, item, message",
    [
        (POST, "bnn", "unknown post op 'bnn'; did you mean 'bn'? (`pyramidgraph list-ops post` lists them)"),
        (FUSE, "summ", "unknown fuse op 'summ'; did you mean 'sum'? (`pyramidgraph list-ops fuse` lists them)"),
        (POST, {"conv": {"kernal": 3}}, "post op 'conv' has no parameter 'kernal'; did you mean 'kernel'? (it takes: kernel, stride, bias, groups, dilation, padding, out, norm, act, init)"),
        (POST, {"conv": {"kernel": "3"}}, "post op 'conv': parameter 'kernel' must be an integer, not '3'"),
        (POST, {"conv": {"kernel": 0}}, "post op 'conv': parameter 'kernel' must be between 1 and 31, not 0"),
        (POST, {"bn": 3}, "post op 'bn' takes a mapping of parameters, not 3"),
        (POST, {"bn": {"eps": 0}}, "post op 'bn': parameter 'eps' must be between 1e-30 and 1 (smaller underflows in float32 and a zero variance gives NaN), not 0"),
        (FUSE, {"weighted": {"norm": "fats"}}, "fuse op 'weighted': parameter 'norm' must be one of 'fast', 'softmax', 'none', not 'fats'; did you mean 'fast'?"),
        (RESAMPLE, {"op": 3}, "'op' must name an op, not 3"),
        (RESAMPLE, ["maxpool"], "an op is a name, {name: parameters} or {op: name, ...}, not ['maxpool']"),
    ],
)
def test_registry_errors(registry, item, message):
    with pytest.raises(OpError) as info:
        registry.make(item)
    assert str(info.value) == message


def test_op_errors_in_a_spec_are_located_spec_errors():
    spec = HARNESS.replace("NODE", "{from: [C4], post: [{bn: {eps: 0}}]}")
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec)
    assert [issue.format() for issue in info.value.issues] == [
        "<string>:8:26: nodes.N.post[0]: post op 'bn': parameter 'eps' must be between 1e-30 and 1 (smaller underflows in float32 and a zero variance gives NaN), not 0"
    ]


def test_align_corners_with_nearest_is_a_spec_error():
    spec = HARNESS.replace("NODE", "{level: 3, from: [{from: C4, via: [{upsample: {align_corners: true}}]}]}")
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec)
    assert [issue.message for issue in info.value.issues] == ["input 'C4': upsample: align_corners applies to bilinear and bicubic modes only; remove it or set mode: bilinear"]
    shape, _ = _run({"level": 3, "from": [{"from": "C4", "via": [{"bilinear": {"align_corners": True}}]}]})
    assert tuple(shape) == (2, 32, 8, 12)
