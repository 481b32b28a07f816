"""Every recorded reference case, reproduced: the worst error and the case count per reference.

    python3 benchmarks/parity_report.py

Runs what ``tests/interop/test_fixtures.py`` asserts (the shared cases in ../shared/fixtures and
its necks/ folder where supported, and tests/interop/fixtures) and prints README's parity
figures: for each (source, neck type), the number of cases and the worst
``max|ours - ref| / max(1, max|ref|)`` over their outputs.
"""

from __future__ import annotations

import sys
from collections import OrderedDict, defaultdict
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "interop")]

from recorded import LOCAL, NECKS, SHARED  # noqa: E402
from test_fixtures import SUPPORTED, _kinds, reference_config  # noqa: E402

from pyramidgraph.interop import from_reference  # noqa: E402


def main() -> None:
    paths = sorted(SHARED.glob("*.pt")) + sorted(NECKS.glob("*.pt")) + sorted(LOCAL.glob("*.pt"))
    worst: dict[tuple, float] = defaultdict(float)
    counts: dict[tuple, dict[str, int]] = defaultdict(lambda: {"shared": 0, "ours": 0})
    for path in paths:
        case = torch.load(path, weights_only=False)
        kinds = _kinds(case)
        if not kinds <= SUPPORTED:
            continue
        neck = from_reference(case["source"], reference_config(case), case["state_dict"]).eval()
        inputs = case["inputs"]
        if case["input_names"]:
            inputs = OrderedDict(zip(case["input_names"], inputs))
        with torch.no_grad():
            outputs = neck(inputs)
        outputs = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
        error = max(((o - r).abs().max() / max(1.0, r.abs().max().item())).item() for o, r in zip(outputs, case["outputs"]))
        key = tuple(sorted(kinds))[-1]  # a chain (FPN + BFP) counts for its last neck
        worst[key] = max(worst[key], error)
        counts[key]["ours" if path.is_relative_to(LOCAL) else "shared"] += 1
    print("| source | neck | shared cases | our recordings | worst error |")
    print("|---|---|---|---|---|")
    for key in sorted(worst):
        print(f"| {key[0]} | {key[1]} | {counts[key]['shared']} | {counts[key]['ours']} | {worst[key]:.2g} |")


if __name__ == "__main__":
    main()
