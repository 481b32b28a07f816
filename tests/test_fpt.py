"""The Feature Pyramid Transformer (Zhang et al., ECCV 2020): its three apply ops and the bundled
``fpt`` spec, each against a direct computation written out here from the paper's formulas
(with the fixes the ops document), using the compiled neck's own weights from its state_dict.

The direct forms are deliberately the slow, obvious ones: a loop over the Mixture-of-Softmaxes
parts, the Euclidean distance from an explicit (B, C, Nf, Nc) difference tensor (the op uses
``2 q.k - |k|^2``), einsum for the 1x1 convs. They run in float64, so a formulation error
shows far above rounding. Pyramids are odd (13x17, 7x9, 4x5, 2x3: the ceil chain that padded
stride-2 convs give) and even (16x20, 8x10, 4x5, 2x3).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph
from pyramidgraph import NeckInputError, SpecError

ODD = [(13, 17), (7, 9), (4, 5), (2, 3)]
EVEN = [(16, 20), (8, 10), (4, 5), (2, 3)]
SIZES = pytest.mark.parametrize("sizes", [ODD, EVEN], ids=["odd", "even"])
C = 16  # test width

OPS = """
pyramidgraph: 1
example: {in_channels: [16, 16, 16, 16], image: 64}
inputs: {C2: {level: 2}, C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}
nodes:
  S: {from: [C2], apply: {self_transformer: %s}}
  G3: {from: [C2, C3], apply: grounding_transformer}
  G5: {from: [C3, C5], apply: {grounding_transformer: {inner: 4}}, channels: 12}
  R3: {from: [C2, C3], apply: rendering_transformer}
  R4: {from: [C2, C4], apply: rendering_transformer}
  R5: {from: [C2, C5], apply: rendering_transformer, channels: 8}
outputs: [S, G3, G5, R3, R4, R5]
"""


# -- the direct computations ------------------------------------------------------------------


def conv1x1(x, sd, path):
    return torch.einsum("oc,bchw->bohw", sd[f"{path}.weight"][:, :, 0, 0], x) + sd[f"{path}.bias"][None, :, None, None]


def conv3x3(x, sd, path, stride=1):
    return F.conv2d(x, sd[f"{path}.weight"], sd.get(f"{path}.bias"), stride=stride, padding=1)


def flat(t):
    return t.reshape(t.shape[0], t.shape[1], -1)


def self_transformer(x, sd, path, parts):
    """y_i = sum_j (sum_n pi_n softmax_j(q_in . k_jn / sqrt(Ck))) v_j, pi = softmax_n(w_n . mean_j k_j)."""
    B, _, H, W = x.shape
    q, k, v = (flat(conv1x1(x, sd, f"{path}.{name}")) for name in ("query", "key", "value"))
    ck = q.shape[1]
    d = ck // parts
    pi = torch.softmax(k.mean(2) @ sd[f"{path}.mix.weight"].t(), dim=1) if parts > 1 else torch.ones(B, 1, dtype=x.dtype)
    attention = torch.zeros(B, H * W, H * W, dtype=x.dtype)
    for n in range(parts):
        s = torch.einsum("bci,bcj->bij", q[:, n * d : (n + 1) * d], k[:, n * d : (n + 1) * d]) / math.sqrt(ck)
        attention = attention + pi[:, n, None, None] * torch.softmax(s, dim=2)
    return torch.einsum("bij,bcj->bci", attention, v).reshape(B, -1, H, W)


def grounding_transformer(fine, coarse, sd, path):
    """y_i = sum_j softmax_j(-|q_i - k_j|^2) v_j, q from the fine map, k and v from the coarse one."""
    B, _, H, W = fine.shape
    q = flat(conv1x1(fine, sd, f"{path}.query"))
    k = flat(conv1x1(coarse, sd, f"{path}.key"))
    v = flat(conv1x1(coarse, sd, f"{path}.value"))
    distance = ((q[:, :, :, None] - k[:, :, None, :]) ** 2).sum(1)  # B, Nf, Nc
    return torch.einsum("bij,bcj->bci", torch.softmax(-distance, dim=2), v).reshape(B, -1, H, W)


def rendering_transformer(fine, coarse, sd, path, gap):
    """fuse(refine(Q * GAP(V)) + down_gap(...down_1(V))), Q the coarse map, V the fine one."""
    query = conv3x3(coarse * fine.mean(dim=(2, 3), keepdim=True), sd, f"{path}.refine")
    value = fine
    for step in range(gap):
        value = conv3x3(value, sd, f"{path}.down{step}", stride=2)
    assert value.shape[2:] == coarse.shape[2:]
    return conv3x3(query + value, sd, f"{path}.fuse")


def fpt(feats, sd, parts=2):
    """The whole neck on [P2..P5] (laterals absent: every input has the neck's width). Level l
    concatenates ST_l, RT_l from every finer level (nearest first), GT_l from every coarser
    level (nearest first) and P_l, then a 3x3 conv with bias: FPT_a.FPT.forward's order."""
    outs = []
    for i, level in enumerate(range(2, 6)):
        pieces = [self_transformer(feats[i], sd, f"ST{level}.op", parts)]
        pieces += [rendering_transformer(feats[m - 2], feats[i], sd, f"RT{level}_{m}.op", level - m) for m in range(level - 1, 1, -1)]
        pieces += [grounding_transformer(feats[i], feats[m - 2], sd, f"GT{level}_{m}.op") for m in range(level + 1, 6)]
        pieces.append(feats[i])
        outs.append(conv3x3(torch.cat(pieces, 1), sd, f"O{level}.post0"))
    return outs


def _pyramid(sizes, widths=(C, C, C, C), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, h, w, generator=generator, dtype=torch.float64) for c, (h, w) in zip(widths, sizes)]


