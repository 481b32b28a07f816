"""RT-DETR's hybrid encoder: the ``aifi`` and ``rep_c3`` ops, the bundled spec and the
``rtdetr.HybridEncoder`` converter.

* ``aifi`` equals a transformer layer computed here by hand (attention written out head by head,
  the embedding by a loop over positions) with both embeddings, on square and non-square maps,
  and ultralytics 8.4's recorded AIFI; ``rep_c3`` equals ultralytics' recorded RepC3
  (tests/data/ultralytics_blocks, record_rtdetr.py there), keys and parameter counts included.
* The official HybridEncoder's recorded cases (tests/interop/fixtures/rtdetr_*.pt, recorded by
  tests/interop/data/record_rtdetr.py; and ../shared's when it is there) are reproduced with the
  reference's parameter counts; configs the reference cannot build are refused with what to change.
* At its defaults the spec is ultralytics' rtdetr-l head in the ultralytics importer's normal form.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.interop import conversion, from_reference

DATA = Path(__file__).resolve().parent / "data" / "ultralytics_blocks"
LOCAL = Path(__file__).resolve().parent / "interop" / "fixtures"
SHARED_NECKS = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "necks"
SPEC = "rtdetr_hybrid_encoder"


def _max_error(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return (ours - ref).abs().max().item() / max(1.0, ref.abs().max().item())


def _one_op(op: dict, channels: int, out: int | None = None) -> dict:
    """Input C3 -> node N running ``op`` after it, no projection in between."""
    node = {"from": ["C3"], "post": [op], **({"channels": out} if out else {})}
    return {"pyramidgraph": 1, "name": "one_op", "inputs": {"C3": {"level": 3, "channels": channels}}, "defaults": {"resample": {"project": "none"}}, "nodes": {"N": node}, "outputs": ["N"]}


# --------------------------------------------------------------------------- aifi, by hand


def _embedding_by_loops(height: int, width: int, channels: int, temperature: float, layout: str) -> torch.Tensor:
    """(1, H*W, C): token k is row k // W, column k % W of the map. ``hw`` embeds (row, column);
    ``wh`` what the official code's w-major grid gives token k: (column k // H, row k % H)."""
    quarter = channels // 4
    omega = [temperature ** (-i / quarter) for i in range(quarter)]
    rows = []
    for k in range(height * width):
        a, b = (k // width, k % width) if layout == "hw" else (k // height, k % height)
        rows.append([math.sin(a * o) for o in omega] + [math.cos(a * o) for o in omega] + [math.sin(b * o) for o in omega] + [math.cos(b * o) for o in omega])
    return torch.tensor(rows, dtype=torch.float64)[None]


def _aifi_by_hand(x: torch.Tensor, w: dict, heads: int, layout: str, temperature: float, pre_norm: bool, act) -> torch.Tensor:
    x = x.double()
    w = {k: v.double() for k, v in w.items()}
    batch, channels, height, width = x.shape
    tokens = x.flatten(2).transpose(1, 2)
    position = _embedding_by_loops(height, width, channels, temperature, layout)
    d = channels // heads

    def attention(query_in, value_in):
        wq, wk, wv = w["ma.in_proj_weight"].chunk(3)
        bq, bk, bv = w["ma.in_proj_bias"].chunk(3)
        q, k, v = query_in @ wq.T + bq, query_in @ wk.T + bk, value_in @ wv.T + bv
        heads_of = lambda z: z.reshape(batch, -1, heads, d).transpose(1, 2)  # noqa: E731
        mixed = torch.softmax(heads_of(q) @ heads_of(k).transpose(-1, -2) / math.sqrt(d), -1) @ heads_of(v)
        return mixed.transpose(1, 2).reshape(batch, -1, channels) @ w["ma.out_proj.weight"].T + w["ma.out_proj.bias"]

    def norm(z, name):
        return F.layer_norm(z, (channels,), w[f"{name}.weight"], w[f"{name}.bias"])

    def ffn(z):
        return act(z @ w["fc1.weight"].T + w["fc1.bias"]) @ w["fc2.weight"].T + w["fc2.bias"]

    if pre_norm:
        normed = norm(tokens, "norm1")
        s = tokens + attention(normed + position, normed)
        y = s + ffn(norm(s, "norm2"))
    else:
        s = norm(tokens + attention(tokens + position, tokens), "norm1")
        y = norm(s + ffn(s), "norm2")
    return y.transpose(1, 2).reshape(batch, channels, height, width)


def _randomised(neck: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in neck.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel()))
            elif name.endswith(("norm1.weight", "norm2.weight")):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return neck.eval()


