"""The ultralytics importer: any model yaml's neck as a spec and a key map.

Parity with recorded cases is in test_fixtures.py (every ``ultralytics.neck`` case, shared and
local); here: the normal form written, how a yaml is found and scaled, the facts of every
ultralytics 8.4 model measured from ultralytics itself (data/ultralytics_necks.json), the
bundled specs that equal the importer's output, whole-model checkpoints, and the located
errors of rows that cannot be mapped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pyramidgraph.cli import main
from pyramidgraph.compiler import Compilation
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion, from_reference
from pyramidgraph.interop import ultralytics_yaml as importer

DATA = Path(__file__).parent / "data" / "ultralytics"
LOCAL = Path(__file__).parent / "fixtures"


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def plan(name: str, **config):
    return conversion("ultralytics.neck", {"yaml": str(DATA / name), **config})


def refusal(name_or_text, **config) -> str:
    with pytest.raises(SpecError) as caught:
        conversion("ultralytics.neck", {"yaml": name_or_text, **config})
    return str(caught.value)


UP = {"upsample": {"by": "scale", "scale": 2, "mode": "nearest"}}
DOWN = {"conv_bn_act": {"kernel": 3, "stride": 2, "act": "silu"}}


def test_yolov8n_is_written_in_the_normal_form():
    """Upsampling and strided convs that feed a concat sit on its edges; the C2f after a concat
    is the node's post op; nodes are named after their last layer, inputs and outputs by level."""
    p = plan("yolov8n.yaml")
    assert p.in_channels == [64, 128, 256]  # layers 4, 6 and 9: C2f 256, C2f 512 and SPPF 1024 at width 0.25
    assert p.spec["inputs"] == {"C3": {"level": 3}, "C4": {"level": 4}, "C5": {"level": 5}}
    assert p.spec["defaults"] == {"fuse": "concat", "resample": {"project": "none"}}
    assert p.spec["nodes"] == {
        "L12": {"level": 4, "from": [{"from": "C5", "up": UP}, "C4"], "channels": 128, "post": [{"c2f": {"blocks": 1}}]},
        "L15": {"level": 3, "from": [{"from": "L12", "up": UP}, "C3"], "channels": 64, "post": [{"c2f": {"blocks": 1}}]},
        "L18": {"level": 4, "from": [{"from": "L15", "down": DOWN}, "L12"], "channels": 128, "post": [{"c2f": {"blocks": 1}}]},
        "L21": {"level": 5, "from": [{"from": "L18", "down": DOWN}, "C5"], "channels": 256, "post": [{"c2f": {"blocks": 1}}]},
    }
    assert p.spec["outputs"] == {"P3": "L15", "P4": "L18", "P5": "L21"}
    assert p.key_map.prefixes == {"model.12": "L12.post0", "model.15": "L15.post0", "model.16": "L18.from_L15", "model.18": "L18.post0", "model.19": "L21.from_L18", "model.21": "L21.post0"}


def test_yolov3_chains_rows_with_one_reader_into_one_node():
    """Layers 11-14 each read only the one before: one node with four post ops; 14 has two
    readers (15 and 16), so 15 and 16 start nodes; a row repeated twice (27) is two post ops."""
    p = plan("yolov3.yaml")
    assert p.in_channels == [256, 512, 1024]
    nodes = p.spec["nodes"]
    assert list(nodes) == ["L14", "L15", "L16", "L21", "L22", "L23", "L27"]
    assert nodes["L14"]["from"] == ["C5"] and [next(iter(op)) for op in nodes["L14"]["post"]] == ["bottleneck", "conv_bn_act", "conv_bn_act", "conv_bn_act"]
    assert nodes["L27"]["post"] == [{"bottleneck": {"shortcut": False}}] * 3
    assert p.spec["outputs"] == {"P3": "L27", "P4": "L22", "P5": "L15"}  # Detect's order: [27, 22, 15]
    assert p.key_map.prefixes["model.27.1"] == "L27.post2" and p.key_map.prefixes["model.26"] == "L27.post0"


def test_yolov6_activation_and_transposed_convs():
    p = plan("yolov6n.yaml")
    nodes = p.spec["nodes"]
    assert nodes["L15"]["from"] == [{"from": "L10", "up": {"deconv": {"kernel": 2, "stride": 2}}}, "C4"]
    assert nodes["L10"]["post"] == [{"conv_bn_act": {"kernel": 1, "act": "relu"}}]  # yolov6.yaml: activation: torch.nn.ReLU()
    assert p.key_map.prefixes["model.11"] == "L15.from_L10.deconv"
    # layer 14 is nn.Sequential of 9 Convs at depth 1 (3 at n's 0.33): model.14.0 .. model.14.2
    assert [p.key_map.prefixes[f"model.14.{k}"] for k in (0, 2)] == ["L15.post1", "L15.post3"] and "model.14.3" not in p.key_map.prefixes


