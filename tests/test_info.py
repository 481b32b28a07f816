"""``pyramidgraph info`` and :func:`pyramidgraph.info.neck_info`: per-node level, stride, width,
size, parameters and multiply-accumulates.

Every expected number here is worked out by hand in the test, from the textbook formulas:
a ``k x k`` conv from ``cin`` to ``cout`` with ``groups`` has ``cin / groups * cout * k * k``
weights (plus ``cout`` biases) and costs ``cin / groups * cout * k * k * H_out * W_out`` MACs;
batch norm has ``2 * C`` parameters; resizing, pooling, sums and norms cost 0 MACs.
"""

from __future__ import annotations

import json

import pytest

import pyramidgraph
from pyramidgraph.cli import main
from pyramidgraph.info import NodeCost, neck_info

TINY_FPN = """\
pyramidgraph: 1
name: tiny
inputs: {C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}
defaults: {channels: 8}
nodes:
  P5: {from: [C5], post: [conv3x3]}
  P4: {from: [C4, P5], post: [conv3x3]}
  P3: {from: [C3, P4], post: [conv3x3]}
outputs: [P3, P4, P5]
"""


def conv(cin: int, cout: int, k: int, h: int, w: int, *, groups: int = 1, bias: bool = True) -> tuple[int, int]:
    """(params, MACs) of one convolution, by the textbook formula."""
    weights = cin // groups * cout * k * k
    return weights + (cout if bias else 0), weights * h * w


def test_tiny_fpn_matches_a_count_by_hand():
    # in_channels 4, 8, 16 at levels 3, 4, 5; image 64x64 -> C3 8x8, C4 4x4, C5 2x2.
    cost = neck_info(TINY_FPN, [4, 8, 16], image=64)
    # P5: 1x1 projection 16 -> 8 on 2x2 (16*8 + 8 = 136 params, 16*8*4 = 512 MACs),
    #     conv3x3 8 -> 8 on 2x2 (8*8*9 + 8 = 584 params, 576*4 = 2,304 MACs).
    assert conv(16, 8, 1, 2, 2) == (136, 512) and conv(8, 8, 3, 2, 2) == (584, 2304)
    # P4: C4 is already 8 wide (no projection); upsampled P5 and the sum are free;
    #     conv3x3 on 4x4: 584 params, 576*16 = 9,216 MACs.
    # P3: projection 4 -> 8 on 8x8 (4*8 + 8 = 40 params, 32*64 = 2,048 MACs),
    #     conv3x3 on 8x8: 584 params, 576*64 = 36,864 MACs.
    assert cost.nodes == [
        NodeCost("P5", 5, 32, 8, (2, 2), 136 + 584, 512 + 2304, output="P5"),
        NodeCost("P4", 4, 16, 8, (4, 4), 584, 9216, output="P4"),
        NodeCost("P3", 3, 8, 8, (8, 8), 40 + 584, 2048 + 36864, output="P3"),
    ]
    assert (cost.params, cost.macs) == (720 + 584 + 624, 2816 + 9216 + 38912) == (1928, 50944)
    assert cost.params == sum(p.numel() for p in pyramidgraph.compile(TINY_FPN, [4, 8, 16]).parameters())


