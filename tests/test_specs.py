"""The bundled specs: every one compiles for 3, 4 and 5 input levels, gives the output shapes
written out below, trains (every parameter gets a gradient), handles odd image sizes, and has
the parameter count of the architecture it reproduces."""

from __future__ import annotations

import math

import pytest
import torch
from speclib import squares

import pyramidgraph

SPECS = sorted(pyramidgraph.bundled_specs())
IN_CHANNELS = {3: [8, 16, 32], 4: [8, 16, 32, 64], 5: [8, 16, 32, 64, 128]}
WIDTH = 16
IMAGE = (128, 192)

# Map size at each level for a 128x192 image: ceil(side / 2**level), written out.
SIZE = {2: (32, 48), 3: (16, 24), 4: (8, 12), 5: (4, 6), 6: (2, 3), 7: (1, 2)}


def _levels(names: str, first: int) -> list[tuple[str, int, tuple[int, int]]]:
    return [(name, level, SIZE[level]) for level, name in enumerate(names.split(), start=first)]


# How each spec is compiled here (small and quick), and what it must give for 3, 4 and 5 inputs:
# output names, levels and sizes. fpn/pafpn start at level 2 and add one max-pooled level; bifpn
# always returns P3..P7 (max pooling with padding rounds up); bfp (equal widths, no projection)
# returns one map per input; nasfpn always returns P3..P7 and makes its extra levels with a
# 2x2 max pool without padding (rounds down: P7 of a 2x3 P6 is 1x1).
ARGS = {
    "fpn": {"channels": WIDTH},
    "pafpn": {"channels": WIDTH},
    "bifpn": {"channels": WIDTH},
    "bfp": {"refine": "conv"},
    "nasfpn": {"channels": WIDTH, "stack_times": 1},
}
WIDTHS = {"bfp": {n: [WIDTH] * n for n in (3, 4, 5)}}
EXPECTED = {
    "fpn": {3: _levels("P2 P3 P4 P5", 2), 4: _levels("P2 P3 P4 P5 P6", 2), 5: _levels("P2 P3 P4 P5 P6 P7", 2)},
    "pafpn": {3: _levels("N2 N3 N4 N5", 2), 4: _levels("N2 N3 N4 N5 N6", 2), 5: _levels("N2 N3 N4 N5 N6 N7", 2)},
    "bifpn": {n: _levels("P3_out P4_out P5_out P6_out P7_out", 3) for n in (3, 4, 5)},
    "bfp": {3: _levels("O2 O3 O4", 2), 4: _levels("O2 O3 O4 O5", 2), 5: _levels("O2 O3 O4 O5 O6", 2)},
    "nasfpn": {n: _levels("P3_out P4_out P5_out P6_out", 3) + [("P7_out", 7, (1, 1))] for n in (3, 4, 5)},
}
FIRST_INPUT_LEVEL = {"fpn": 2, "pafpn": 2, "bifpn": 3, "bfp": 2, "nasfpn": 2}


def _in_channels(name: str, n: int) -> list[int]:
    return WIDTHS.get(name, IN_CHANNELS)[n]


# Specs added after these tables were written get the generic checks below until someone writes
# their expectations here.
DEPTH_SPECS = [name for name in SPECS if name in EXPECTED]


def test_the_core_specs_are_bundled_and_have_expectations():
    assert {"fpn", "pafpn", "bifpn"} <= set(DEPTH_SPECS)


@pytest.mark.parametrize("name", SPECS)
def test_every_bundled_spec_runs_its_example_backbone(name):
    """Generic: the example compiles, and a forward pass agrees with the validator's shapes."""
    image = squares(name)[0]  # 128 unless the architecture needs more (tests/speclib)
    analysis = pyramidgraph.validate(name, image=image)
    torch.manual_seed(0)
    neck = pyramidgraph.compile(name).eval()
    assert neck.in_channels == analysis.flat.example["in_channels"]
    with torch.no_grad():
        outputs = neck(neck.example_inputs(batch=2, image=image))
    values = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    inferred = [analysis.ir.values()[value] for _, value in analysis.ir.outputs]
    assert [tuple(o.shape) for o in values] == [(2, shape.channels, *shape.size) for shape in inferred]
    assert [shape.stride for shape in inferred] == neck.strides
    assert all(torch.isfinite(o).all() for o in values)


@pytest.fixture(scope="module", params=[(name, n) for name in DEPTH_SPECS for n in (3, 4, 5)], ids=lambda p: f"{p[0]}-{p[1]}")
def compiled(request):
    name, n = request.param
    torch.manual_seed(0)
    return name, n, pyramidgraph.compile(name, _in_channels(name, n), **ARGS[name])