@pytest.mark.parametrize(
    ("name", "config", "in_channels"),
    [
        ("yolo11n.yaml", {}, [128, 128, 256]),  # the letter in the name: yolo11.yaml at n
        ("yolo11s.yaml", {}, [256, 256, 512]),
        ("yolo11.yaml", {}, [128, 128, 256]),  # no letter: the first scale, as ultralytics
        ("yolo11.yaml", {"scale": "x"}, [768, 768, 768]),  # min(1024, 512) * 1.5
        ("yolov8n6.yaml", {}, [64, 128, 192, 256]),  # ultralytics' yolov8n6 -> yolov8n-p6
        ("yolov8s-p2.yaml", {}, [64, 128, 256, 512]),
        ("yolov8.yaml", {"yaml_overrides": {"scales": {"n": [0.33, 0.125, 1024]}}}, [32, 64, 128]),
        ("yolov3.yaml", {"yaml_overrides": {"width_multiple": 0.125}}, [32, 64, 128]),
    ],
)
def test_a_model_is_found_and_scaled_as_ultralytics_does(name, config, in_channels):
    assert plan(name, **config).in_channels == in_channels


def test_yaml_text_and_a_mapping_work_like_the_file():
    text = (DATA / "yolov8.yaml").read_text(encoding="utf-8")
    by_file = plan("yolov8s.yaml")
    by_text = conversion("ultralytics.neck", {"yaml": text, "scale": "s"})
    by_dict = conversion("ultralytics.neck", {"yaml": yaml.safe_load(text), "scale": "s"})
    assert by_file.spec == by_text.spec == by_dict.spec and by_text.in_channels == [128, 256, 512]


def test_a_bare_name_is_looked_up_in_an_installed_ultralytics(monkeypatch, tmp_path):
    (tmp_path / "11").mkdir()
    shutil.copy(DATA / "yolo11.yaml", tmp_path / "11" / "yolo11.yaml")
    monkeypatch.setattr(importer, "_ultralytics_models_dir", lambda: tmp_path)
    monkeypatch.chdir(tmp_path)
    assert conversion("ultralytics.neck", {"yaml": "yolo11m.yaml"}).in_channels == [512, 512, 512]
    monkeypatch.setattr(importer, "_ultralytics_models_dir", lambda: None)
    assert refusal("yolo11m.yaml") == "ultralytics.neck: config: model yaml 'yolo11m.yaml' not found (nor yolo11.yaml); give a path to the file, its text, or its contents as a mapping"


def test_the_bundled_yolov8_spec_and_the_old_source_keep_their_numbers():
    """``ultralytics.yolov8-neck`` (the first converter) and the importer build the same neck:
    3,939,840 parameters, as ultralytics' layers 10-21 of yolov8s have."""
    old = from_reference("ultralytics.yolov8-neck", {"yaml": "yolov8s.yaml", "in_channels": [128, 256, 512]})
    new = from_reference("ultralytics.neck", {"yaml": str(DATA / "yolov8s.yaml")})
    assert sum(p.numel() for p in old.parameters()) == sum(p.numel() for p in new.parameters()) == 3_939_840


# --- bundled specs equal the importer's output ---------------------------------------------------


def _renamed(value: str, names: dict[str, str]) -> str:
    parts = []
    for part in value.split("."):
        if part.startswith("from_") and part[5:] in names:
            part = "from_" + names[part[5:]]
        parts.append(names.get(part, part))
    return ".".join(parts)


def graph(spec, in_channels, names=None, **params) -> list[tuple]:
    """The lowered graph: every op with its value, module path, parameters, inputs and shape,
    node names renamed by ``names``."""
    ir = Compilation(spec, in_channels, image=256, params=params).run("lower").ir
    names = names or {}
    return [(_renamed(op.name, names), _renamed(op.module, names), op.op, [_renamed(a, names) for a in op.args], op.shape) for op in ir.ops]


YOLO11_NAMES = {"L13": "P4_td", "L16": "P3_out", "L19": "P4_out", "L22": "P5_out"}


