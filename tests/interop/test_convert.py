"""`pyramidgraph convert`: the user leaves with a spec they can edit and a checkpoint that loads.

For recorded reference cases, the written ``neck.yaml`` compiled with no arguments and loaded
with the written ``neck.pt`` reproduces the reference's outputs (in the reference's order). The
cases are the repository's own recordings (one per reference source, a chained FPN + BFP
among them), so the round trip is tested in a fresh clone too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from recorded import LOCAL

import pyramidgraph
from pyramidgraph.cli import main


def _convert(case: dict, tmp_path: Path, capsys) -> Path:
    (tmp_path / "cfg.json").write_text(json.dumps(case["config"]))
    torch.save(case["state_dict"], tmp_path / "sd.pt")
    out = tmp_path / "out"
    code = main(["convert", "--from", case["source"], "--config", str(tmp_path / "cfg.json"), "--weights", str(tmp_path / "sd.pt"), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert f"wrote {out / 'neck.yaml'}" in printed.out
    assert f"wrote {out / 'neck.pt'}" in printed.out
    return out


@pytest.mark.parametrize("case_id", ["tv_fpn_p6p7_from_p5", "mmdet_fpn_bfp_conv_r1", "effdet_tf_odd_image", "ultralytics_yolov8_relu_tiny"])
def test_converted_spec_and_checkpoint_reproduce_the_reference(case_id, tmp_path, capsys):
    case = torch.load(LOCAL / f"{case_id}.pt", weights_only=False)
    out = _convert(case, tmp_path, capsys)
    text = (out / "neck.yaml").read_text()
    assert text.startswith(f"# Converted by `pyramidgraph convert --from {case['source']}`.")
    neck = pyramidgraph.compile(out / "neck.yaml").eval()
    neck.load_state_dict(torch.load(out / "neck.pt"), strict=True)
    assert neck.in_channels == [x.shape[1] for x in case["inputs"]]
    with torch.no_grad():
        outputs = neck(list(case["inputs"]))
    outputs = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    assert len(outputs) == len(case["outputs"])
    for ours, ref in zip(outputs, case["outputs"]):
        assert ours.shape == ref.shape
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())


def test_convert_without_weights_writes_only_the_spec(tmp_path, capsys):
    case = torch.load(LOCAL / "mmdet_fpn_end_level.pt", weights_only=False)
    (tmp_path / "cfg.json").write_text(json.dumps(case["config"]))
    assert main(["convert", "--from", "mmdet", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["neck.yaml"]
    neck = pyramidgraph.compile(tmp_path / "out" / "neck.yaml")
    assert sum(p.numel() for p in neck.parameters()) == case["num_params"]


def test_convert_errors_exit_2_without_traceback(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    code = main(["convert", "--from", "mmdet", "--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"{tmp_path / 'bad.json'}: config: cannot read the config as JSON:")
    assert "Traceback" not in err
    (tmp_path / "cfg.json").write_text("{}")
    code = main(["convert", "--from", "torchvision.FPN", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[0] == "torchvision.FPN: config: unknown reference 'torchvision.FPN'; did you mean 'torchvision.FeaturePyramidNetwork'?"
    code = main(["convert", "--from", "detectron2.FPN", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    known = (
        "afpn.AFPN, asff.ASFF, damoyolo.GiraffeNeckV2, effdet.BiFpn, m2det.MLFPN, mmdet, mmdet.rfp, rtdetr.HybridEncoder, smp.PANDecoder, "
        "torchvision.FeaturePyramidNetwork, ultralytics.neck, ultralytics.yolov8-neck"
    )
    assert err.splitlines()[0] == f"detectron2.FPN: config: unknown reference 'detectron2.FPN'; known: {known}"
