"""The ``pyramidgraph`` command: validate, compile, list, list-ops, schema."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import BROKEN, issue_lines

import pyramidgraph
from pyramidgraph.cli import main
from pyramidgraph.ops import REGISTRIES


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- validate --------------------------------------------------------------------------------


def test_validate_ok(capsys):
    path = pyramidgraph.bundled_specs()["fpn"]
    code, out, err = _run(capsys, "validate", str(path), "bifpn")
    assert code == 0
    assert err == ""
    assert out.splitlines() == [f"{path}: ok (13 nodes, 5 outputs)", f"{pyramidgraph.bundled_specs()['bifpn']}: ok (26 nodes, 5 outputs)"]


def test_validate_failing_spec_exits_2_with_located_lines(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, err = _run(capsys, "validate", str(path))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"{path}:7:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?",
        "    7 |   P4: {from: [C4], post: [bnn]}",
        "      |                           ^~~",
        f"{path}:8:25: nodes.P3.levl: unknown key 'levl'; did you mean 'level'?",
        "    8 |   P3: {from: [C3, P4x], levl: 3}",
        "      |                         ^~~~",
    ]
    assert "Traceback" not in err


def test_validate_reports_every_spec_and_fails_if_one_fails(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN.replace("[bnn]", "[bn]").replace(", levl: 3", ""), encoding="utf-8")
    code, out, err = _run(capsys, "validate", "fpn", str(path))
    assert code == 2
    assert out.splitlines() == [f"{pyramidgraph.bundled_specs()['fpn']}: ok (13 nodes, 5 outputs)"]
    assert issue_lines(err) == [f"{path}:8:19: nodes.P3.from[1]: unknown input or node 'P4x'; did you mean 'P4'?"]


def test_validate_unreadable_bytes_exit_2(capsys, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"pyramidgraph: 1\nname: caf\xe9\n")
    code, _out, err = _run(capsys, "validate", str(path))
    assert code == 2
    assert issue_lines(err) == [f"{path}:2:10: <spec>: byte 0xe9 is not valid UTF-8; save the file as UTF-8"]


def test_validate_missing_spec_exit_2(capsys):
    code, _out, err = _run(capsys, "validate", "fpnn")
    assert code == 2
    assert err.splitlines() == ["fpnn: <spec>: no spec 'fpnn': not a file and not a bundled spec; did you mean 'fpn'?"]


def test_validate_with_options(capsys):
    code, out, err = _run(capsys, "validate", "fpn", "--in-channels", "8,16,32", "--param", "channels=8", "--image", "500x333")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{pyramidgraph.bundled_specs()['fpn']}: ok (10 nodes, 4 outputs)"]


# -- compile ---------------------------------------------------------------------------------


def test_compile_summary_for_bifpn(capsys):
    code, out, err = _run(capsys, "compile", "bifpn")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "bifpn: 3 inputs -> 5 outputs, image 512x512",
        "  in  P3              40 ch  stride 8",
        "  in  P4             112 ch  stride 16",
        "  in  P5             320 ch  stride 32",
        "  out P3_out       (1, 64, 64, 64)  stride 8",
        "  out P4_out       (1, 64, 32, 32)  stride 16",
        "  out P5_out       (1, 64, 16, 16)  stride 32",
        "  out P6_out       (1, 64, 8, 8)  stride 64",
        "  out P7_out       (1, 64, 4, 4)  stride 128",
        "  parameters: 194,361",
    ]


def test_compile_optimized_lists_what_each_pass_rewrote(capsys):
    code, out, err = _run(capsys, "compile", "yolov8", "--optimize", "inference")
    assert (code, err) == (0, "")
    # 18 conv-BN units: lowered, folded (a kernel and a bias each frozen), activations in place
    assert out.splitlines()[-1] == (
        "  optimize inference: channels_last 3, inference.lower_convs 18, inference.fold_norms 18, inference.inplace_activations 18, inference.channels_last 3, inference.freeze 36"
    )
    code, out, _ = _run(capsys, "compile", "yolov8", "--optimize", "inference", "--code")
    assert code == 0 and "self.derived_" in out and "BatchNorm" not in out and ".bn(" not in out


def test_compile_with_param_in_channels_and_image(capsys):
    code, out, err = _run(capsys, "compile", "fpn", "--in-channels", "8,16,32", "--param", "channels=8", "--image", "64x96")
    assert (code, err) == (0, "")
    # lateral 1x1: (8+16+32)*8 + 3*8; output 3x3: 3*(8*8*9 + 8)
    assert (8 + 16 + 32) * 8 + 3 * 8 + 3 * (8 * 8 * 9 + 8) == 2224
    assert out.splitlines() == [
        "fpn: 3 inputs -> 4 outputs, image 64x96",
        "  in  C2               8 ch  stride 4",
        "  in  C3              16 ch  stride 8",
        "  in  C4              32 ch  stride 16",
        "  out P2           (1, 8, 16, 24)  stride 4",
        "  out P3           (1, 8, 8, 12)  stride 8",
        "  out P4           (1, 8, 4, 6)  stride 16",
        "  out P5           (1, 8, 2, 3)  stride 32",
        "  parameters: 2,224",
    ]


def test_compile_square_image_and_repeated_params(capsys):
    code, out, _err = _run(capsys, "compile", "bifpn", "--in-channels", "8 16 32", "--param", "channels=8", "--param", "cells=1", "--image", "64")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "bifpn: 3 inputs -> 5 outputs, image 64x64"
    assert lines[4] == "  out P3_out       (1, 8, 8, 8)  stride 8"
    # one cell at width 8: 8 post nodes of (dw 3x3 + pw 1x1 + bn) and 19 fusion weights;
    # P4 and P5 projected (1x1 conv without bias + BN) twice each in the cell, P5 once more for P6
    per_cell = 8 * (9 * 8 + 8 * 8 + 2 * 8) + 19
    projections = 2 * (16 * 8 + 2 * 8) + 3 * (32 * 8 + 2 * 8)
    assert lines[-1] == f"  parameters: {per_cell + projections:,}"


def test_compile_code(capsys):
    code, out, err = _run(capsys, "compile", "fpn", "--in-channels", "8,16,32,64", "--param", "channels=8", "--code")
    assert (code, err) == (0, "")
    assert out.startswith("def forward(self, features):\n")
    assert "for " not in out
    assert "    p2 = self.P2.post0(p2_inner);  p2_inner = None" in out.splitlines()
    assert out.rstrip().endswith("return (p2, p3, p4, p5, p6)")


def test_compile_errors_exit_2(capsys):
    code, out, err = _run(capsys, "compile", "bifpn", "--param", "chanels=8")
    assert code == 2
    assert out == ""
    path = pyramidgraph.bundled_specs()["bifpn"]
    line = path.read_text().splitlines().index("params:") + 2  # the first parameter's line
    assert issue_lines(err) == [f"{path}:{line}:3: params: unknown parameter 'chanels'; did you mean 'channels'?"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--param", "channels"], "<command line>: --param: 'channels' is not NAME=VALUE"),
        (["--in-channels", "8,a"], "<command line>: --in-channels: '8,a' is not a comma-separated list of positive widths, such as 256,512,1024"),
        (["--in-channels", "64,128,x"], "<command line>: --in-channels: '64,128,x' is not a comma-separated list of positive widths, such as 256,512,1024"),
        (["--in-channels", "64,,128"], "<command line>: --in-channels: '64,,128' is not a comma-separated list of positive widths, such as 256,512,1024"),
        (["--in-channels", "64,0"], "<command line>: --in-channels: '64,0' is not a comma-separated list of positive widths, such as 256,512,1024"),
        (["--image", "1x2x3"], "<command line>: --image: '1x2x3' is not HxW or N (positive integers, such as 512x640 or 512)"),
        (["--image", "320x"], "<command line>: --image: '320x' is not HxW or N (positive integers, such as 512x640 or 512)"),
        (["--image", "x320"], "<command line>: --image: 'x320' is not HxW or N (positive integers, such as 512x640 or 512)"),
    ],
)
def test_bad_command_line_values_exit_2(capsys, argv, message):
    code, _out, err = _run(capsys, "compile", "fpn", *argv)
    assert code == 2
    assert err.splitlines() == [message]


# -- list, list-ops, schema ------------------------------------------------------------------


def test_list_shows_every_bundled_spec_with_its_doc(capsys):
    code, out, err = _run(capsys, "list")
    assert (code, err) == (0, "")
    expected = []
    for name, path in pyramidgraph.bundled_specs().items():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))["doc"]
        expected.append((name, doc))
    lines = out.splitlines()
    assert [(line.split()[0], line[len("rtdetr_hybrid_encoder") + 2 :]) for line in lines] == expected  # the longest name, two spaces, the doc
    assert len(lines) == len(pyramidgraph.bundled_specs()) >= 25
    names = [line.split()[0] for line in out.splitlines()]
    assert {"fpn", "pafpn", "bifpn"} <= set(names)
    assert names == sorted(names)
    assert "bifpn                  EfficientDet BiFPN (Tan et al. 2020), fast normalized fusion, separable convs, unshared repeated cells." in out.splitlines()


def test_list_ops_lists_every_registered_op(capsys):
    code, out, err = _run(capsys, "list-ops")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [f"{kind}:" for kind in REGISTRIES]
    listed = [line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "]
    assert listed == [name for registry in REGISTRIES.values() for name in sorted(registry.entries)]


def test_list_ops_of_one_kind_prints_whole_descriptions_aligned(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _err = _run(capsys, "list-ops", "fuse")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "fuse:"
    assert lines[1:4] == ["  add            Alias of sum.", "  asff           Alias of pixel_weights.", "  cat            Alias of concat."]
    assert "  sum            Element-wise sum (FPN, PAFPN)." in lines
    start = lines.index("  weighted       One learned weight per input (BiFPN), or per input and channel (`per: channel`).")
    assert lines[start + 1 :] == [
        "                 `norm: fast` is `relu(w) / (sum + eps)`, `softmax` is `softmax(w)` (both over the",
        "                 inputs), `none` uses the raw weights. Parameters: norm, eps, per.",
    ]
    assert all(len(line) <= 100 for line in lines)
    assert [line.split()[0] for line in lines[1:] if line[2] != " "] == sorted(REGISTRIES["fuse"].entries)


def test_list_ops_unknown_kind_exits_2(capsys):
    code, out, err = _run(capsys, "list-ops", "nope")
    assert code == 2
    assert err.splitlines() == ["<command line>: list-ops: unknown op kind 'nope'; kinds: resample, fuse, post, apply"]


def test_schema_prints_the_schema_as_json(capsys):
    code, out, err = _run(capsys, "schema")
    assert (code, err) == (0, "")
    assert json.loads(out) == pyramidgraph.spec_schema()


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: pyramidgraph" in capsys.readouterr().err


# -- docs ------------------------------------------------------------------------------------


def test_docs_lists_prints_and_locates_the_installed_guides(capsys):
    from pathlib import Path

    repo_docs = Path(__file__).resolve().parents[1] / "docs"
    code, out, _ = _run(capsys, "docs")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == sorted(p.stem for p in repo_docs.glob("*.md"))
    code, out, _ = _run(capsys, "docs", "spec")
    assert code == 0 and out == (repo_docs / "spec.md").read_text(encoding="utf-8")
    code, out, _ = _run(capsys, "docs", "cookbook", "--path")
    assert code == 0 and Path(out.strip()).read_text(encoding="utf-8") == (repo_docs / "cookbook.md").read_text(encoding="utf-8")
    code, out, err = _run(capsys, "docs", "spex")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == "<command line>: docs: no guide 'spex'; did you mean 'spec'?"
