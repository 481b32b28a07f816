"""Every recorded reference case is reproduced: same weights in, same numbers out.

Loops over every ``*.pt`` in ../shared/fixtures and in tests/interop/fixtures, so a fixture
dropped there is tested with no code change.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from pyramidgraph.interop import from_reference

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
LOCAL = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(SHARED.glob("*.pt")) + sorted(LOCAL.glob("*.pt"))
INDEX = {case["id"]: case for case in json.loads((SHARED / "index.json").read_text())}


def _returns_list(case: dict) -> bool:
    """mmdetection's FPG returns a list (``final_outs``), and so does effdet's BiFpn (a slice of
    its list of nodes); the other references return tuples."""
    return case["source"] == "effdet.BiFpn" or (case["source"] == "mmdet" and case["config"]["necks"][-1]["type"] == "FPG")


def test_the_shared_fixtures_are_there():
    assert len(list(SHARED.glob("*.pt"))) >= 12


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_reference_case_is_reproduced(path: Path):
    case = torch.load(path, weights_only=False)
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