@pytest.mark.parametrize("scale", ["n", "m", "x"])
def test_the_bundled_yolo11_spec_is_the_importers_output_renamed(scale):
    p = plan(f"yolo11{scale}.yaml")
    ours = graph(p.spec, p.in_channels, YOLO11_NAMES)
    bundled = graph("yolo11", p.in_channels, scale=scale)
    assert ours == bundled
    assert [(value, type(op).__name__) for value, _, op, _, _ in ours] == [
        ("P4_td.from_C5", "Upsample"), ("P4_td.pre", "Concat"), ("P4_td", "C3k2"),
        ("P3_out.from_P4_td", "Upsample"), ("P3_out.pre", "Concat"), ("P3_out", "C3k2"),
        ("P4_out.from_P3_out", "ConvBnAct"), ("P4_out.pre", "Concat"), ("P4_out", "C3k2"),
        ("P5_out.from_P4_out", "ConvBnAct"), ("P5_out.pre", "Concat"), ("P5_out", "C3k2"),
    ]


RTDETR_NAMES = {"L12": "Y5", "L14": "S4", "L17": "Y4", "L19": "S3", "L21": "P3", "L24": "P4", "L27": "P5"}


@pytest.mark.parametrize(("overrides", "params"), [({}, {}), ({"scales": {"l": [1.0, 0.25, 1024]}}, {"hidden_dim": 64})])
def test_the_bundled_rtdetr_encoder_is_the_importers_rtdetr_l_renamed(overrides, params):
    """rtdetr-l's head rows 10-27 are the hybrid encoder at its defaults (the spec's nodes are
    written level by level, so the comparison is by value, not by position)."""
    p = plan("rtdetr-l.yaml", yaml_overrides=overrides)
    ours = {value: rest for value, *rest in graph(p.spec, p.in_channels, RTDETR_NAMES)}
    bundled = {value: rest for value, *rest in graph("rtdetr_hybrid_encoder", p.in_channels, **params)}
    assert ours == bundled
    assert sorted(ours) == sorted([
        "Y5.post0", "Y5.post1", "Y5", "S4", "Y4.from_Y5", "Y4.pre", "Y4.post0", "Y4", "S3", "P3.from_Y4", "P3.pre", "P3",
        "P4.from_P3", "P4.pre", "P4", "P5.from_P4", "P5.pre", "P5",
    ])


# --- checkpoints ---------------------------------------------------------------------------------


def _local_case(name: str) -> dict:
    return torch.load(LOCAL / f"{name}.pt", weights_only=False)


def test_a_whole_models_state_dict_loads_its_neck_part():
    """``DetectionModel.state_dict()`` holds the backbone's and Detect's keys too: they are left out."""
    case = _local_case("ultralytics_yolov10s")
    config = dict(case["config"], yaml=str(DATA / case["config"]["yaml"]))
    whole = {"model.0.conv.weight": torch.zeros(8, 3, 3, 3), "model.10.attn.qkv.conv.weight": torch.zeros(1), **case["state_dict"], "model.23.cv2.0.0.conv.weight": torch.zeros(1)}
    neck = from_reference("ultralytics.neck", config, whole).eval()
    with torch.no_grad():
        outputs = neck(case["inputs"])
    assert [tuple(o.shape) for o in outputs] == [(2, 32, 16, 12), (2, 64, 8, 6), (2, 128, 4, 3)]
    assert max((a - b).abs().max().item() for a, b in zip(outputs, case["outputs"])) <= 1e-5  # 0 on two threads, 4.8e-7 on one
    missing = {k: v for k, v in case["state_dict"].items() if k != "model.22.m.0.cv1.2.conv.conv.weight"}
    with pytest.raises(SpecError) as caught:
        from_reference("ultralytics.neck", config, missing)
    assert str(caught.value) == "ultralytics.neck: state_dict: neck key 'L22.post0.m.0.cv1.2.conv.conv.weight' gets no value from the reference"


# --- errors --------------------------------------------------------------------------------------