def _random_biases(neck):
    """The convs start with zero biases (FPT_a's init): give them values, so that they count."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in neck.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


# -- the three ops ------------------------------------------------------------------------------


@SIZES
@pytest.mark.parametrize("st", ["{}", "{parts: 4, inner: 8}", "{parts: 1}"])
def test_each_transformer_op_matches_its_direct_computation(sizes, st):
    torch.manual_seed(0)
    neck = pyramidgraph.compile(OPS % st).double()
    _random_biases(neck)
    sd = neck.state_dict()
    c2, c3, c4, c5 = feats = _pyramid(sizes)
    s, g3, g5, r3, r4, r5 = neck(feats)
    parts = {"{}": 2, "{parts: 4, inner: 8}": 4, "{parts: 1}": 1}[st]
    assert ("S.op.mix.weight" in sd) == (parts > 1)
    expected = {
        "S": (s, self_transformer(c2, sd, "S.op", parts), (2, C, *sizes[0])),
        "G3": (g3, grounding_transformer(c2, c3, sd, "G3.op"), (2, C, *sizes[0])),
        "G5": (g5, grounding_transformer(c3, c5, sd, "G5.op"), (2, 12, *sizes[1])),
        "R3": (r3, rendering_transformer(c2, c3, sd, "R3.op", 1), (2, C, *sizes[1])),
        "R4": (r4, rendering_transformer(c2, c4, sd, "R4.op", 2), (2, C, *sizes[2])),
        "R5": (r5, rendering_transformer(c2, c5, sd, "R5.op", 3), (2, 8, *sizes[3])),
    }
    for name, (got, want, shape) in expected.items():
        assert tuple(got.shape) == shape, name
        torch.testing.assert_close(got, want, msg=lambda m, name=name: f"{name}: {m}")


def test_the_ops_name_their_weights_and_count_them_exactly():
    neck = pyramidgraph.compile(OPS % "{}")
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items() if k.startswith(("S.", "G5.", "R5."))}
    assert shapes == {
        "S.op.query.weight": (16, 16, 1, 1),
        "S.op.query.bias": (16,),
        "S.op.key.weight": (16, 16, 1, 1),
        "S.op.key.bias": (16,),
        "S.op.value.weight": (16, 16, 1, 1),
        "S.op.value.bias": (16,),
        "S.op.mix.weight": (2, 16),
        "G5.op.query.weight": (4, 16, 1, 1),
        "G5.op.query.bias": (4,),
        "G5.op.key.weight": (4, 16, 1, 1),
        "G5.op.key.bias": (4,),
        "G5.op.value.weight": (12, 16, 1, 1),
        "G5.op.value.bias": (12,),
        "R5.op.refine.weight": (8, 16, 3, 3),
        "R5.op.refine.bias": (8,),
        "R5.op.down0.weight": (8, 16, 3, 3),
        "R5.op.down0.bias": (8,),
        "R5.op.down1.weight": (8, 8, 3, 3),
        "R5.op.down1.bias": (8,),
        "R5.op.down2.weight": (8, 8, 3, 3),
        "R5.op.down2.bias": (8,),
        "R5.op.fuse.weight": (8, 8, 3, 3),
        "R5.op.fuse.bias": (8,),
    }
    from pyramidgraph.lower import estimated_parameters

    for st in ("{}", "{parts: 4, inner: 8, norm: gn, norm_groups: 4}", "{norm: bn}"):
        estimate = estimated_parameters(pyramidgraph.validate(OPS % st).ir.ops)
        neck = pyramidgraph.compile(OPS % st)
        assert estimate == sum(p.numel() for p in neck.parameters()) + sum(b.numel() for b in neck.buffers())


@pytest.mark.parametrize(
    "node, message",
    [
        ("{from: [C3, C2], apply: grounding_transformer}", "grounding_transformer reads [fine query map, coarser key/value map]; got levels 3 and 2: list the finer map first"),
        ("{from: [C3, C2], apply: rendering_transformer}", "rendering_transformer reads [finer key/value map, coarser query map]; got levels 3 and 2: list the finer map first"),
        ("{from: [C2, W3], apply: rendering_transformer}", "rendering_transformer weighs the query map's channels by the key map's means, so both need one width, got 16 and 8 channels"),
        ("{from: [C2], apply: {self_transformer: {parts: 3}}}", "self_transformer: 16 query/key channels do not divide into 3 parts; set inner to a multiple of parts"),
        ("{from: [C2], apply: grounding_transformer}", "apply 'grounding_transformer' takes 2 inputs, got 1"),
    ],
)
def test_misuse_is_refused_with_a_message(node, message):
    spec = f"""
