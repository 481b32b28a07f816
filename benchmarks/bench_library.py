"""Every bundled spec at one standard configuration: parameters, MACs, compile time and latency.

    python3 benchmarks/bench_library.py [--threads 1] [--runs 20] [--image 320] [--markdown]

Each spec is compiled for its own ``example`` backbone widths (the paper's configuration) and
run on a ``--image`` square image, batch 1, in eval mode under ``torch.no_grad``, with
``torch.set_num_threads`` fixed. 320 is the default: the size M2Det and SSD are defined at, and
one at which FPT's attention over every P2 position still runs in about a second on a CPU. A
spec that cannot take that image runs at its example's image instead, and the table says so.
Latency is the median of ``--runs`` after two warm-up calls; the specs are timed in turns (one
call of each per round) so that a slow spell of the machine falls on all of them alike. MACs
are the validator's count (:func:`pyramidgraph.neck_info`). ``--markdown`` prints README's table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import pyramidgraph
from pyramidgraph.errors import SpecError


def _doc(name: str) -> str:
    return pyramidgraph.validate(name).flat.doc.split(",")[0].split(" (")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--image", type=int, default=320)
    parser.add_argument("--only", nargs="*", help="spec names (default: every bundled spec)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only or sorted(pyramidgraph.bundled_specs())
    rows = {}
    for name in names:
        image: int | tuple[int, int] = args.image
        try:
            pyramidgraph.validate(name, image=image)
        except SpecError:
            image = pyramidgraph.validate(name).flat.example.get("image") or args.image
        started = time.perf_counter()
        torch.manual_seed(0)
        neck = pyramidgraph.compile(name, image=image).eval()
        compile_ms = (time.perf_counter() - started) * 1000
        torch.manual_seed(1)
        inputs = neck.example_inputs(batch=1, image=image)
        info = pyramidgraph.neck_info(name, image=image)
        print(f"compiled {name} in {compile_ms:.0f} ms", file=sys.stderr, flush=True)
        rows[name] = {"neck": neck, "inputs": inputs, "image": image, "params": info.params, "macs": info.macs, "compile_ms": compile_ms, "times": []}
    with torch.no_grad():
        for row in rows.values():
            for _ in range(2):
                row["neck"](row["inputs"])
        for _ in range(args.runs):
            for row in rows.values():
                started = time.perf_counter()
                row["neck"](row["inputs"])
                row["times"].append(time.perf_counter() - started)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch 1, median of {args.runs}, image {args.image} unless noted")
    if args.markdown:
        print("| spec | neck | parameters | GMACs | latency (ms) | compile (ms) |")
        print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        latency = statistics.median(row["times"]) * 1000
        image = row["image"]
        at = "" if image == args.image else f" (at {image}x{image})" if isinstance(image, int) else f" (at {image[0]}x{image[1]})"
        if args.markdown:
            print(f"| `{name}` | {_doc(name)} | {row['params']:,} | {row['macs'] / 1e9:.2f} | {latency:.1f}{at} | {row['compile_ms']:.0f} |")
        else:
            print(f"{name:16s} params {row['params']:>11,}  GMACs {row['macs'] / 1e9:7.2f}  latency {latency:8.1f} ms{at}  compile {row['compile_ms']:6.0f} ms")


if __name__ == "__main__":
    main()