def _edited(tmp_path, source: str, old: str, new: str) -> str:
    text = (DATA / source).read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / source
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("source", "old", "new", "message"),
    [
        ("yolov8.yaml", "[-1, 3, C2f, [512]]", "[-1, 3, C2F, [512]]", "24:5: head[2]: layer 12 (C2F): module 'C2F' has no pyramidgraph op; did you mean 'C2f'?"),
        ("yolov8.yaml", "[[-1, 6], 1, Concat, [1]]", "[[-1, 6], 1, Concat, [2]]", "23:5: head[1]: layer 11 (Concat): concatenates along dimension 2; a neck concatenates channels (1)"),
        ("yolov8.yaml", "[-1, 1, nn.Upsample, [None, 2, nearest]]", "[-1, 1, nn.Upsample, [None, 3, nearest]]", "22:5: head[0]: layer 10 (nn.Upsample): scale factor 3 is not a power of two; "
         "pyramid levels are powers of two apart"),
        ("yolov8.yaml", "[[-1, 6], 1, Concat, [1]]", "[[-1, 30], 1, Concat, [1]]", "23:6: head[1][0]: layer 11 (Concat): 'from' [-1, 30] reads layer 30, which is not an earlier layer"),
        ("yolov8.yaml", "[-1, 3, C2f, [512]]", "[-1, 3, C2f]", "24:5: head[2]: layer 12: a row is [from, repeats, module, args], not [-1, 3, 'C2f']"),
        ("yolov8.yaml", "[-1, 1, nn.Upsample, [None, 2, nearest]]", "[-1, 1, nn.Upsample, [None, 2, area]]", "22:5: head[0]: layer 10 (nn.Upsample): upsampling mode 'area' is not supported (nearest, bilinear, bicubic)"),
        ("yolov8.yaml", "[[-1, 6], 1, Concat, [1]]", "[[-1, 4], 1, Concat, [1]]", "23:5: head[1]: layer 11 (Concat): concatenates layer 4 (level 3) with maps at level 4"),
    ],
)
def test_a_row_that_cannot_be_mapped_is_refused_where_it_is(tmp_path, source, old, new, message):
    path = _edited(tmp_path, source, old, new)
    assert refusal(path) == f"{path}:{message}"


def test_a_text_guided_row_is_refused_naming_what_it_needs():
    message = refusal(str(DATA / "yolov8-world.yaml"))
    assert "layer 12 (C2fAttn): needs text embeddings (YOLO-World's guide input), which a neck of feature maps does not take" in message
    assert message.startswith(f"{DATA / 'yolov8-world.yaml'}:")


def test_a_classifier_has_no_neck():
    assert refusal(str(DATA / "yolo11-cls.yaml")).endswith("the head has no rows before its last one: the model has no neck")


def test_facts_that_disagree_with_the_yaml_are_refused():
    assert refusal(str(DATA / "yolov8n.yaml"), input_layers=[4, 6, 8]) == "ultralytics.neck: config: input_layers [4, 6, 8] differ from the yaml's ([4, 6, 9])"
    assert refusal(str(DATA / "yolov8n.yaml"), in_channels=[64, 128]) == "ultralytics.neck: config: in_channels [64, 128] has 2 widths but the neck reads 3 backbone layers (4, 6, 9)"
    assert refusal(str(DATA / "yolov8n.yaml"), in_channels=[64, 128, 250]) == (
        "ultralytics.neck: config: in_channels [64, 128, 250] differ from the widths the yaml gives layers 4, 6, 9 ([64, 128, 256]); ultralytics builds the neck for those"
    )
    assert refusal(str(DATA / "yolov8n.yaml"), scales="n") == (
        "ultralytics.neck: config: unknown config key 'scales'; did you mean 'scale'? "
        "(ultralytics.neck takes: in_channels, input_layers, layer_indices, layer_types, output_layers, scale, yaml, yaml_overrides)"
    )
    assert refusal(str(DATA / "yolov8n.yaml"), scale="q") == "ultralytics.neck: config: scale 'q' is not among the yaml's scales (n, s, m, l, x)"


def test_the_cli_converts_a_model_yaml(tmp_path, capsys):
    code, out, err = run_cli(capsys, ["convert", "--from", "ultralytics", "--yaml", str(DATA / "yolov8n.yaml"), "--out", str(tmp_path)])
    assert code == 0, err
    written = tmp_path / "neck.yaml"
    assert out.splitlines()[0] == f"wrote {written}"
    p = plan("yolov8n.yaml")
    assert graph(str(written), p.in_channels) == graph(p.spec, p.in_channels)


def test_the_cli_refuses_a_bad_row_with_its_location(tmp_path, capsys):
    path = _edited(tmp_path, "yolov8.yaml", "[-1, 3, C2f, [512]]", "[-1, 3, C2F, [512]]")
    code, out, err = run_cli(capsys, ["convert", "--from", "ultralytics", "--yaml", path, "--out", str(tmp_path / "out")])
    assert code == 2
    assert err.splitlines()[0].startswith(f"{path}:24:5: head[2]: layer 12 (C2F): module 'C2F' has no pyramidgraph op; did you mean 'C2f'?")
    assert not (tmp_path / "out").exists()