def test_odd_image_strided_conv_weighted_fusion_sepconv_bn_and_grouped_conv_by_hand():
    spec = """\
pyramidgraph: 1
name: mixed
inputs: {C3: {level: 3}, C4: {level: 4}}
defaults: {channels: 8}
nodes:
  P5: {level: 5, from: [C4], resample: {down: conv}}
  P4: {from: [C4, P5], fuse: weighted, post: [sepconv3x3, bn]}
  P3: {from: [C3, P4], post: [{conv: {kernel: 3, groups: 2, bias: false}}]}
outputs: [P3, P4, P5]
"""
    cost = neck_info(spec, [4, 8], image=65)
    # 65x65 image: C3 is ceil(65/8) = 9 on a side, C4 ceil(65/16) = 5; P5 is the 3x3 stride-2
    # conv (padding 1) of C4: (5 + 2 - 3) // 2 + 1 = 3.
    # P5: 8*8*9 + 8 = 584 params, 576 * 3*3 = 5,184 MACs.
    # P4 (5x5): 2 fusion weights; depthwise 3x3 (8*9 = 72 weights, no bias, 72*25 = 1,800 MACs);
    #     pointwise 1x1 (64 + 8 = 72 params, 64*25 = 1,600 MACs); BN 2*8 = 16 params.
    # P3 (9x9): projection 4 -> 8 (40 params, 32*81 = 2,592 MACs); conv3x3 in 2 groups without
    #     bias: 8/2 * 8 * 9 = 288 weights, 288*81 = 23,328 MACs.
    assert conv(8, 8, 3, 5, 5, groups=8, bias=False) == (72, 1800)
    assert conv(8, 8, 3, 9, 9, groups=2, bias=False) == (288, 23328)
    assert cost.nodes == [
        NodeCost("P5", 5, 32, 8, (3, 3), 584, 5184, output="P5"),
        NodeCost("P4", 4, 16, 8, (5, 5), 2 + 72 + 72 + 16, 1800 + 1600, output="P4"),
        NodeCost("P3", 3, 8, 8, (9, 9), 40 + 288, 2592 + 23328, output="P3"),
    ]
    assert (cost.params, cost.macs) == (1074, 34504)
    assert cost.params == sum(p.numel() for p in pyramidgraph.compile(spec, [4, 8]).parameters())


def test_non_local_block_counts_its_attention_products():
    spec = "pyramidgraph: 1\ninputs: {C3: {level: 3}}\ndefaults: {channels: 8}\nnodes:\n  R: {from: [C3], post: [{nonlocal: {reduction: 2}}]}\noutputs: [R]\n"
    cost = neck_info(spec, [8], image=32)
    # 4x4 map (N = 16 positions), inner width 8 // 2 = 4.
    # g, theta, phi: 1x1 8 -> 4 with bias: 3 * (32 + 4) = 108 params, 3 * 32 * 16 = 1,536 MACs.
    # theta^T phi: (16 x 4) @ (4 x 16) = 16*16*4 = 1,024 MACs; weights @ g: (16 x 16) @ (16 x 4) = 1,024.
    # conv_out 1x1 4 -> 8 with bias: 40 params, 32 * 16 = 512 MACs.
    assert cost.nodes == [NodeCost("R", 3, 8, 8, (4, 4), 108 + 40, 1536 + 1024 + 1024 + 512, output="R")]


def test_concat_strided_conv_bn_act_and_c2f_by_hand():
    spec = """\
pyramidgraph: 1
inputs: {C3: {level: 3}, C4: {level: 4}}
nodes:
  Y: {level: 4, channels: 8, from: [C3, C4], fuse: concat, resample: {down: {conv_bn_act: {kernel: 3}}}, post: [c2f]}
outputs: [Y]
"""
    (node,) = neck_info(spec, [8, 8], image=64).nodes
    # C3 (8x8) down: 3x3 stride-2 conv 8 -> 8 without bias + BN: 576 + 16 params, 576 * 4*4 MACs.
    down = (576 + 16, 576 * 16)
    # concat: 16 channels at 4x4. C2f to 8 with hidden 4, one bottleneck:
    #   cv1 1x1 16 -> 8 + BN: 128 + 16 params, 128*16 MACs;
    #   m.0.cv1, m.0.cv2: 3x3 4 -> 4 + BN: 144 + 8 params, 144*16 MACs each;
    #   cv2 1x1 (2 + 1) * 4 = 12 -> 8 + BN: 96 + 16 params, 96*16 MACs.
    c2f = (144 + 2 * 152 + 112, (128 + 2 * 144 + 96) * 16)
    assert node == NodeCost("Y", 4, 16, 8, (4, 4), down[0] + c2f[0], down[1] + c2f[1], output="Y")
    assert (node.params, node.macs) == (1152, 17408)


