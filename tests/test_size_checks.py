"""Where sizes are checked (issue 13): at compile time only against an image the caller gave,
otherwise by the compiled neck on the sizes it receives.

* ``image=`` given: the compile-time checks use it and a mismatch is a located SpecError;
* no widths given (the caller compiles the spec's example): the example's image is the
  caller's, so it is checked as if given;
* widths given and no image (every converter and adapter): nothing is checked at an image
  nobody gave; compiling refuses only a neck that no image size can run, and the neck checks
  the sizes it is called with, refusing those it cannot line up with a NeckInputError that
  states the rule they break.

The issue's own case: mmdetection's FPG on feature maps at strides 8..64, which mmdetection
runs on a 512x512 image, used to be refused because the converter's compile checked the
bundled spec's example image (640x640, not divisible by 256 at those levels).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import issue_lines

import pyramidgraph
from pyramidgraph import NeckInputError, SpecError
from pyramidgraph.cli import main
from pyramidgraph.interop import from_reference

FPG_CASES = Path(__file__).parent / "interop" / "fixtures" / "fpg_cases.json"
WIDTHS = [4, 8, 8, 8]


def fpg_config(strides: list[int]) -> dict:
    """mmdetection's FPG (the repository's first recorded FPG configuration) at ``strides``."""
    config = json.loads(FPG_CASES.read_text())[0]["config"]
    assert config["necks"][0]["in_channels"] == WIDTHS
    return dict(config, strides=strides)


def maps(image: int, strides: list[int], widths: list[int] = WIDTHS) -> list[torch.Tensor]:
    return [torch.randn(1, c, -(-image // s), -(-image // s)) for c, s in zip(widths, strides)]


def test_fpg_at_strides_8_to_64_converts_and_runs_the_image_mmdetection_runs():
    neck = from_reference("mmdet", fpg_config([8, 16, 32, 64])).eval()
    with torch.no_grad():
        outputs = neck(maps(512, [8, 16, 32, 64]))
    assert [tuple(o.shape) for o in outputs] == [(1, 4, 64, 64), (1, 4, 32, 32), (1, 4, 16, 16), (1, 4, 8, 8), (1, 4, 4, 4)]


def test_sizes_a_converted_neck_cannot_line_up_are_refused_at_the_call_with_the_rule():
    neck = from_reference("mmdet", fpg_config([8, 16, 32, 64])).eval()
    with pytest.raises(NeckInputError) as refused:
        neck(maps(500, [8, 16, 32, 64]))
    message = str(refused.value)
    assert message.startswith("neck 'fpg': input sizes fail at nodes.path.nodes.Q3: inputs of 'path.1.Q3' do not line up: 'Q4' gives 64x64, 'P3' gives 63x63")
    assert "; expected image sides divisible by 128 (fixed-factor upsampling in " in message
    assert message.endswith("got C3 63x63, C4 32x32, C5 16x16, C6 8x8")


def test_an_image_the_caller_gives_is_checked_at_compile_time_where_the_spec_says():
    with pytest.raises(SpecError) as refused:
        pyramidgraph.compile("fpg", [4, 8, 8, 8], image=500)
    (issue,) = refused.value.issues[:1]
    assert issue.file.endswith("fpg.yaml") and issue.line > 0 and issue.path.startswith("nodes.path.nodes.")
    assert "do not line up" in issue.message and "choose an image size divisible by" in issue.message


def test_widths_of_the_callers_are_not_checked_at_the_examples_image():
    spec = """
pyramidgraph: 1
example: {in_channels: [16, 32], image: 100}
inputs:
  C4: {level: 4}
  C5: {level: 5}
defaults: {channels: 16}
nodes:
  P5: {from: [C5]}
  P4:
    from: [C4, P5]
    resample: {up: {op: upsample, by: scale}}
outputs: [P4, P5]
"""
    with pytest.raises(SpecError, match=r"inputs of 'P4' do not line up: 'C4' gives 7x7, 'P5' gives 8x8"):
        pyramidgraph.compile(spec)  # the example, image and all: 100 is not a multiple of 32
    neck = pyramidgraph.compile(spec, [16, 32])  # the caller's widths: no image was given
    assert neck.info.image is None
    assert [tuple(o.shape) for o in neck(maps(128, [16, 32], [16, 32]))] == [(1, 16, 8, 8), (1, 16, 4, 4)]
    with pytest.raises(NeckInputError, match=r"input sizes fail at nodes.P4: inputs of 'P4' do not line up: 'C4' gives 7x7, 'P5' gives 8x8; expected image sides divisible by 32"):
        neck(maps(100, [16, 32], [16, 32]))


NEVER = """
pyramidgraph: 1
inputs:
  C4: {level: 4}
  C5: {level: 5}
defaults: {channels: 16}
nodes:
  P5: {from: [C5], post: [{conv: {kernel: 3, padding: 0}}]}
  P4:
    from: [C4, P5]
    resample: {up: {op: upsample, by: scale}}