def test_metadata_for_3_4_and_5_levels(compiled):
    name, n, neck = compiled
    expected = EXPECTED[name][n]
    first = FIRST_INPUT_LEVEL[name]
    assert neck.in_channels == _in_channels(name, n)
    assert [shape.stride for _, shape in neck.info.inputs] == [2**level for level in range(first, first + n)]
    assert neck.output_names == [out for out, _, _ in expected]
    assert neck.strides == [2**level for _, level, _ in expected]
    assert neck.out_channels == WIDTH


def test_forward_gives_the_expected_shapes(compiled):
    name, n, neck = compiled
    torch.manual_seed(1)
    inputs = neck.example_inputs(batch=2, image=IMAGE)
    first = FIRST_INPUT_LEVEL[name]
    assert [tuple(x.shape) for x in inputs] == [(2, c, *SIZE[first + i]) for i, c in enumerate(_in_channels(name, n))]
    outputs = neck(inputs)
    assert isinstance(outputs, tuple)
    assert [tuple(o.shape) for o in outputs] == [(2, WIDTH, *size) for _, _, size in EXPECTED[name][n]]
    assert all(torch.isfinite(o).all() for o in outputs)


def test_backward_reaches_every_parameter(compiled):
    _name, _n, neck = compiled
    torch.manual_seed(2)
    neck.train()
    neck.zero_grad(set_to_none=True)
    outputs = neck(neck.example_inputs(batch=2, image=IMAGE))
    sum(o.sum() for o in outputs).backward()
    params = dict(neck.named_parameters())
    assert params
    missing = [k for k, p in params.items() if p.grad is None]
    assert missing == []
    not_finite = [k for k, p in params.items() if not torch.isfinite(p.grad).all()]
    assert not_finite == []
    all_zero = [k for k, p in params.items() if not p.grad.abs().sum() > 0]
    assert all_zero == []


# Odd image sizes: 500x333. Size-based upsampling follows the finer map, pooling rounds up.
ODD_IMAGE = (500, 333)
ODD = {
    "fpn": [(125, 84), (63, 42), (32, 21), (16, 11)],
    "pafpn": [(125, 84), (63, 42), (32, 21), (16, 11)],
    "bifpn": [(63, 42), (32, 21), (16, 11), (8, 6), (4, 3)],
    "bfp": [(125, 84), (63, 42), (32, 21)],
    "nasfpn": [(63, 42), (32, 21), (16, 10), (8, 5), (4, 2)],  # extra levels: 2x2 max pool rounds down
}


@pytest.mark.parametrize("name", DEPTH_SPECS)
def test_odd_image_sizes(name):
    in_channels = _in_channels(name, 3)
    analysis = pyramidgraph.validate(name, in_channels, image=ODD_IMAGE, **ARGS[name])
    inferred = [analysis.ir.values()[value].size for _, value in analysis.ir.outputs]
    assert inferred == ODD[name]
    neck = pyramidgraph.compile(name, in_channels, image=ODD_IMAGE, **ARGS[name])
    outputs = neck(neck.example_inputs(batch=2, image=ODD_IMAGE))
    assert [tuple(o.shape) for o in outputs] == [(2, WIDTH, h, w) for h, w in ODD[name]]


# -- the example backbones, full width ------------------------------------------------------


def test_fpn_example_output_shapes_at_512():
    # ResNet-50 C2..C5 at image 512, first_level 2: outputs at strides 4..64
    neck = pyramidgraph.compile("fpn", channels=WIDTH)
    assert neck.in_channels == [256, 512, 1024, 2048]
    assert neck.strides == [4, 8, 16, 32, 64]
    with torch.no_grad():
        outputs = neck(neck.example_inputs(batch=1))
    assert [tuple(o.shape) for o in outputs] == [(1, WIDTH, 128, 128), (1, WIDTH, 64, 64), (1, WIDTH, 32, 32), (1, WIDTH, 16, 16), (1, WIDTH, 8, 8)]


def _count(neck) -> int:
    return sum(p.numel() for p in neck.parameters())


def test_fpn_parameter_count_is_torchvisions():
    neck = pyramidgraph.compile("fpn", [256, 512, 1024, 2048], channels=256)
    # lateral 1x1 convs (with bias), then 3x3 output convs (with bias); max-pool P6 has none
    expected = (256 * 256 + 256) + (512 * 256 + 256) + (1024 * 256 + 256) + (2048 * 256 + 256) + 4 * (256 * 256 * 9 + 256)
    assert expected == 3_344_384
    assert _count(neck) == expected


