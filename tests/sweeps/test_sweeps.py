"""Every converter accepts what its reference runs and refuses what it rejects (issue 13).

Each module of this folder with a ``SOURCE`` and ``CASES`` is one sweep: configurations over
the reference constructor's arguments (strides 4..32 and 8..64, three to five inputs, every
option's values, extra levels), recorded by ``record.py`` in the peers environment into
``data/<group>.pt``. Per case:

* the reference refused the configuration (its constructor raised): the converter refuses it
  too, with a :class:`~pyramidgraph.SpecError` whose message names the case's ``reason``;
* the reference built it: the converter builds it, loads the reference's weights (drawn again
  from ``fill.py``: the recording holds none) and has the reference's parameter count; on every
  image the reference ran, ours gives the reference's outputs (names, order, type, shapes, and
  values within ``1e-4 * max(1, max|ref|)``, the fixtures' bound); on every image the reference
  could not run, ours refuses the inputs with a :class:`~pyramidgraph.NeckInputError` that
  states the size rule they break.
"""

from __future__ import annotations

import functools
import importlib
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from pyramidgraph import NeckInputError, SpecError
from pyramidgraph.interop import from_reference

from .fill import input_values, weight_values

HERE = Path(__file__).parent
DATA = HERE / "data"
GROUPS = sorted(p.stem for p in DATA.glob("*.pt"))


@functools.cache
def recording(group: str) -> dict:
    return torch.load(DATA / f"{group}.pt", weights_only=True)


@functools.cache
def generator(group: str):
    return importlib.import_module(f"sweeps.{group}")


def our_config(group: str, config: dict) -> dict:
    """The config as a user without the reference installed passes it (a group may adapt it:
    an ultralytics model yaml becomes the path of the repository's copy)."""
    adapt = getattr(generator(group), "ours", None)
    return adapt(config) if adapt else config


def reference_state(entry: dict) -> dict[str, torch.Tensor]:
    """The reference's state_dict as the recorder set it: drawn values again, kept buffers as recorded."""
    def value(key: str, shape: list, kept):
        if kept is None:
            return torch.from_numpy(weight_values(key, shape))
        return torch.tensor(kept) if isinstance(kept, int) else kept

    return OrderedDict((key, value(key, shape, kept)) for key, shape, kept in entry["state"])


def reference_outputs(run: dict) -> list[torch.Tensor]:
    """A run's outputs, stored as one flat tensor, in their shapes again."""
    sizes = [int(torch.Size(shape).numel()) for shape in run["output_shapes"]]
    return [flat.reshape(shape) for flat, shape in zip(torch.split(run["outputs"], sizes), run["output_shapes"])]


def _ids() -> list:
    params = []
    for group in GROUPS:
        for entry in recording(group)["cases"]:
            params.append(pytest.param(group, entry["id"], id=f"{group}-{entry['id']}"))
    return params


@pytest.mark.parametrize("group", GROUPS)
def test_the_recording_is_the_generators(group: str):
    """The recorded cases are the group's ``CASES`` (a changed generator must be recorded again),
    each case says what it checks, and a refusal names the reason the converter must give."""
    module, recorded = generator(group), recording(group)
    assert recorded["source"] == module.SOURCE
    assert [e["id"] for e in recorded["cases"]] == [c["id"] for c in module.CASES]
    for case, entry in zip(module.CASES, recorded["cases"]):
        assert entry["config"] == case["config"] or getattr(module, "DERIVED_CONFIG", False), case["id"]
        assert [r["image"] for r in entry["runs"]] == ([] if entry["refused"] else [list(i) for i in case["images"]]), case["id"]
        if entry["refused"]:
            assert case.get("reason"), f"{case['id']}: the reference refuses it ({entry['refused']}); the case must give the reason ours must name"
    assert len(set(c["id"] for c in module.CASES)) == len(module.CASES)


@pytest.mark.parametrize(("group", "case_id"), _ids())
def test_case(group: str, case_id: str):
    recorded = recording(group)
    entry = next(e for e in recorded["cases"] if e["id"] == case_id)
    source, config = recorded["source"], our_config(group, entry["config"])
    if entry["refused"]:
        with pytest.raises(SpecError) as refused:
            from_reference(source, config)
        assert entry["reason"] in str(refused.value), f"the reference says: {entry['refused']}"
        return
    neck = from_reference(source, config, reference_state(entry)).eval()
    assert sum(p.numel() for p in neck.parameters()) == entry["num_params"]
    for run in entry["runs"]:
        inputs = [torch.from_numpy(input_values(case_id, i, shape)) for i, shape in enumerate(run["input_shapes"])]
        feed = OrderedDict(zip(run["input_names"], inputs)) if run["input_names"] else inputs
        size = "x".join(map(str, run["image"]))
        if "error" in run:
            with pytest.raises(NeckInputError, match="expected") as refused:
                neck(feed)
            assert "input sizes fail" in str(refused.value), f"image {size}: {refused.value}"
            continue
        with torch.no_grad():
            outputs = neck(feed)
        expected_type = {"dict": OrderedDict, "list": list, "tuple": tuple, "Tensor": torch.Tensor}[run["output_type"]]
        assert isinstance(outputs, expected_type), f"image {size}: {type(outputs).__name__}"
        if run["output_names"]:
            assert list(outputs) == run["output_names"]
            outputs = list(outputs.values())
        elif isinstance(outputs, torch.Tensor):
            outputs = [outputs]
        expected = reference_outputs(run)
        assert len(outputs) == len(expected), f"image {size}"
        for index, (ours, ref) in enumerate(zip(outputs, expected)):
            assert ours.shape == ref.shape, f"image {size}, output {index}"
            error = (ours - ref).abs().max().item()
            assert error <= 1e-4 * max(1.0, ref.abs().max().item()), f"image {size}, output {index}: max error {error}"