AIFI_CASES = {
    "hw_square": ({"hidden": 24, "heads": 2, "embedding": "hw"}, 16, (6, 6)),
    "hw_non_square": ({"hidden": 24, "heads": 4, "embedding": "hw"}, 16, (3, 7)),
    "wh_square": ({"hidden": 16, "heads": 2, "embedding": "wh"}, 24, (5, 5)),
    "wh_non_square": ({"hidden": 16, "heads": 2, "embedding": "wh"}, 24, (4, 6)),
    "wh_non_square_pre_norm_relu": ({"hidden": 20, "heads": 4, "embedding": "wh", "normalize_before": True, "act": "relu", "temperature": 100.0}, 16, (7, 3)),
}


@pytest.mark.parametrize("case", list(AIFI_CASES))
def test_aifi_matches_a_transformer_layer_computed_by_hand(case):
    params, channels, size = AIFI_CASES[case]
    torch.manual_seed(0)
    neck = _randomised(pyramidgraph.compile(_one_op({"aifi": params}, channels)), 7)
    x = torch.randn(2, channels, *size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        (ours,) = neck([x])
    weights = {k.removeprefix("N.post0."): v for k, v in neck.state_dict().items()}
    act = F.relu if params.get("act") == "relu" else F.gelu
    expected = _aifi_by_hand(x, weights, params["heads"], params["embedding"], params.get("temperature", 10000.0), params.get("normalize_before", False), act)
    assert ours.shape == (2, channels, *size)
    assert (ours.double() - expected).abs().max().item() < 1e-5


def test_the_two_embeddings_agree_on_square_maps_only():
    necks = {}
    for layout in ("hw", "wh"):
        torch.manual_seed(0)
        necks[layout] = _randomised(pyramidgraph.compile(_one_op({"aifi": {"hidden": 16, "heads": 2, "embedding": layout}}, 16)), 5)
    generator = torch.Generator().manual_seed(4)
    square, wide = torch.randn(2, 16, 5, 5, generator=generator), torch.randn(2, 16, 3, 6, generator=generator)
    with torch.no_grad():
        assert torch.equal(necks["hw"]([square])[0], necks["wh"]([square])[0])
        assert (necks["hw"]([wide])[0] - necks["wh"]([wide])[0]).abs().max().item() > 1e-2


@pytest.mark.parametrize(
    "op,channels,message",
    [
        ({"aifi": {"heads": 2}}, 30, "nodes.N: aifi: the 2-D sin-cos position embedding splits the width into four parts (sin and cos of row and column), so it must divide by 4, got 30 channels"),
        ({"aifi": {"heads": 3}}, 32, "nodes.N: aifi: 32 channels do not divide into 3 attention heads; choose a width divisible by heads"),
        ({"rep_c3": {"expansion": 0.01}}, 32, "nodes.N: rep_c3: the hidden width int(32 * expansion 0.01) is 0; raise expansion or the width"),
    ],
)
def test_widths_the_blocks_cannot_take_are_spec_errors(op, channels, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        pyramidgraph.compile(_one_op(op, channels))


# --------------------------------------------------------------------------- ultralytics' blocks

ULTRALYTICS = {
    "rep_c3_half": {"rep_c3": {"blocks": 2, "expansion": 0.5}},
    "rep_c3_full": {"rep_c3": {"blocks": 3, "expansion": 1.0}},
    "aifi_square": {"aifi": {"hidden": 48, "heads": 4}},
    "aifi_nonsquare": {"aifi": {"hidden": 40, "heads": 2}},
}


@pytest.mark.parametrize("case", list(ULTRALYTICS))
def test_ultralytics_blocks_are_reproduced(case):
    recorded = torch.load(DATA / f"{case}.pt", weights_only=False)
    x, y = recorded["input"], recorded["output"]
    neck = pyramidgraph.compile(_one_op(ULTRALYTICS[case], x.shape[1], y.shape[1])).eval()
    ours = {k.removeprefix("N.post0."): k for k in neck.state_dict()}
    assert set(ours) == set(recorded["state_dict"])
    neck.load_state_dict({ours[k]: v for k, v in recorded["state_dict"].items()})
    assert sum(p.numel() for p in neck.parameters()) == recorded["num_params"]
    with torch.no_grad():
        (out,) = neck([x])
    assert out.shape == y.shape
    assert _max_error(out, y) < 1e-5


# --------------------------------------------------------------------------- the official HybridEncoder


def _hybrid_encoder_cases() -> list:
    paths = sorted(LOCAL.glob("rtdetr_*.pt"))
    if (SHARED_NECKS / "rtdetr_hybrid_encoder.pt").is_file():  # beside the checkout in CI, not in a fresh clone
        paths.append(SHARED_NECKS / "rtdetr_hybrid_encoder.pt")
    return [pytest.param(p, id=p.stem) for p in paths]


def test_the_repository_records_the_cases_the_converter_must_meet():
    names = {p.stem for p in LOCAL.glob("rtdetr_*.pt")}
    assert names == {"rtdetr_v1_odd_names", "rtdetr_4levels_two_encoders", "rtdetr_expansion_half_depth034_relu", "rtdetr_nonsquare_wh_embedding", "rtdetr_eval_size_dropout_repeats", "rtdetr_one_level"}
    assert all(p.stat().st_size < 1_500_000 for p in LOCAL.glob("rtdetr_*.pt"))


@pytest.mark.parametrize("path", _hybrid_encoder_cases())
def test_official_hybrid_encoder_cases_are_reproduced(path):
    case = torch.load(path, weights_only=False)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"]
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, list) and len(outputs) == len(case["outputs"])
    for ours, ref in zip(outputs, case["outputs"]):
        assert ours.shape == ref.shape
        assert _max_error(ours, ref) <= 1e-4


def test_the_official_embedding_is_needed_on_non_square_maps():
    """With ultralytics' row-first embedding the 20x28 case no longer matches."""
    case = torch.load(LOCAL / "rtdetr_nonsquare_wh_embedding.pt", weights_only=False)
    plan = conversion(case["source"], case["config"])
    assert plan.params["embedding"] == "wh"
    neck = pyramidgraph.compile(plan.spec, plan.in_channels, params={**plan.params, "embedding": "hw"}, return_type="list").eval()
    neck.load_state_dict(plan.key_map.convert(case["state_dict"], neck.state_dict(), case["source"]))
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert max(_max_error(o, r) for o, r in zip(outputs, case["outputs"])) > 1e-2


def test_official_names_map_onto_the_spec_by_prefix():
    v2 = conversion("rtdetr.HybridEncoder", {"in_channels": [16, 24, 32], "hidden_dim": 32, "nhead": 4}).key_map
    assert v2.target("input_proj.0.conv.weight") == "S3.post0.conv.weight"
    assert v2.target("input_proj.2.norm.running_var") == "Y5.post0.bn.running_var"
    assert v2.target("encoder.0.layers.0.self_attn.out_proj.weight") == "Y5.post1.ma.out_proj.weight"
    assert v2.target("encoder.0.layers.0.linear2.bias") == "Y5.post1.fc2.bias"
    assert v2.target("lateral_convs.0.norm.weight") == "Y5.post2.bn.weight"
    assert v2.target("lateral_convs.1.conv.weight") == "Y4.post1.conv.weight"
    assert v2.target("fpn_blocks.0.bottlenecks.2.conv2.norm.bias") == "Y4.post0.m.2.conv2.bn.bias"
    assert v2.target("fpn_blocks.1.conv1.conv.weight") == "P3.post0.cv1.conv.weight"
    assert v2.target("downsample_convs.1.norm.running_mean") == "P5.from_P4.bn.running_mean"
    assert v2.target("pan_blocks.0.conv2.norm.weight") == "P4.post0.cv2.bn.weight"
    v1 = conversion("rtdetr.HybridEncoder", {"version": "v1", "expansion": 0.5}).key_map
    assert v1.target("input_proj.1.0.weight") == "S4.post0.conv.weight"
    assert v1.target("input_proj.1.1.running_mean") == "S4.post0.bn.running_mean"
    assert v1.target("pan_blocks.1.conv3.norm.weight") == "P5.post0.cv3.bn.weight"


@pytest.mark.parametrize(
    "config,message",
    [
        ({"version": "v3"}, "version 'v3': the reference builds its input projections for 'v1' or 'v2' only (any other raises AttributeError)"),
        (
            {"num_layers": 2},
            "unknown config key 'num_layers'; did you mean 'num_encoder_layers'? (HybridEncoder takes: act, depth_mult, dim_feedforward, dropout, enc_act, eval_spatial_size, "
            "expansion, feat_strides, hidden_dim, in_channels, nhead, num_encoder_layers, pe_temperature, use_encoder_idx, version)",
        ),
        ({"hidden_dim": 250, "nhead": 8}, "hidden_dim 250 does not divide into nhead 8 heads, so the reference's nn.MultiheadAttention cannot be built"),
        ({"hidden_dim": 18, "nhead": 3}, "hidden_dim 18 is not divisible by 4, which the 2-D sin-cos position embedding needs: the reference's forward fails its assertion"),
        ({"use_encoder_idx": [3]}, "use_encoder_idx entry 3 names no input: the reference indexes its 3 projected maps with it (an IndexError in forward)"),
        ({"enc_act": "tanh"}, "enc_act 'tanh': the reference's get_activation knows silu, swish, relu, leaky_relu, gelu and hardsigmoid (or null), so it cannot build this"),
        (
            {"feat_strides": [8, 16, 64]},
            "feat_strides [8, 16, 64]: the reference upsamples by 2 and downsamples by stride 2 between neighbouring inputs, so the strides must be powers of two, each twice the previous ([8, 16, 32])",
        ),
        ({"in_channels": [64, 128], "use_encoder_idx": [1]}, "feat_strides lists 3 strides for 2 inputs; give one stride per in_channels entry"),
        ({"expansion": 0.001}, "expansion 0.001: the CSPRepLayers' hidden width int(hidden_dim * expansion) is 0; the reference builds empty convolutions"),
        ({"eval_spatial_size": [640]}, "eval_spatial_size must be null or [height, width], not [640]"),
    ],
)
def test_configs_the_reference_cannot_run_are_refused(config, message):
    with pytest.raises(SpecError) as caught:
        conversion("rtdetr.HybridEncoder", config)
    assert str(caught.value).endswith(message)
    assert str(caught.value).startswith("rtdetr.HybridEncoder: config: ")


def test_an_encoder_index_outside_the_levels_is_refused_by_the_spec():
    with pytest.raises(SpecError, match=re.escape("params.use_encoder_idx_in_range.default: parameter 'use_encoder_idx_in_range' cannot be False; allowed: True")):
        pyramidgraph.compile(SPEC, [8, 16, 32], use_encoder_idx=[3])


# --------------------------------------------------------------------------- the spec at rtdetr-l's defaults

NORMAL_FORM = {  # node: (its inputs in concat order, with the edge op's name where there is one; its post ops)
    "Y5": (["C5"], ["conv_bn_act", "aifi", "conv_bn_act"]),
    "S4": (["C4"], ["conv_bn_act"]),
    "Y4": (["Y5 upsample", "S4"], ["rep_c3", "conv_bn_act"]),
    "S3": (["C3"], ["conv_bn_act"]),
    "P3": (["Y4 upsample", "S3"], ["rep_c3"]),
    "P4": (["P3 conv_bn_act", "Y4"], ["rep_c3"]),
    "P5": (["P4 conv_bn_act", "Y5"], ["rep_c3"]),
}


def test_at_its_defaults_the_spec_is_ultralytics_rtdetr_l_in_the_importers_normal_form():
    flat = pyramidgraph.validate(SPEC).flat
    levels = {"C3": 3, "C4": 4, "C5": 5, "Y5": 5, "S4": 4, "Y4": 4, "S3": 3, "P3": 3, "P4": 4, "P5": 5}
    structure = {}
    for name, node in flat.nodes.items():
        inputs = []
        for edge in node.edges:
            gap = levels[edge.source] - levels[name]
            inputs.append(edge.source if gap == 0 else f"{edge.source} {(edge.up if gap > 0 else edge.down).name}")
        structure[name] = (inputs, [op.name for op in node.post])
        assert node.channels == 256 and node.fuse.name == "concat"
    assert structure == NORMAL_FORM
    assert [(o.name, o.ref) for o in flat.outputs] == [("P3", "P3"), ("P4", "P4"), ("P5", "P5")]
    nodes = flat.nodes
    assert nodes["Y5"].post[0].params() == {**nodes["Y5"].post[0].params(), "kernel": 1, "act": None, "eps": 1e-3, "momentum": 0.03}
    assert nodes["Y5"].post[1].params() == {"hidden": 1024, "heads": 8, "dropout": 0.0, "act": "gelu", "normalize_before": False, "embedding": "hw", "temperature": 10000.0}
    assert nodes["Y4"].post[1].params() == {**nodes["Y4"].post[1].params(), "kernel": 1, "act": "silu"}
    assert nodes["P3"].post[0].params() == {"blocks": 3, "expansion": 1.0, "out": None, "eps": 1e-3, "momentum": 0.03, "act": "silu", "rep_act": "silu"}
    assert nodes["Y4"].edges[0].up.params() == {**nodes["Y4"].edges[0].up.params(), "mode": "nearest", "by": "scale", "scale": 2}
    assert nodes["P4"].edges[0].down.params() == {**nodes["P4"].edges[0].down.params(), "kernel": 3, "stride": 2, "act": "silu"}


def _ultralytics_rtdetr_l_case() -> list:
    path = SHARED_NECKS / "ultralytics_rtdetr_l_neck.pt"
    return [pytest.param(path, id=path.stem)] if path.is_file() else []


# ultralytics' rtdetr-l rows -> the spec's modules (the importer's normal form, see NORMAL_FORM)
RTDETR_L_ROWS = {10: "Y5.post0", 11: "Y5.post1", 12: "Y5.post2", 14: "S4.post0", 16: "Y4.post0", 17: "Y4.post1", 19: "S3.post0", 21: "P3.post0", 22: "P4.from_P3", 24: "P4.post0", 25: "P5.from_P4", 27: "P5.post0"}


@pytest.mark.parametrize("path", _ultralytics_rtdetr_l_case())
def test_the_shared_ultralytics_rtdetr_l_neck_is_reproduced_at_the_defaults(path):
    case = torch.load(path, weights_only=False)
    state = case["state_dict"]
    hidden, ffn = state["model.10.conv.weight"].shape[0], state["model.11.fc1.weight"].shape[0]
    neck = pyramidgraph.compile(SPEC, case["config"]["in_channels"], hidden_dim=hidden, dim_feedforward=ffn).eval()
    renamed = {}
    for key, value in state.items():
        _, row, tail = key.split(".", 2)
        renamed[f"{RTDETR_L_ROWS[int(row)]}.{tail}"] = value
    neck.load_state_dict(renamed, strict=True)
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"]
    with torch.no_grad():
        outputs = neck(case["inputs"])
    for ours, ref in zip(outputs, case["outputs"], strict=True):
        assert _max_error(ours, ref) <= 1e-4


def test_a_compiled_encoder_re_traces_with_the_embedding_as_one_call():
    """torch.fx re-traces the neck (the embedding reads the map's size, so it stays one wrapped
    call) and the traced module computes the same; tests/test_export_dynamic.py exports it."""
    torch.manual_seed(0)
    neck = pyramidgraph.compile(SPEC, [8, 16, 24], hidden_dim=16, nhead=2, dim_feedforward=16, use_encoder_idx=[0, 2], embedding="wh").eval()
    traced = torch.fx.symbolic_trace(neck)
    assert sum(1 for n in traced.graph.nodes if n.op == "call_function" and getattr(n.target, "__name__", "") == "sincos_position_embedding") == 2
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for h, w in ((64, 160), (96, 96)):
            x = [torch.randn(1, c, h // s, w // s, generator=generator) for c, s in zip([8, 16, 24], [8, 16, 32])]
            for a, b in zip(neck(x), traced(x), strict=True):
                assert torch.equal(a, b)
