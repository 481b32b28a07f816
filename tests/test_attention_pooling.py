"""Attention from global pooling (``pyramidgraph/ops/pooling.py`` and the fuse op ``gate``), each op
against a direct computation written here with ``torch.nn.functional`` on the compiled neck's
own ``state_dict`` (every weight and norm statistic randomised, odd map sizes).

* ``gate``: NAS-FPN's global-pooling gate in both references' forms: mmcv's
  ``GlobalPoolingCell._binary_op(x1, x2) = x2 + sigmoid(avgpool(x2)) * x1`` and the TensorFlow
  ``global_attention(feat0, feat1) = feat0 + feat1 * sigmoid(reduce_max(feat0))`` (tensorflow/tpu
  ``models/official/detection/modeling/architecture/nasfpn.py``, whose caller passes the input
  from the coarser level as ``feat0``).
* ``se``: squeeze-and-excitation (Hu et al. 2018).
* ``gau``, ``fpa``: the Pyramid Attention Network's modules as segmentation-models-pytorch
  0.6.0 writes them (``GAUBlock``, ``FPABlock``, ``ConvBnRelu``).

The helpers :func:`gau_directly` and :func:`fpa_directly` are reused by
``tests/interop/test_smp_pan.py`` for the whole decoder.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import pyramidgraph


def randomised(neck: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every float tensor of the state_dict drawn from ``seed`` (variances positive), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in neck.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.is_floating_point():
                tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))
    return neck.eval()


def _spec(nodes: str, inputs: str = "  C3: {level: 3}\n  C4: {level: 4}", outputs: str = "[X]") -> str:
    return f"pyramidgraph: 1\ninputs:\n{inputs}\ndefaults: {{resample: {{project: none}}}}\nnodes:\n{nodes}\noutputs: {outputs}\n"


def _close(ours: torch.Tensor, direct: torch.Tensor) -> None:
    assert ours.shape == direct.shape
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)


def _refusal(spec: str, in_channels: list[int], image=None) -> str:
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.compile(spec, in_channels, image=image)
    return info.value.issues[0].message


# -- NAS-FPN's global-pooling gate --------------------------------------------------------------

C3_MAP, C4_MAP = (13, 11), (7, 6)  # an odd image: C4 is not half of C3


def _gate_neck(fuse: str, order: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    neck = pyramidgraph.compile(_spec(f"  X: {{level: 3, from: [{order}], fuse: {fuse}}}"), [6, 6])
    torch.manual_seed(0)
    return neck, torch.randn(2, 6, *C3_MAP), torch.randn(2, 6, *C4_MAP)


def test_gate_with_its_defaults_is_mmcvs_global_pooling_cell():
    """mmcv: x2 gates x1 with its average, x2 + sigmoid(avgpool(x2)) * x1; here x1 = C3 and x2 =
    C4 brought to C3's size (the node's edges; mmcv resizes both inputs to the output's size)."""
    neck, c3, c4 = _gate_neck("gate", "C3, C4")
    x1, x2 = c3, F.interpolate(c4, size=C3_MAP, mode="nearest")
    _close(neck([c3, c4])[0], x2 + torch.sigmoid(F.adaptive_avg_pool2d(x2, 1)) * x1)


def test_gate_first_max_is_the_tensorflow_global_attention_gated_by_the_coarser_input():
    """TensorFlow: global_attention(feat0, feat1) = feat0 + feat1 * sigmoid(reduce_max(feat0)),
    feat0 the input from the coarser level (C4, upsampled), so the coarser input is listed first."""
    neck, c3, c4 = _gate_neck("{gate: {gate: first, pool: max}}", "C4, C3")
    feat0, feat1 = F.interpolate(c4, size=C3_MAP, mode="nearest"), c3
    direct = feat0 + feat1 * torch.sigmoid(torch.amax(feat0, dim=(2, 3), keepdim=True))
    _close(neck([c3, c4])[0], direct)
    mmcv_form = feat0 + torch.sigmoid(F.adaptive_avg_pool2d(feat0, 1)) * feat1  # same inputs, the other pooling
    assert (direct - mmcv_form).abs().max() > 1e-2