def test_pafpn_parameter_count_is_fpn_plus_the_bottom_up_path():
    neck = pyramidgraph.compile("pafpn", [256, 512, 1024, 2048], channels=256)
    fpn = 3_344_384
    # N3..N5: a stride-2 3x3 conv on the path and a 3x3 output conv, both with bias
    bottom_up = 3 * 2 * (256 * 256 * 9 + 256)
    assert _count(neck) == fpn + bottom_up == 6_884_864


def _fpn_params(cin: list[int], c: int) -> int:
    return sum(ci * c + c for ci in cin) + len(cin) * (c * c * 9 + c)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_fpn_and_pafpn_parameter_counts_for_every_depth(n):
    cin = IN_CHANNELS[n]
    assert _count(pyramidgraph.compile("fpn", cin, channels=WIDTH)) == _fpn_params(cin, WIDTH)
    assert _count(pyramidgraph.compile("pafpn", cin, channels=WIDTH)) == _fpn_params(cin, WIDTH) + (n - 1) * 2 * (WIDTH * WIDTH * 9 + WIDTH)


def _bifpn_params(cin: list[int], c: int, cells: int = 3) -> int:
    """BiFPN's count, read off specs/bifpn.yaml by hand.

    Each cell has 8 nodes with post ops (P6..P4_td, P3..P7_out): depthwise 3x3 (no bias),
    pointwise 1x1 (no bias), BN (weight+bias); and 19 fusion weights (2+2+2 top-down, 2 for
    P3_out, 3+3+3 for P4..P6_out, 2 for P7_out). A raw input narrower or wider than ``c`` is
    projected (1x1 conv without bias + BN, as EfficientDet-D0) each time cell 0 reads it: P3
    once, every other input twice; the first extra level (max pooling) projects the last input
    once more.
    """

    def project(ci: int) -> int:
        return 0 if ci == c else ci * c + 2 * c

    per_cell = 8 * (9 * c + c * c + 2 * c) + 19
    total = cells * per_cell + project(cin[0]) + 2 * sum(project(ci) for ci in cin[1:])
    if len(cin) < 5:
        total += project(cin[-1])
    return total


def test_bifpn_example_parameter_count():
    neck = pyramidgraph.compile("bifpn")
    assert neck.in_channels == [40, 112, 320]
    assert _bifpn_params([40, 112, 320], 64) == 194_361  # effdet's efficientdet_d0 BiFpn has as many
    assert _count(neck) == 194_361


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("cells", [1, 2])
def test_bifpn_parameter_count_for_every_depth(n, cells):
    neck = pyramidgraph.compile("bifpn", IN_CHANNELS[n], channels=WIDTH, cells=cells)
    assert _count(neck) == _bifpn_params(IN_CHANNELS[n], WIDTH, cells)


def test_bifpn_fusion_weights_start_at_one():
    neck = pyramidgraph.compile("bifpn", [8, 16, 32], channels=8, cells=1)
    weights = {k: v for k, v in neck.state_dict().items() if k.endswith(".fuse.weight")}
    assert {k: v.tolist() for k, v in weights.items()} == {
        "cell0.P6_td.fuse.weight": [1.0, 1.0],
        "cell0.P5_td.fuse.weight": [1.0, 1.0],
        "cell0.P4_td.fuse.weight": [1.0, 1.0],
        "cell0.P3_out.fuse.weight": [1.0, 1.0],
        "cell0.P4_out.fuse.weight": [1.0, 1.0, 1.0],
        "cell0.P5_out.fuse.weight": [1.0, 1.0, 1.0],
        "cell0.P6_out.fuse.weight": [1.0, 1.0, 1.0],
        "cell0.P7_out.fuse.weight": [1.0, 1.0],
    }


def test_odd_sizes_fail_with_scale_upsampling():
    spec = """\
pyramidgraph: 1
inputs: {C3: {level: 3, channels: 8}, C4: {level: 4, channels: 8}}
defaults: {channels: 8}
nodes:
  P3: {from: [C3, {from: C4, up: {upsample: {by: scale}}}]}
outputs: [P3]
"""
    assert pyramidgraph.validate(spec, image=64).ir.values()["P3"].size == (8, 8)
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate(spec, image=(500, 333))
    assert [issue.message for issue in info.value.issues] == [
        "inputs of 'P3' do not line up: 'C3' gives 63x42, 'C4' gives 64x42; upsample by size (up: {op: upsample, by: size}) or choose an image size divisible by 16"
    ]
    assert math.ceil(500 / 8) == 63 and math.ceil(500 / 16) * 2 == 64