# --- every model of ultralytics 8.4, as ultralytics itself builds it -------------------------------

MEASURED = json.loads((Path(__file__).parent / "data" / "ultralytics_necks.json").read_text(encoding="utf-8"))
"""Facts of every model yaml's neck at every scale, measured from ultralytics 8.4.190 by
data/record_ultralytics_necks.py: widths and strides of the maps it reads and returns (run on a
256x256 image), its parameter count and the digest of its state_dict's key and shape lines."""

TEXT_GUIDED_TYPES = {"C2fAttn", "ImagePoolingAttn"}


def _reference_keys(state: dict, prefixes: dict[str, str]) -> list[str]:
    """Our state_dict's keys under ultralytics' names (the key map read backwards)."""
    backwards = sorted(((ours, theirs) for theirs, ours in prefixes.items()), key=lambda pair: -len(pair[0]))
    lines = []
    for key, value in state.items():
        ours, theirs = next((o, t) for o, t in backwards if key.startswith(o + "."))
        lines.append((theirs + key[len(ours) :], list(value.shape)))
    return [f"{k} {shape}" for k, shape in sorted(lines)]


@pytest.mark.parametrize("entry", MEASURED["entries"], ids=[e["yaml"] for e in MEASURED["entries"]])
def test_every_ultralytics_model_neck_is_what_ultralytics_builds(entry):
    assert entry["yaml"] and "error" not in entry
    if TEXT_GUIDED_TYPES & set(entry["layer_types"]):
        message = refusal(str(DATA / entry["yaml"]))
        assert "needs text embeddings (YOLO-World's guide input), which a neck of feature maps does not take" in message
        return
    p = plan(entry["yaml"])
    assert p.in_channels == entry["in_channels"]  # measured through the backbone rows alone
    assert [2 ** level for level in (p.spec["inputs"][name]["level"] for name in p.spec["inputs"])] == entry["input_strides"]
    neck = Compilation(p.spec, p.in_channels, device="meta").run().neck
    assert [neck.output_shapes[name].channels for name in neck.output_names] == entry["output_channels"]
    assert neck.strides == entry["output_strides"]
    assert sum(t.numel() for t in neck.parameters()) == entry["num_params"]
    lines = _reference_keys(neck.state_dict(), p.key_map.prefixes)
    assert len(lines) == entry["state_dict_keys"]["count"]
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == entry["state_dict_keys"]["sha256_of_key_shape_lines"]


def test_the_measured_table_covers_every_detection_yaml():
    files = {e["file"] for e in MEASURED["entries"]}
    heads = {path.name for path in DATA.glob("*.yaml") if yaml.safe_load(path.read_text(encoding="utf-8"))["head"][-1][2] not in ("Classify",)}
    assert heads == files and len(MEASURED["entries"]) == 215


def _changed(change) -> dict:
    data = yaml.safe_load((DATA / "yolov8.yaml").read_text(encoding="utf-8"))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(scales={"n": [float("nan"), 0.25, 1024]}), "<yaml>: scales.n: scale 'n' is [depth, width, max_channels]: a finite depth and a positive width and max_channels, not [nan, 0.25, 1024]"),
        (lambda d: d.update(scales={"n": [100.0, 0.25, 1024]}), "<yaml>: backbone[2][1]: layer 2 (C2f): 3 repeats at depth 100.0 are 300; at most 64 are built"),
        (lambda d: d.update(scales={"n": [0.33, 1000.0, 10**9]}), "<yaml>: backbone[1]: layer 1 (Conv): 128 channels at width 1000.0 are 128000; a map is at most 65536 wide"),
        (lambda d: d["head"].__setitem__(6, [-1, 1, "Conv", [256, 3, 2**20]]), "<yaml>: head[6]: layer 16 (Conv): reaches pyramid level 23 (stride 2**23); levels go up to 16"),
    ],
)
def test_absurd_scales_and_strides_are_refused_before_anything_is_built(change, message):
    """Found by mutating the yamls' rows and scales (benchmarks/fuzz_ultralytics.py: of 2,500 mutations 288 compiled, 2,212 refused
    with a located SpecError, no other exception): a depth multiple of 100 once built billions
    of repeats, and NaN reached ``round``."""
    with pytest.raises(SpecError) as caught:
        conversion("ultralytics.neck", {"yaml": _changed(change), "scale": "n"})
    assert str(caught.value) == message
