"""Every recorded reference case is reproduced: same weights in, same numbers out.

Loops over every ``*.pt`` in ../shared/fixtures (when it is beside the checkout), over the
cases in ../shared/fixtures/necks whose references are supported, and over
tests/interop/fixtures, so a fixture dropped there is tested with no code change. The
repository's own recordings alone cover every reference source and neck type the converters
support, so a fresh clone without ../shared still tests parity with each of them.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from recorded import LOCAL, NECKS, SHARED, SHARED_MISSING, have_shared, load_case, neck_cases_index, shared_cases, shared_index

from pyramidgraph.interop import from_reference

INDEX = shared_index() | neck_cases_index()
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
    ("asff.ASFF", "ASFF"),
    ("mmdet.rfp", "RFP"),
    ("smp.PANDecoder", "PANDecoder"),
    ("m2det.MLFPN", "MLFPN"),
    ("mmdet", "HRFPN"),
    ("mmdet", "ChannelMapper"),
    ("mmdet", "SSH"),
    ("mmdet", "DilatedEncoder"),
    ("mmdet", "CTResNetNeck"),
    ("mmdet", "FPN_CARAFE"),
    ("mmdet", "CSPNeXtPAFPN"),
    ("mmdet", "YOLOV3Neck"),
    ("mmdet", "SSDNeck"),
    ("mmdet", "NASFCOS_FPN"),
    ("mmdet", "FPN_DropBlock"),
    ("mmdet", "DyHead"),
    ("ultralytics.neck", "neck"),
    ("rtdetr.HybridEncoder", "HybridEncoder"),
    ("afpn.AFPN", "AFPN"),
    ("damoyolo.GiraffeNeckV2", "GiraffeNeckV2"),
}
# Every source of the cases in necks/: each of their cases must be supported.
LIBRARY_ISSUE_SOURCES = {"mmdet", "mmdet.rfp", "asff.ASFF", "m2det.MLFPN", "smp.PANDecoder", "ultralytics.neck", "rtdetr.HybridEncoder", "afpn.AFPN", "damoyolo.GiraffeNeckV2"}

ULTRALYTICS_YAMLS = Path(__file__).parent / "data" / "ultralytics"
"""The layer tables of ultralytics 8.4's model yamls (the suite runs without ultralytics)."""


def reference_config(case: dict) -> dict:
    """The case's config as a user without ultralytics installed passes it: an ``ultralytics.neck``
    case names its model yaml (``yolo11n.yaml``), which is given as that file's path here (the
    importer finds ``yolo11.yaml`` beside it, with scale n, as ultralytics does)."""
    if case["source"] == "ultralytics.neck":
        return dict(case["config"], yaml=str(ULTRALYTICS_YAMLS / case["config"]["yaml"]))
    return case["config"]


def _returns_list(case: dict) -> bool:
    """mmdetection's FPG returns a list (``final_outs``), and so do effdet's BiFpn (a slice of
    its list of nodes), mmdetection's RFP (its last step's list), M2Det (its ``sources``) and ASFF's recorded wrapper (its three fusions collected);
    the others return tuples."""
    return case["source"] in ("effdet.BiFpn", "mmdet.rfp", "m2det.MLFPN", "rtdetr.HybridEncoder", "asff.ASFF") or (case["source"] == "mmdet" and case["config"]["necks"][-1]["type"] == "FPG")


def _kinds(case: dict) -> set[tuple[str, str]]:
    """(source, neck type) pairs a recorded case exercises."""
    source = case["source"]
    if source in ("mmdet", "mmdet.rfp"):
        return {(source, neck["type"]) for neck in case["config"]["necks"]}
    named = {"torchvision.FeaturePyramidNetwork": "FeaturePyramidNetwork", "effdet.BiFpn": "BiFpn", "ultralytics.yolov8-neck": "yolov8"}
    return {(source, named.get(source, source.rsplit(".", 1)[-1]))}


def _neck_cases() -> list:
    """The necks/ cases whose every neck type is supported, by name (a stable list of ids: the
    names come from the library issue's table below when ../shared is missing)."""
    index = neck_cases_index()
    names = sorted(name for name, case in index.items() if _kinds(case) <= SUPPORTED)
    return [pytest.param(NECKS / f"{name}.pt", id=f"necks-{name}") for name in names]


CASES = shared_cases() + _neck_cases() + [pytest.param(p, id=p.stem) for p in sorted(LOCAL.glob("*.pt"))]


@pytest.mark.skipif(not have_shared(), reason=SHARED_MISSING)
def test_the_shared_fixtures_are_there():
    assert len(list(SHARED.glob("*.pt"))) >= 12


# ASFF's reference hard-codes its widths (9.7 M parameters, 40 MB a recording), so the
# repository keeps no recording of its own; tests/test_asff.py checks other widths against a
# direct computation instead. (M2Det, research code too, is recorded small here.)
RESEARCH_CODE = {"asff.ASFF"}


def test_the_repositorys_own_recordings_cover_every_supported_reference():
    covered = set().union(*(_kinds(torch.load(p, weights_only=False)) for p in LOCAL.glob("*.pt")))
    assert {kind for kind in SUPPORTED if kind[0] not in RESEARCH_CODE} - covered == set()


@pytest.mark.skipif(not have_shared(), reason=SHARED_MISSING)
def test_every_necks_case_of_the_library_issue_is_supported():
    cases = neck_cases_index()
    assert len(cases) >= 20
    unsupported = sorted(name for name, case in cases.items() if case["source"] in LIBRARY_ISSUE_SOURCES and not _kinds(case) <= SUPPORTED)
    assert unsupported == []


@pytest.mark.parametrize("optimize", ["none", "inference"])
@pytest.mark.parametrize("path", CASES)
def test_reference_case_is_reproduced(path: Path, optimize: str):
    """Every recorded case, by the neck as the spec lowers it and by its inference program
    (norms folded, channels-last...: ``from_reference(..., optimize="inference")``)."""
    case = load_case(path)
    neck = from_reference(case["source"], reference_config(case), case["state_dict"], optimize=optimize).eval()
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
