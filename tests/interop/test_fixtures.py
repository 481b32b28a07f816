"""Every recorded reference case is reproduced: same weights in, same numbers out.

Loops over every ``*.pt`` in ../shared/fixtures (when it is beside the checkout) and in
tests/interop/fixtures, so a fixture dropped there is tested with no code change. The
repository's own recordings alone cover every reference source and neck type the converters
support, so a fresh clone without ../shared still tests parity with each of them.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from recorded import LOCAL, SHARED, SHARED_MISSING, have_shared, load_case, shared_cases, shared_index

from pyramidgraph.interop import from_reference

CASES = shared_cases() + [pytest.param(p, id=p.stem) for p in sorted(LOCAL.glob("*.pt"))]
INDEX = shared_index()
SUPPORTED = {
    ("torchvision.FeaturePyramidNetwork", "FeaturePyramidNetwork"),
    ("mmdet", "FPN"),
    ("mmdet", "PAFPN"),
    ("mmdet", "NASFPN"),
    ("mmdet", "BFP"),
    ("mmdet", "FPG"),
    ("mmdet", "YOLOXPAFPN"),
    ("effdet.BiFpn", "BiFpn"),
    ("ultralytics.yolov8-neck", "yolov8"),
}


def _returns_list(case: dict) -> bool:
    """mmdetection's FPG returns a list (``final_outs``), and so does effdet's BiFpn (a slice of
    its list of nodes); the other references return tuples."""
    return case["source"] == "effdet.BiFpn" or (case["source"] == "mmdet" and case["config"]["necks"][-1]["type"] == "FPG")


def _kinds(case: dict) -> set[tuple[str, str]]:
    """(source, neck type) pairs a recorded case exercises."""
    source = case["source"]
    if source == "mmdet":
        return {(source, neck["type"]) for neck in case["config"]["necks"]}
    return {(source, {"torchvision.FeaturePyramidNetwork": "FeaturePyramidNetwork", "effdet.BiFpn": "BiFpn"}.get(source, "yolov8"))}


@pytest.mark.skipif(not have_shared(), reason=SHARED_MISSING)
def test_the_shared_fixtures_are_there():
    assert len(list(SHARED.glob("*.pt"))) >= 12


def test_the_repositorys_own_recordings_cover_every_supported_reference():
    covered = set().union(*(_kinds(torch.load(p, weights_only=False)) for p in LOCAL.glob("*.pt")))
    assert SUPPORTED - covered == set()


@pytest.mark.parametrize("path", CASES)
def test_reference_case_is_reproduced(path: Path):
    case = load_case(path)
    neck = from_reference(case["source"], case["config"], case["state_dict"]).eval()
    reference_params = INDEX[case["id"]]["num_params"] if case["id"] in INDEX else case.get("num_params")
    if reference_params is not None:
        assert sum(p.numel() for p in neck.parameters()) == reference_params
    inputs = case["inputs"]
    if case["input_names"]:
        inputs = OrderedDict(zip(case["input_names"], inputs))
    with torch.no_grad():
        outputs = neck(inputs)
    if case["output_names"]:
        assert isinstance(outputs, OrderedDict)
        assert list(outputs) == case["output_names"]
        outputs = list(outputs.values())
    else:
        assert isinstance(outputs, list if _returns_list(case) else tuple)
    assert len(outputs) == len(case["outputs"])
    for index, (ours, ref) in enumerate(zip(outputs, case["outputs"])):
        assert ours.shape == ref.shape, f"output {index}"
        error = (ours - ref).abs().max().item()
        assert error <= 1e-4 * max(1.0, ref.abs().max().item()), f"output {index}: max error {error}"