pyramidgraph: 1
example: {{in_channels: [16, 16], image: 64}}
inputs: {{C2: {{level: 2}}, C3: {{level: 3}}}}
nodes:
  W3: {{from: [C3], channels: 8, post: [conv1x1]}}
  X: {node}
outputs: [X, W3]
"""
    with pytest.raises(SpecError) as info:
        pyramidgraph.compile(spec)
    assert [issue.message for issue in info.value.issues] == [message]


def test_a_rendering_transformer_refuses_maps_that_do_not_halve_down_to_the_query():
    neck = pyramidgraph.compile(OPS % "{}")
    feats = [x.float() for x in _pyramid(ODD)]
    feats[0] = torch.randn(2, C, 12, 17)  # 12 -> 6 -> 3 -> 2: P3 would be 6 high, not 7
    with pytest.raises(NeckInputError, match="ceil"):
        neck(feats)


# -- the whole neck -----------------------------------------------------------------------------


@SIZES
def test_the_fpt_neck_matches_the_direct_composition(sizes):
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpt", channels=C, in_channels=[C] * 4).double()
    _random_biases(neck)
    feats = _pyramid(sizes, seed=1)
    got = neck(feats)
    assert neck.output_names == ["P2", "P3", "P4", "P5"]
    want = fpt(feats, neck.state_dict())
    for level, (g, w, (h, wd)) in enumerate(zip(got, want, sizes), start=2):
        assert tuple(g.shape) == (2, C, h, wd)
        torch.testing.assert_close(g, w, msg=lambda m, level=level: f"P{level}: {m}")


def test_inputs_of_other_widths_get_lateral_convs():
    neck = pyramidgraph.compile("fpt", channels=8, in_channels=[8, 16, 32, 64])
    assert sorted({k.split(".")[0] for k in neck.state_dict() if k.startswith("L")}) == ["L3", "L4", "L5"]
    assert sorted({k.split(".")[0] for k in pyramidgraph.compile("fpt", channels=8, in_channels=[8, 16, 32, 64], lateral="always").state_dict() if k.startswith("L")}) == ["L2", "L3", "L4", "L5"]
    outs = neck([torch.randn(1, c, h, w) for c, (h, w) in zip([8, 16, 32, 64], ODD)])
    assert [tuple(o.shape) for o in outs] == [(1, 8, h, w) for h, w in ODD]


def test_parameter_count_at_the_paper_configuration():
    """C = 256, P2..P5, N = 2 parts, inputs already 256 wide (no laterals): 26,360,320, the count
    of /tmp/research/fpt/REPORT.md section 5(b) (the oracle's make_params(256); the paper quotes
    no figure):

    * ST, 4 x 197,888: query, key, value 1x1 256->256 with bias (3 x 65,792) + mix 2 x 256;
    * GT, 6 x 131,584: query, key 1x1 256->128 (2 x 32,896) + value 256->256 (65,792);
    * RT, 22 3x3 256->256 convs with bias (589,824 + 256 each): refine and fuse for each of the
      6 pairs, and one stride-2 conv per level of gap, 3 x 1 + 2 x 2 + 1 x 3 = 10;
    * fusion, 4 x (1280 * 256 * 9 + 256) = 11,797,504.

    With FPT_a's laterals on ResNet-50's C2..C5 (256, 512, 1024, 2048 -> 256, bias): + 984,064
    = 27,344,384 (REPORT.md again)."""
    neck = pyramidgraph.compile("fpt")
    assert sum(p.numel() for p in neck.parameters()) == 4 * 197_888 + 6 * 131_584 + 22 * 590_080 + 4 * 2_949_376 == 26_360_320
    resnet = pyramidgraph.compile("fpt", in_channels=[256, 512, 1024, 2048], lateral="always")
    assert sum(p.numel() for p in resnet.parameters()) == 26_360_320 + 984_064 == 27_344_384


def test_the_levels_known_before_shapes_are_the_query_levels():
    """Checks that run before shape inference (an include's input levels) take an apply node's
    level from its op: a rendering transformer is at its second (query) input's level."""
    from pyramidgraph.graph import node_levels

    levels = node_levels(pyramidgraph.validate("fpt").flat)
    expected = {f"ST{q}": q for q in range(2, 6)} | {f"{kind}{q}_{m}": q for q in range(2, 6) for m in range(2, 6) for kind in ("GT", "RT") if (m > q) == (kind == "GT") and m != q}
    assert {k: v for k, v in levels.items() if k[:2] in ("ST", "GT", "RT")} == expected