outputs: [P4, P5]
"""


def test_without_an_image_a_neck_no_size_can_run_is_still_refused():
    with pytest.raises(SpecError) as refused:
        pyramidgraph.validate(NEVER, [16, 32])
    assert [(i.line, i.col, i.path, i.message) for i in refused.value.issues] == [
        (9, 3, "nodes.P4", "inputs of 'P4' do not line up: 'C4' gives 32x32, 'P5' gives 28x28 at every image size (shown for 512x512)")
    ]


def test_the_cli_reports_a_neck_no_size_can_run_at_its_place(tmp_path: Path, capsys):
    path = tmp_path / "never.yaml"
    path.write_text(NEVER)
    assert main(["validate", str(path), "--in-channels", "16,32", "--color", "never"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert issue_lines(captured.err) == [f"{path}:9:3: nodes.P4: inputs of 'P4' do not line up: 'C4' gives 32x32, 'P5' gives 28x28 at every image size (shown for 512x512)"]


def test_a_neck_that_runs_only_some_sizes_is_compiled_and_refuses_the_others_at_the_call():
    # upsampling by scale lines the maps up only where the coarse map is exactly half the fine one
    spec = NEVER.replace(", post: [{conv: {kernel: 3, padding: 0}}]", "")
    neck = pyramidgraph.compile(spec, [16, 32])
    assert [tuple(o.shape) for o in neck(maps(64, [16, 32], [16, 32]))] == [(1, 16, 4, 4), (1, 16, 2, 2)]
    with pytest.raises(NeckInputError, match="expected image sides divisible by 32"):
        neck(maps(80, [16, 32], [16, 32]))


def test_the_adapters_take_sizes_at_strides_8_to_64_without_an_image():
    from pyramidgraph.adapters.mmdet import PyramidGraphNeck

    neck = PyramidGraphNeck("fpg", WIDTHS, first_level=3, channels=4).eval()
    with torch.no_grad():
        outputs = neck(tuple(maps(512, [8, 16, 32, 64])))
    assert [tuple(o.shape[-2:]) for o in outputs] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]


def test_compile_from_feature_info_checks_no_image():
    feature_info = [{"num_chs": c, "reduction": s} for c, s in zip(WIDTHS, [8, 16, 32, 64])]
    neck = pyramidgraph.compile("fpg", feature_info=feature_info).eval()
    assert neck.info.image is None
    with torch.no_grad():
        outputs = neck(maps(512, [8, 16, 32, 64]))
    assert len(outputs) == 5 and tuple(outputs[0].shape[-2:]) == (64, 64)


def test_sizes_too_small_for_a_group_norm_are_refused_with_the_size_that_works():
    # mmdetection's FPN with GN(4) of 4 channels: on a 1x1 map each group holds one value, which
    # torch (and so mmdetection) refuses for a batch of one; ours says so before any conv runs,
    # and which size works; a batch of two runs
    config = {"strides": [4, 8, 16, 32], "necks": [{"type": "FPN", "in_channels": [4, 4, 4, 4], "out_channels": 4, "num_outs": 5, "add_extra_convs": "on_output", "norm_cfg": {"type": "GN", "num_groups": 4}}]}
    neck = from_reference("mmdet", config).eval()
    with pytest.raises(NeckInputError) as refused:
        neck(maps(64, [4, 8, 16, 32], [4] * 4))
    assert str(refused.value) == (
        "neck 'fpn': input sizes fail at nodes.P6: group norm of 4 groups over a 1x1 map of 4 channels normalises one value per group, which torch refuses "
        "for a batch of one: the map must be larger than 1x1, or the batch larger; expected any image size (inputs of ceil or floor of image / stride); these are too small: sizes of the same residue "
        "classes work from C2 32x32 (image 128x128); got C2 16x16, C3 8x8, C4 4x4, C5 2x2"
    )
    with torch.no_grad():
        assert [tuple(o.shape[-2:]) for o in neck(maps(96, [4, 8, 16, 32], [4] * 4))] == [(24, 24), (12, 12), (6, 6), (3, 3), (2, 2)]
        two = [torch.cat([x, x]) for x in maps(64, [4, 8, 16, 32], [4] * 4)]  # a batch of two: torch runs it, and so does ours
        assert [tuple(o.shape) for o in neck(two)] == [(2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2), (2, 4, 1, 1)]


def test_convert_writes_a_spec_that_runs_fpg_at_strides_8_to_64(tmp_path: Path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps(fpg_config([8, 16, 32, 64])))
    assert main(["convert", "--from", "mmdet", "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    written = tmp_path / "out" / "neck.yaml"
    neck = pyramidgraph.compile(str(written)).eval()  # its example: the reference's widths, no image
    assert neck.info.image is None
    with torch.no_grad():
        outputs = neck(maps(512, [8, 16, 32, 64]))
    assert [tuple(o.shape) for o in outputs] == [(1, 4, 64, 64), (1, 4, 32, 32), (1, 4, 16, 16), (1, 4, 8, 8), (1, 4, 4, 4)]
    with pytest.raises(NeckInputError, match="expected image sides divisible by 128"):
        neck(maps(500, [8, 16, 32, 64]))