def test_gate_pools_the_input_it_names():
    """``gate: first`` and ``last`` differ on the same inputs: the pooled input is the one added as it is."""
    neck, c3, c4 = _gate_neck("{gate: {gate: first}}", "C3, C4")
    up = F.interpolate(c4, size=C3_MAP, mode="nearest")
    _close(neck([c3, c4])[0], c3 + torch.sigmoid(F.adaptive_avg_pool2d(c3, 1)) * up)


# -- squeeze-and-excitation ---------------------------------------------------------------------


def se_directly(sd: dict, prefix: str, x: torch.Tensor, act=F.relu, gate=torch.sigmoid) -> torch.Tensor:
    squeezed = x.mean(dim=(2, 3), keepdim=True)
    hidden = act(F.conv2d(squeezed, sd[f"{prefix}.fc1.weight"], sd[f"{prefix}.fc1.bias"]))
    return x * gate(F.conv2d(hidden, sd[f"{prefix}.fc2.weight"], sd[f"{prefix}.fc2.bias"]))


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return F.relu6(x + 3.0) / 6.0


@pytest.mark.parametrize(
    "params,hidden,act,gate",
    [
        ("{}", 2, F.relu, torch.sigmoid),  # 40 // 16
        ("{reduction: 4}", 10, F.relu, torch.sigmoid),
        ("{reduced: 5, act: silu, gate: hard_sigmoid}", 5, F.silu, _hard_sigmoid),
        ("{reduction: 1, act: gelu}", 40, F.gelu, torch.sigmoid),
    ],
)
def test_se_is_the_direct_squeeze_and_excitation(params, hidden, act, gate):
    neck = randomised(pyramidgraph.compile(_spec(f"  X: {{from: [C3], post: [{{se: {params}}}]}}", "  C3: {level: 3}"), [40]))
    sd = neck.state_dict()
    assert sd["X.post0.fc1.weight"].shape == (hidden, 40, 1, 1) and sd["X.post0.fc2.weight"].shape == (40, hidden, 1, 1)
    x = torch.randn(2, 40, 9, 14)
    with torch.no_grad():
        _close(neck([x])[0], se_directly(sd, "X.post0", x, act, gate))


def test_se_after_a_conv_gates_the_nodes_width():
    neck = randomised(pyramidgraph.compile(_spec("  X: {from: [C3], channels: 24, post: [conv1x1, {se: 8}]}", "  C3: {level: 3}"), [10]))
    sd = neck.state_dict()
    x = torch.randn(2, 10, 5, 7)
    with torch.no_grad():
        _close(neck([x])[0], se_directly(sd, "X.post1", F.conv2d(x, sd["X.post0.weight"], sd["X.post0.bias"])))


@pytest.mark.parametrize(
    "params,message",
    [
        ("{reduction: 16}", "se: 8 channels // reduction 16 leaves no hidden channel; lower reduction or set reduced"),
        ("{reduction: 0}", "se: reduction must be at least 1, got 0"),
        ("{reduced: 0}", "se: reduced must be at least 1, got 0"),
    ],
)
def test_se_refuses_widths_that_leave_no_hidden_channel(params, message):
    assert _refusal(_spec(f"  X: {{from: [C3], post: [{{se: {params}}}]}}", "  C3: {level: 3}"), [8]) == message


# -- PAN's Global Attention Upsample ------------------------------------------------------------