SHARED = """\
pyramidgraph: 1
example: {in_channels: [16, 32], image: 64}
inputs:
  C3: {level: 3}
  C4: {level: 4}
defaults: {channels: 8, resample: {project: none}}
nodes:
  P3: {from: [C3], post: [conv1x1]}
  P4: {from: [C4], post: [conv1x1]}
  cell:
    repeat: 2
    share: true
    inputs: [P3, P4]
    outputs: [O3, O4]
    nodes:
      O3: {from: [P3, P4], post: [conv3x3]}
      O4: {from: [P4, O3], post: [conv3x3]}
outputs: [cell.O3, cell.O4]
"""


def test_shared_block_weights_count_once_and_every_repetition_counts_its_macs():
    cost = neck_info(SHARED)  # the example: in_channels 16, 32 and a 64x64 image
    # P3: 1x1 16 -> 8 on 8x8: 136 params, 128*64 = 8,192 MACs; P4: 1x1 32 -> 8 on 4x4: 264, 256*16 = 4,096.
    # O3 / O4: conv3x3 8 -> 8 on 8x8 / 4x4: 584 params, 576*64 = 36,864 / 576*16 = 9,216 MACs per repetition.
    assert [(n.name, n.params, n.macs) for n in cost.nodes] == [
        ("P3", 136, 8192),
        ("P4", 264, 4096),
        ("cell.0.O3", 584, 36864),
        ("cell.0.O4", 584, 9216),
        ("cell.1.O3", 0, 36864),
        ("cell.1.O4", 0, 9216),
    ]
    assert cost.params == 136 + 264 + 2 * 584 == sum(p.numel() for p in pyramidgraph.compile(SHARED).parameters())
    assert cost.macs == 8192 + 4096 + 2 * (36864 + 9216)


def test_image_defaults_to_the_example_then_to_256():
    assert neck_info(SHARED).image == (64, 64)
    without = neck_info(SHARED.replace("example: {in_channels: [16, 32], image: 64}\n", ""), [16, 32])
    assert without.image == (256, 256)
    assert [n.size for n in without.nodes][:2] == [(32, 32), (16, 16)]
    assert without.nodes[0].macs == 16 * 8 * 32 * 32


def test_fpn_has_torchvisions_parameter_count_and_these_macs():
    cost = neck_info("fpn")  # ResNet-50 C2..C5 (256, 512, 1024, 2048), 512x512 image
    assert cost.params == 3_344_384
    rows = {n.name: n for n in cost.nodes}
    # Laterals: 1x1 cin -> 256 on C_l's map (128, 64, 32, 16 on a side).
    for name, cin, side in (("L2", 256, 128), ("L3", 512, 64), ("L4", 1024, 32), ("L5", 2048, 16)):
        assert (rows[name].params, rows[name].macs) == (cin * 256 + 256, cin * 256 * side * side)
    # Outputs: 3x3 256 -> 256; P6 is a max pool.
    for name, side in (("P2", 128), ("P3", 64), ("P4", 32), ("P5", 16)):
        assert (rows[name].params, rows[name].macs, rows[name].size) == (590_080, 589_824 * side * side, (side, side))
    assert (rows["P6"].level, rows["P6"].stride, rows["P6"].size, rows["P6"].params, rows["P6"].macs) == (6, 64, (8, 8), 0, 0)
    assert cost.macs == 256 * 256 * (128**2 + 2 * 64**2 + 4 * 32**2 + 8 * 16**2) + 589_824 * (128**2 + 64**2 + 32**2 + 16**2)


@pytest.mark.parametrize("name", sorted(pyramidgraph.bundled_specs()))
def test_parameters_equal_the_compiled_necks_for_every_bundled_spec(name):
    cost = neck_info(name)
    neck = pyramidgraph.compile(name)
    assert cost.params == sum(p.numel() for p in neck.parameters())
    assert cost.params == sum(n.params for n in cost.nodes)
    assert cost.macs == sum(n.macs for n in cost.nodes)
    assert (cost.macs > 0) == (cost.params > 0)  # bfp's default (refine: none) has neither
    assert [n.name for n in cost.nodes] == list(pyramidgraph.validate(name).flat.nodes)
    shapes = dict(neck.info.outputs)
    for node in cost.nodes:
        if node.name in shapes:
            assert (node.channels, node.stride) == (shapes[node.name].channels, shapes[node.name].stride)


