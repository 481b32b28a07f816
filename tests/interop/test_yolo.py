"""YOLO necks: ultralytics' YOLOv8 head and mmdetection's YOLOXPAFPN, with the CSP ops.

Parity with recorded reference runs (shared fixtures and tests/interop/fixtures), parameter
counts equal to the references' for configurations too large to record (every YOLOv8 scale,
YOLOX-S/L/X/nano), what odd image sizes do, and the converters' refusals.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from recorded import load_case, shared_cases

import pyramidgraph
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.interop.ultralytics import NECK

LOCAL = Path(__file__).resolve().parent / "fixtures"

REFERENCE_PARAMS = {
    # shared fixtures (../shared/fixtures/index.json)
    "ultralytics_yolov8n_neck": 986880,
    "mmdet_yolox_pafpn": 186112,
    # recorded with ../shared/peers/make_fixtures.py (ultralytics 8.4.190, mmdet 3.3.0)
    "ultralytics_yolov8_m_tiny_odd": 18288,
    "ultralytics_yolov8_x_tiny": 18400,
    "ultralytics_yolov8_relu_tiny": 15840,
    "mmdet_yolox_pafpn_dw2": 8304,
    "mmdet_yolox_pafpn_4lvl_relu_bilinear": 9936,
    "mmdet_yolox_pafpn_noblocks_leaky": 1984,
}
CASES = shared_cases(["ultralytics_yolov8n_neck", "mmdet_yolox_pafpn"]) + [pytest.param(LOCAL / f"{name}.pt", id=name) for name in REFERENCE_PARAMS if name.startswith(("ultralytics_yolov8_", "mmdet_yolox_pafpn_"))]


def _reference_parameters(state_dict) -> int:
    """Parameters of the reference module: its state_dict without the BN buffers."""
    return sum(v.numel() for k, v in state_dict.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


@pytest.mark.parametrize("path", CASES)
def test_reference_case_is_reproduced(path: Path):
    case = load_case(path)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    ours = sum(p.numel() for p in neck.parameters())
    assert ours == REFERENCE_PARAMS[case["id"]] == _reference_parameters(case["state_dict"])
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert isinstance(outputs, tuple) and case["output_names"] is None
    assert len(outputs) == len(case["outputs"])
    for index, (mine, ref) in enumerate(zip(outputs, case["outputs"])):
        assert mine.shape == ref.shape, f"output {index}"
        error = (mine - ref).abs().max().item()
        assert error <= 1e-4 * max(1.0, ref.abs().max().item()), f"output {index}: max error {error}"


def _meta_neck(source: str, config: dict, image: int | tuple[int, int] = 640):
    """The converted neck without allocating its weights (counts and shapes only)."""
    plan = conversion(source, config)
    with torch.device("meta"):
        return pyramidgraph.compile(plan.spec, plan.in_channels, params=plan.params, image=image)


# Parameter counts of ultralytics 8.4.190's layers 10..21 for each scale of yolov8.yaml.
YOLOV8 = {
    "n": ([64, 128, 256], 986880),
    "s": ([128, 256, 512], 3939840),
    "m": ([192, 384, 576], 10224768),
    "l": ([256, 512, 512], 18238464),
    "x": ([320, 640, 640], 28491520),
}


@pytest.mark.parametrize("scale", list(YOLOV8))
def test_every_yolov8_scale_has_the_reference_size(scale: str):
    in_channels, params = YOLOV8[scale]
    neck = _meta_neck("ultralytics.yolov8-neck", {"yaml": f"yolov8{scale}.yaml", "in_channels": in_channels})
    assert sum(p.numel() for p in neck.parameters()) == params
    assert neck.out_channels == in_channels  # the head's outputs are as wide as the backbone maps it reads
    assert neck.strides == [8, 16, 32]


def test_yolov8_scale_from_a_path_a_task_variant_or_the_config():
    for config in ({"yaml": "cfg/models/v8/yolov8s-seg.yaml"}, {"yaml": "yolov8-pose.yaml", "scale": "s"}):
        assert conversion("ultralytics.yolov8-neck", dict(config, in_channels=[128, 256, 512])).params["scale"] == "s"
    assert conversion("ultralytics.yolov8-neck", {"yaml": "yolov8.yaml", "in_channels": [64, 128, 256]}).params["scale"] == "n"


def test_yolov8_spec_scales_follow_parse_model():
    params = pyramidgraph.validate("yolov8", scale="m").flat.params
    assert (params["repeats"], params["c3"], params["c4"], params["c5"]) == (2, 192, 384, 576)  # 1024 capped at 768
    custom = pyramidgraph.validate("yolov8", depth=1.0, width=0.3, max_channels=1024).flat.params
    assert (custom["repeats"], custom["c3"], custom["c4"], custom["c5"]) == (3, 80, 160, 312)  # rounded up to multiples of 8


def test_yolov8_needs_image_sides_divisible_by_32_unless_upsampling_by_size():
    # ultralytics' nn.Upsample(scale_factor=2) cannot line 4x4 up with 7x7 (the reference
    # raises in torch.cat at 100x100); the spec says so before running anything.
    with pytest.raises(SpecError, match="do not line up"):
        pyramidgraph.compile("yolov8", image=100)
    neck = pyramidgraph.compile("yolov8", image=100, upsample_by="size").eval()
    with torch.no_grad():
        outputs = neck(neck.example_inputs(image=100))
    assert [tuple(o.shape) for o in outputs] == [(1, 64, 13, 13), (1, 128, 7, 7), (1, 256, 4, 4)]


def test_yolov8_graph_is_plain_calls():
    neck = pyramidgraph.compile("yolov8")
    assert "torch.chunk" in neck.code and "torch.cat" in neck.code and "interpolate" in neck.code
    assert "P4_td.post0.m.0.cv2.bn.running_var" in neck.state_dict()


@pytest.mark.parametrize(
    "config, message",
    [
        ({"yaml": "yolov8n-p6.yaml", "in_channels": [64, 128, 192, 256]}, "not a YOLOv8 model"),
        ({"yaml": "yolov8.yaml", "scale": "q", "in_channels": [64, 128, 256]}, "unknown YOLOv8 scale"),
        ({"yaml": "yolov8n.yaml", "in_channels": [64, 128]}, "three maps"),
        ({"yaml": {"scales": {"n": [0.33, 0.25, 1024]}, "head": [[-1, 1, "Conv", [256, 3, 2]]]}, "in_channels": [64, 128, 256]}, "head is not"),
        ({"yaml": "yolov8n.yaml", "in_channels": [64, 128, 256], "output_layers": [15, 18]}, "output_layers"),
        ({"yaml": {"scales": {"n": [0.33, 0.25, 1024]}, "head": NECK, "activation": "nn.LeakyReLU(0.1)"}, "in_channels": [64, 128, 256]}, "activation"),
        # what ultralytics cannot build or run (issue 13: the sweep's refusals, tests/sweeps/ultralytics_yolov8_neck.py)
        ({"yaml": "yolov8s.yaml", "in_channels": [64, 128, 256]}, r"in_channels \[64, 128, 256\] are not the widths of layers 4, 6 and 9 at this scale \(\[128, 256, 512\]\)"),
        ({"yaml": {"scales": {"n": [0.33, 0.25]}, "head": NECK}, "in_channels": [64, 128, 256]}, r"scale 'n' is \[depth, width, max_channels\], three numbers"),
        ({"yaml": {"scales": {"n": [0.33, 0.0, 1024]}, "head": NECK}, "in_channels": [8, 8, 8]}, "width 0.0 and max_channels 1024 positive"),
    ],
)
def test_yolov8_converter_refuses_other_graphs(config, message):
    with pytest.raises(SpecError, match=message):
        conversion("ultralytics.yolov8-neck", config)


def test_yolov8_backbone_widths_of_a_mapping_are_its_rows():
    """A mapping's layers 4, 6 and 9 are its own rows scaled: a yaml with a narrower backbone
    reads narrower maps, and in_channels must be those (yolov8.yaml's at width 0.25: 64, 128, 256)."""
    conv = [-1, 1, "Conv", [64, 3, 2]]
    backbone = [conv] * 4 + [[-1, 1, "C2f", [128]], conv, [-1, 1, "C2f", [256]], conv, conv, [-1, 1, "SPPF", [512, 5]]]
    data = {"scales": {"n": [0.33, 0.25, 1024]}, "backbone": backbone, "head": NECK}
    assert conversion("ultralytics.yolov8-neck", {"yaml": data, "in_channels": [32, 64, 128]}).in_channels == [32, 64, 128]
    with pytest.raises(SpecError, match=r"\(\[32, 64, 128\]\)"):
        conversion("ultralytics.yolov8-neck", {"yaml": data, "in_channels": [64, 128, 256]})


def test_unknown_scale_in_the_spec_is_an_error_listing_the_scales():
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate("yolov8", scale="q")
    (issue,) = caught.value.issues
    assert (issue.path, issue.message) == ("params.scale", "parameter 'scale' cannot be 'q'; allowed: 'n', 's', 'm', 'l', 'x'")


def _yolox(**config) -> dict:
    return {"strides": [8, 16, 32], "necks": [dict({"type": "YOLOXPAFPN"}, **config)]}


# Parameter counts of mmdetection 3.3.0's YOLOXPAFPN for the YOLOX model configs.
YOLOX = [
    (dict(in_channels=[128, 256, 512], out_channels=128, num_csp_blocks=1), 2950144),  # YOLOX-S
    (dict(in_channels=[256, 512, 1024], out_channels=256, num_csp_blocks=3), 19983360),  # YOLOX-L
    (dict(in_channels=[320, 640, 1280], out_channels=320, num_csp_blocks=4), 37621120),  # YOLOX-X
    (dict(in_channels=[64, 128, 256], out_channels=64, num_csp_blocks=1, use_depthwise=True), 376480),  # YOLOX-nano
]


@pytest.mark.parametrize("config, params", YOLOX, ids=["s", "l", "x", "nano"])
def test_yolox_configs_have_the_reference_size(config, params):
    neck = _meta_neck("mmdet", _yolox(**config))
    assert sum(p.numel() for p in neck.parameters()) == params
    assert neck.out_channels == config["out_channels"] and neck.strides == [8, 16, 32]


def test_yolox_one_level_is_the_output_conv():
    neck = _meta_neck("mmdet", {"strides": [32], "necks": [dict(type="YOLOXPAFPN", in_channels=[16], out_channels=8)]}, image=64)
    assert list(neck.state_dict()) == [f"O5.post0.{k}" for k in ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")]


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(norm_cfg={"type": "LN"}), "norm_cfg"),
        (dict(norm_cfg={"type": "GN"}), "num_groups"),
        (dict(upsample_cfg={"scale_factor": 4, "mode": "nearest"}), "scale_factor must be 2"),
        (dict(act_cfg={"type": "PReLU"}), "act_cfg"),
        (dict(conv_cfg={"type": "DCN"}), "conv_cfg"),
    ],
)
def test_yolox_converter_refuses_what_it_cannot_reproduce(config, message):
    with pytest.raises(SpecError, match=message):
        conversion("mmdet", _yolox(in_channels=[8, 16, 32], out_channels=8, **config))


def test_yolox_norm_and_activation_reach_every_unit():
    neck = from_reference("mmdet", _yolox(in_channels=[8, 16, 32], out_channels=8, use_depthwise=True, norm_cfg={"type": "BN", "eps": 1e-4, "momentum": 0.2}, act_cfg=None))
    norms = [m for m in neck.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all((m.eps, m.momentum) == (1e-4, 0.2) for m in norms)
    assert "silu" not in neck.code
    assert any(m.groups == m.in_channels > 1 for m in neck.modules() if isinstance(m, torch.nn.Conv2d))