def conv_bn_relu(sd: dict, prefix: str, x: torch.Tensor, relu: bool = True) -> torch.Tensor:
    """smp's ConvBnRelu (eval): conv (padding k // 2, its bias if there is one), BN, ReLU."""
    weight = sd[f"{prefix}.conv.weight"]
    y = F.conv2d(x, weight, sd.get(f"{prefix}.conv.bias"), padding=weight.shape[-1] // 2)
    y = F.batch_norm(y, sd[f"{prefix}.bn.running_mean"], sd[f"{prefix}.bn.running_var"], sd[f"{prefix}.bn.weight"], sd[f"{prefix}.bn.bias"], False, 0.0, 1e-5)
    return F.relu(y) if relu else y


def gau_directly(sd: dict, prefix: str, fine: torch.Tensor, coarse: torch.Tensor, mode: str = "bilinear", gate=torch.sigmoid) -> torch.Tensor:
    """GAUBlock.forward(x=fine, y=coarse)."""
    up = F.interpolate(coarse, size=fine.shape[-2:], mode=mode, align_corners=True if mode == "bilinear" else None)
    weight = gate(conv_bn_relu(sd, f"{prefix}.gate", F.adaptive_avg_pool2d(coarse, 1), relu=False))
    return up + conv_bn_relu(sd, f"{prefix}.conv", fine) * weight


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic", "area", "nearest-exact"])
@pytest.mark.parametrize("gate_act,gate", [("sigmoid", torch.sigmoid), ("relu", F.relu), ("hard_sigmoid", _hard_sigmoid)])
def test_gau_is_smps_gau_block(mode, gate_act, gate):
    spec = _spec(f"  X: {{from: [C3, C4], channels: 8, apply: {{gau: {{mode: {mode}, gate_act: {gate_act}}}}}}}")
    neck = randomised(pyramidgraph.compile(spec, [12, 8]))
    sd = neck.state_dict()
    assert sd["X.op.conv.conv.weight"].shape == (8, 12, 3, 3) and sd["X.op.gate.conv.weight"].shape == (8, 8, 1, 1)
    torch.manual_seed(0)
    fine, coarse = torch.randn(2, 12, *C3_MAP), torch.randn(2, 8, *C4_MAP)
    with torch.no_grad():
        _close(neck([fine, coarse])[0], gau_directly(sd, "X.op", fine, coarse, mode, gate))


def test_gau_without_bias_has_no_conv_bias_and_the_same_computation():
    neck = randomised(pyramidgraph.compile(_spec("  X: {from: [C3, C4], channels: 8, apply: {gau: {bias: false}}}"), [12, 8]))
    sd = neck.state_dict()
    assert "X.op.conv.conv.bias" not in sd and "X.op.gate.conv.bias" not in sd
    fine, coarse = torch.randn(2, 12, *C3_MAP), torch.randn(2, 8, *C4_MAP)
    with torch.no_grad():
        _close(neck([fine, coarse])[0], gau_directly(sd, "X.op", fine, coarse))


def test_gau_upsamples_by_the_fine_maps_size_and_keeps_its_level():
    info = pyramidgraph.validate(_spec("  X: {from: [C3, C4], channels: 8, apply: gau}"), [12, 8], image=(100, 90))
    shape = info.ir.values()[info.ir.outputs[0][1]]
    assert (shape.channels, shape.level, shape.size) == (8, 3, (13, 12))


@pytest.mark.parametrize(
    "nodes,in_channels,message",
    [
        ("  X: {from: [C4, C3], channels: 8, apply: gau}", [8, 8], "apply 'gau' reads [fine map, coarse map]; got levels 4 and 3: list the finer map first"),
        ("  X: {from: [C3, C4], channels: 6, apply: gau}", [8, 8], "apply 'gau': the coarse map has 8 channels but the output 6; the coarse map is added as it is, so give it the node's width"),
        ("  X: {from: [C3, C4, C4], apply: gau}", [8, 8], "apply 'gau' takes 2 inputs, got 3"),
    ],
)
def test_gau_refusals(nodes, in_channels, message):
    assert _refusal(_spec(nodes), in_channels) == message


# -- PAN's Feature Pyramid Attention ------------------------------------------------------------


def fpa_directly(sd: dict, prefix: str, x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """FPABlock.forward, with its sizes (height // 4, height // 2) and its interpolation of the
    pooled 1x1 branch written as smp writes them."""
    height, width = x.shape[-2:]
    align = True if mode == "bilinear" else None

    def up(value, size):
        return F.interpolate(value, size=size, mode=mode, align_corners=align)

    pooled = up(conv_bn_relu(sd, f"{prefix}.pooled", F.adaptive_avg_pool2d(x, 1)), (height, width))
    middle = conv_bn_relu(sd, f"{prefix}.mid", x)
    x1 = conv_bn_relu(sd, f"{prefix}.down1", F.max_pool2d(x, 2, 2))
    x2 = conv_bn_relu(sd, f"{prefix}.down2", F.max_pool2d(x1, 2, 2))
    x3 = conv_bn_relu(sd, f"{prefix}.down3.1", conv_bn_relu(sd, f"{prefix}.down3.0", F.max_pool2d(x2, 2, 2)))
    y = conv_bn_relu(sd, f"{prefix}.conv2", x2) + up(x3, (height // 4, width // 4))
    y = up(y, (height // 2, width // 2)) + conv_bn_relu(sd, f"{prefix}.conv1", x1)
    return up(y, (height, width)) * middle + pooled


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (15, 10), (23, 17)])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_fpa_is_smps_fpa_block(size, mode):
    neck = randomised(pyramidgraph.compile(_spec(f"  X: {{from: [C4], channels: 8, post: [{{fpa: {{mode: {mode}}}}}]}}", "  C4: {level: 4}"), [12]))
    sd = neck.state_dict()
    assert sd["X.post0.down1.conv.weight"].shape == (1, 12, 7, 7) and sd["X.post0.mid.conv.weight"].shape == (8, 12, 1, 1)
    assert sd["X.post0.down3.1.conv.weight"].shape == (1, 1, 3, 3) and sd["X.post0.conv1.conv.weight"].shape == (1, 1, 7, 7)
    x = torch.randn(2, 12, *size)
    with torch.no_grad():
        _close(neck([x])[0], fpa_directly(sd, "X.post0", x, mode))


def test_fpa_out_sets_its_width_and_bias_false_drops_the_conv_biases():
    neck = randomised(pyramidgraph.compile(_spec("  X: {from: [C4], post: [{fpa: {out: 5, bias: false}}]}", "  C4: {level: 4}"), [12]))
    sd = neck.state_dict()
    assert not [k for k in sd if k.endswith("conv.bias")]
    x = torch.randn(2, 12, 11, 9)
    with torch.no_grad():
        out = neck([x])[0]
    assert out.shape == (2, 5, 11, 9)
    _close(out, fpa_directly(sd, "X.post0", x))


def test_fpa_refuses_a_map_too_small_for_its_three_max_pools():
    spec = _spec("  X: {from: [C4], channels: 8, post: [fpa]}", "  C4: {level: 4}")
    assert _refusal(spec, [12], image=(112, 144)) == "fpa: a 7x9 map is too small for its three 2x2 max pools; each side must be at least 8 (a larger image)"


# -- weights ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "nodes,inputs,in_channels",
    [
        ("  X: {from: [C3], post: [{se: {reduction: 4}}]}", "  C3: {level: 3}", [24]),
        ("  X: {from: [C3, C4], channels: 8, apply: gau}", "  C3: {level: 3}\n  C4: {level: 4}", [12, 8]),
        ("  X: {from: [C3, C4], channels: 8, apply: {gau: {bias: false}}}", "  C3: {level: 3}\n  C4: {level: 4}", [12, 8]),
        ("  X: {from: [C3], channels: 8, post: [fpa]}", "  C3: {level: 3}", [12]),
        ("  X: {from: [C3], channels: 8, post: [{fpa: {bias: false}}]}", "  C3: {level: 3}", [12]),
    ],
)
def test_each_ops_weight_estimate_is_its_exact_count_of_parameters_and_buffers(nodes, inputs, in_channels):
    spec = _spec(nodes, inputs)
    (op,) = [op for op in pyramidgraph.validate(spec, in_channels).ir.ops if op.op.has_parameters]
    held = sum(t.numel() for k, t in pyramidgraph.compile(spec, in_channels).state_dict().items() if k.startswith(op.module + "."))
    assert op.op.weight_estimate(op.shapes, op.shape) == held