# -- command line ----------------------------------------------------------------------------


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_table(capsys, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_FPN, encoding="utf-8")
    code, out, err = _run(capsys, "info", str(path), "--in-channels", "4,8,16", "--image", "64x64")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "tiny: image 64x64; inputs C3 4ch/8, C4 8ch/16, C5 16ch/32",
        "node   level  stride  channels  size  params    MACs",
        "-----  -----  ------  --------  ----  ------  ------",
        "P5         5      32         8   2x2     720   2,816",
        "P4         4      16         8   4x4     584   9,216",
        "P3         3       8         8   8x8     624  38,912",
        "-----  -----  ------  --------  ----  ------  ------",
        "total                                  1,928  50,944",
    ]


def test_cli_json(capsys, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_FPN, encoding="utf-8")
    code, out, err = _run(capsys, "info", str(path), "--in-channels", "4,8,16", "--image", "64x32", "--param", "unused=1", "--json")
    assert code == 2 and out == ""  # an unknown parameter is a spec error, even for info
    assert "unknown parameter 'unused'" in err
    code, out, err = _run(capsys, "info", str(path), "--in-channels", "4,8,16", "--image", "64x32", "--json")
    assert (code, err) == (0, "")
    # 64x32 image: C3 8x4, C4 4x2, C5 2x1.
    assert json.loads(out) == {
        "name": "tiny",
        "image": [64, 32],
        "inputs": [
            {"name": "C3", "channels": 4, "level": 3, "stride": 8},
            {"name": "C4", "channels": 8, "level": 4, "stride": 16},
            {"name": "C5", "channels": 16, "level": 5, "stride": 32},
        ],
        "outputs": [{"name": "P3", "node": "P3"}, {"name": "P4", "node": "P4"}, {"name": "P5", "node": "P5"}],
        "nodes": [
            {"name": "P5", "level": 5, "stride": 32, "channels": 8, "size": [2, 1], "params": 720, "macs": 16 * 8 * 2 + 576 * 2, "output": "P5"},
            {"name": "P4", "level": 4, "stride": 16, "channels": 8, "size": [4, 2], "params": 584, "macs": 576 * 8, "output": "P4"},
            {"name": "P3", "level": 3, "stride": 8, "channels": 8, "size": [8, 4], "params": 624, "macs": 4 * 8 * 32 + 576 * 32, "output": "P3"},
        ],
        "total": {"params": 1928, "macs": 256 + 1152 + 4608 + 1024 + 18432},
    }


def test_json_names_outputs_returned_under_other_names_and_intermediate_nodes(capsys, tmp_path):
    path = tmp_path / "renamed.yaml"
    path.write_text(TINY_FPN.replace("outputs: [P3, P4, P5]", "outputs: {out3: P3, out5: P5}"), encoding="utf-8")
    code, out, _ = _run(capsys, "info", str(path), "--in-channels", "4,8,16", "--image", "64", "--json")
    data = json.loads(out)
    assert data["outputs"] == [{"name": "out3", "node": "P3"}, {"name": "out5", "node": "P5"}]
    assert [(n["name"], n["output"]) for n in data["nodes"]] == [("P5", "out5"), ("P4", None), ("P3", "out3")]


def test_cli_defaults_to_the_spec_example_and_takes_params(capsys):
    code, out, _ = _run(capsys, "info", "fpn", "--json")
    assert code == 0
    assert json.loads(out)["total"]["params"] == 3_344_384
    code, out, _ = _run(capsys, "info", "fpn", "--in-channels", "8,16,32", "--param", "channels=8", "--json")
    # Laterals 8/16/32 -> 8 (72 + 136 + 264), three 3x3 output convs 8 -> 8 (3 * 584); P5 is a max pool.
    assert json.loads(out)["total"]["params"] == 72 + 136 + 264 + 3 * 584
