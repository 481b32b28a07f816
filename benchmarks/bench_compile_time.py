"""Spec-to-module compile time, stage by stage (issue 12's compile-time targets).

    python benchmarks/bench_compile_time.py [--threads 2] [--runs 7] [--optimize inference]
                                            [--curve 250,500,1000,2000] [--only fpn,bifpn_d7]

Every configuration is compiled once to warm the imports and the caches a process keeps
(the schema validator, the op registries, the values the schema check found valid; that
first compile's total is the "first" column), then ``--runs`` more times; each run drives
:class:`pyramidgraph.compiler.Compilation` one stage at a time, so the table shows the median
of every stage and of the whole compile. The "draws" column is how long drawing the neck's
parameter count of uniform random numbers alone takes (``torch.Tensor.uniform_``, median
of the same runs): a freshly initialised neck cannot be built faster than its random weights
are drawn, and the column also shows how loaded the machine is at the time.

The curve compiles a generated spec (:func:`grid_spec`) of a given number of nodes: a grid of
columns over three levels, each node summing the node beside it and one resampled from the
level above or below, then a 3x3 conv and a relu. It prints milliseconds per node at every
size and the least-squares slope; growth is linear when ms/node stays flat.

``--optimize LEVEL`` passes ``optimize=LEVEL`` to the compile where the compiler takes it
(issue 12's ``compile(..., optimize=...)``); where it does not yet, the script says so and
times the plain compile.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import pyramidgraph
from pyramidgraph.compiler import STAGES, Compilation

R50 = [256, 512, 1024, 2048]

CONFIGS: dict[str, tuple[str, dict[str, Any], float]] = {
    # name: (spec, compile arguments, target in ms)
    "fpn_r50": ("fpn", {"in_channels": R50, "channels": 256}, 30.0),
    "bifpn_d0": ("bifpn", {}, float("nan")),  # the spec's example: EfficientDet-D0, no target of its own
    "bifpn_d7": ("bifpn", {"cells": 8, "channels": 384, "in_channels": [80, 224, 640], "image": 1536}, 150.0),
    "nasfpn_x7": ("nasfpn", {"in_channels": R50, "channels": 256, "stack_times": 7}, 150.0),
}

CURVE_TARGET_MS = {2000: 2000.0}


def grid_spec(nodes: int, levels: int = 3, channels: int = 8) -> dict[str, Any]:
    """A valid spec of about ``nodes`` nodes: ``levels`` inputs, then columns of one node per
    level. Column 0 maps each input to ``channels`` with a 1x1 conv; node ``(k, l)`` of a later
    column sums node ``(k-1, l)`` and node ``(k-1, l+1)`` upsampled (odd columns) or node
    ``(k-1, l-1)`` max-pooled down (even columns), then a 3x3 conv and a relu. The last
    column is the output. Small widths keep the weights cheap, so the curve measures the
    pipeline rather than random-number drawing."""
    first = 3
    columns = max(1, round(nodes / levels))
    spec_nodes: dict[str, Any] = {}
    for level in range(first, first + levels):
        spec_nodes[f"n0_{level}"] = {"from": [f"C{level}"], "post": [{"conv": {"kernel": 1}}]}
    for k in range(1, columns):
        for level in range(first, first + levels):
            other = level + 1 if k % 2 else level - 1
            sources = [f"n{k - 1}_{level}"]
            if first <= other < first + levels:
                sources.append(f"n{k - 1}_{other}")
            spec_nodes[f"n{k}_{level}"] = {"from": sources, "post": [{"conv": {"kernel": 3}}, "relu"]}
    return {
        "pyramidgraph": 1,
        "name": f"grid_{columns * levels}",
        "doc": "A generated grid of sums, resamples and convs, for compile-time scaling.",
        "example": {"in_channels": [16] * levels, "image": 256},
        "inputs": {f"C{level}": {"level": level} for level in range(first, first + levels)},
        "defaults": {
            "channels": channels,
            "fuse": "sum",
            "resample": {"project": "none", "up": {"upsample": {"mode": "nearest"}}, "down": {"maxpool": {"kernel": 2}}},
        },
        "nodes": spec_nodes,
        "outputs": [f"n{columns - 1}_{level}" for level in range(first, first + levels)],
    }


def _compilation(spec: Any, arguments: dict[str, Any], optimize: str | None) -> Compilation:
    arguments = dict(arguments)
    in_channels = arguments.pop("in_channels", None)
    image = arguments.pop("image", None)
    if optimize is None:
        return Compilation(spec, in_channels, image, arguments)
    return Compilation(spec, in_channels, image, arguments, optimize=optimize)


def optimize_supported(level: str | None) -> bool:
    """Whether this compiler takes ``optimize=`` (issue 12); the script runs either way."""
    if level is None:
        return False
    try:
        _compilation("fpn", {}, level)
    except TypeError:
        return False
    return True


def stage_times(spec: Any, arguments: dict[str, Any], optimize: str | None) -> dict[str, float]:
    """One compile, stage by stage: stage name -> milliseconds."""
    compilation = _compilation(spec, arguments, optimize)
    times: dict[str, float] = {}
    for stage in STAGES:
        start = time.perf_counter()
        compilation.run(stage.name)
        times[stage.name] = (time.perf_counter() - start) * 1e3
    times["total"] = sum(times.values())
    times["_params"] = sum(p.numel() for p in compilation.neck.parameters())
    return times


def draw_ms(count: int) -> float:
    """Milliseconds to draw ``count`` uniform numbers into a fresh tensor."""
    start = time.perf_counter()
    torch.empty(count).uniform_()
    return (time.perf_counter() - start) * 1e3


def measure(spec: Any, arguments: dict[str, Any], optimize: str | None, runs: int) -> dict[str, float]:
    """Medians over ``runs`` compiles (after one warm-up), stage by stage, plus the draws floor
    and the warm-up's own total (``first``: the first compile of this spec in the process, before
    the schema check has seen its values)."""
    first = stage_times(spec, arguments, optimize)
    samples, draws = [], []
    for _ in range(runs):
        samples.append(stage_times(spec, arguments, optimize))
        draws.append(draw_ms(int(first["_params"])))
    result = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    result["draws"] = statistics.median(draws)
    result["first"] = first["total"]
    return result


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def print_table(rows: dict[str, dict[str, float]], targets: dict[str, float]) -> None:
    stages = [stage.name for stage in STAGES]
    header = ["config", "params", *stages, "total", "first", "draws", "target", "met"]
    widths = [max(len(h), 10) if i == 0 else max(len(h), 7) for i, h in enumerate(header)]
    print(_row(header, widths))
    for name, r in rows.items():
        target = targets.get(name, float("nan"))
        met = "-" if target != target else ("yes" if r["total"] <= target else f"no +{r['total'] - target:.0f}")
        cells = [name, f"{r['_params'] / 1e6:.2f}M", *(f"{r.get(s, 0.0):.1f}" for s in stages), f"{r['total']:.1f}", f"{r['first']:.1f}", f"{r['draws']:.1f}", "-" if target != target else f"{target:.0f}", met]
        print(_row(cells, widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=7, help="compiles per configuration after one warm-up (median)")
    parser.add_argument("--curve-runs", type=int, default=3, help="compiles per size of the generated spec")
    parser.add_argument("--curve", default="250,500,1000,2000", help="node counts of the generated spec ('' for none)")
    parser.add_argument("--only", default="", help="comma-separated configurations (default: all of " + ", ".join(CONFIGS) + ")")
    parser.add_argument("--optimize", default=None, help="pass optimize=LEVEL to compile where the compiler takes it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    optimize = args.optimize
    if optimize is not None and not optimize_supported(optimize):
        print(f"# this compiler takes no optimize= yet: timing the plain compile (asked for {optimize!r})")
        optimize = None
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, pyramidgraph {pyramidgraph.__version__}, optimize={optimize}; medians of {args.runs} compiles (ms)")

    chosen = [c for c in args.only.split(",") if c] or list(CONFIGS)
    stage_times(grid_spec(9), {}, None)  # imports and the schema validator, before the first row's "first"
    rows = {name: measure(CONFIGS[name][0], CONFIGS[name][1], optimize, args.runs) for name in chosen}
    print_table(rows, {name: CONFIGS[name][2] for name in chosen})

    sizes = [int(n) for n in args.curve.split(",") if n]
    if not sizes:
        return
    print("\n# generated grid spec: nodes -> ms")
    curve: dict[str, dict[str, float]] = {}
    points = []
    for size in sizes:
        spec = grid_spec(size)
        pyramidgraph.validate(spec)  # the generator makes valid specs: this raises SpecError otherwise
        nodes = len(spec["nodes"])
        curve[f"grid_{nodes}"] = result = measure(spec, {}, optimize, args.curve_runs)
        points.append((nodes, result["total"]))
    print_table(curve, {f"grid_{n}": CURVE_TARGET_MS.get(size, float("nan")) for (n, _), size in zip(points, sizes)})
    for nodes, ms in points:
        print(f"  {nodes:5d} nodes: {ms:8.1f} ms, {ms / nodes:.3f} ms/node")
    if len(points) > 1:
        mean_n = statistics.fmean(n for n, _ in points)
        mean_t = statistics.fmean(t for _, t in points)
        slope = sum((n - mean_n) * (t - mean_t) for n, t in points) / sum((n - mean_n) ** 2 for n, _ in points)
        print(f"  least-squares slope: {slope:.3f} ms/node, intercept {mean_t - slope * mean_n:.1f} ms")


if __name__ == "__main__":
    main()
