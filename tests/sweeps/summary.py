"""The sweeps' figures, per group: configurations tried, how the reference took them, runs.

    python3 tests/sweeps/summary.py [--markdown] [--errors [--optimize LEVEL]]

Reads ``data/*.pt`` (no reference needed): what README's table and a closing note quote. With
``--errors`` every accepted case is converted and run as the test runs it, and each group's
worst ``max|ours - ref| / max(1, max|ref|)`` is added (``--optimize inference``: by the
optimised inference program instead, a sweep of the optimiser over every configuration).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

DATA = Path(__file__).parent / "data"


def worst_error(group: str, cases: list, source: str, optimize: str) -> float:
    """The largest relative error of any output of any run the reference completed."""
    from pyramidgraph.interop import from_reference

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: `sweeps` is a package there
    from sweeps.fill import input_values
    from sweeps.test_sweeps import our_config, reference_outputs, reference_state

    worst = 0.0
    for entry in cases:
        if entry["refused"]:
            continue
        neck = from_reference(source, our_config(group, entry["config"]), reference_state(entry), optimize=optimize).eval()
        for run in entry["runs"]:
            if "outputs" not in run:
                continue
            inputs = [torch.from_numpy(input_values(entry["id"], i, shape)) for i, shape in enumerate(run["input_shapes"])]
            feed = dict(zip(run["input_names"], inputs)) if run["input_names"] else inputs
            try:
                with torch.no_grad():
                    outputs = neck(feed)
            except Exception as exc:  # noqa: BLE001 - a campaign reports every failing case, not the first
                print(f"{group} {entry['id']} image {run['image']}: {type(exc).__name__}: {exc}", file=sys.stderr)
                worst = float("inf")
                continue
            outputs = list(outputs.values()) if isinstance(outputs, dict) else [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
            for ours, ref in zip(outputs, reference_outputs(run)):
                worst = max(worst, (ours - ref).abs().max().item() / max(1.0, ref.abs().max().item()))
    return worst


def rows(errors: bool = False, optimize: str = "none") -> list[dict]:
    out = []
    for path in sorted(DATA.glob("*.pt")):
        recorded = torch.load(path, weights_only=True)
        cases = recorded["cases"]
        runs = [run for case in cases for run in case["runs"]]
        out.append(
            {
                "group": recorded["group"],
                "source": recorded["source"],
                "configs": len(cases),
                "accepted": sum(1 for c in cases if not c["refused"]),
                "refused": sum(1 for c in cases if c["refused"]),
                "runs_ok": sum(1 for r in runs if "outputs" in r),
                "runs_refused": sum(1 for r in runs if "error" in r),
                "kilobytes": path.stat().st_size // 1024,
            }
        )
        if errors:
            out[-1]["error"] = worst_error(recorded["group"], cases, recorded["source"], optimize)
    return out


def main() -> None:
    errors = "--errors" in sys.argv
    optimize = sys.argv[sys.argv.index("--optimize") + 1] if "--optimize" in sys.argv else "none"
    torch.set_num_threads(1)
    table = rows(errors, optimize)
    total = {k: sum(r[k] for r in table) for k in ("configs", "accepted", "refused", "runs_ok", "runs_refused", "kilobytes")}
    header = ["group", "source", "configs", "reference runs", "reference refuses", "images run", "images refused", "KB"]
    keys = ["group", "source", "configs", "accepted", "refused", "runs_ok", "runs_refused", "kilobytes"]
    if errors:
        header.append("worst error")
        keys.append("error")
    if "--markdown" in sys.argv:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in table:
            print("| " + " | ".join(_cell(k, r[k]) for k in keys) + " |")
        print("| **total** | | " + " | ".join(f"**{total[k]:,}**" for k in keys[2:] if k in total) + (f" | {max(r['error'] for r in table):.1e}" if errors else "") + " |")
        return
    for r in table:
        print(" ".join(f"{r[k]!s:>24}" if k in ("group", "source") else f"{r[k]:.1e}" if k == "error" else f"{r[k]:>6}" for k in keys))
    print("total", total)


def _cell(key: str, value) -> str:
    if key in ("group", "source"):
        return f"`{value}`"
    return f"{value:.1e}" if key == "error" else f"{value:,}"


if __name__ == "__main__":
    main()
