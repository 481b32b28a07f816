"""What the input check at the start of every forward costs.

FPN at ResNet-50 widths (C2..C5: 256, 512, 1024, 2048 -> 256 channels) on a 640x640 image, on
CPU with a fixed number of threads. The same neck runs with the check and with it switched off
(``pyramidgraph.contract.ENABLED``, an internal switch: off, the forward only unpacks its
inputs, as it did before the check existed), interleaved run by run so that drift in the
machine's speed hits both alike; medians are compared. The check alone (the call the forward
makes, sizes already seen) is timed over many calls, since its cost is far below the noise of
one forward.

    python benchmarks/bench_input_check.py [--threads 1] [--runs 30] [--image 640]

Prints both medians, their ratio, the check's own time and that time as a share of a forward
(the figure that must stay under 1%).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pyramidgraph
from pyramidgraph import contract


def check_cost_us(check, inputs, calls: int = 20000) -> float:
    """Median over 5 rounds of the per-call time of ``check(inputs)``, in microseconds."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            check(inputs)
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30, help="forwards per variant (interleaved)")
    parser.add_argument("--image", type=int, default=640)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    neck = pyramidgraph.compile("fpn", [256, 512, 1024, 2048], channels=256).eval()
    inputs = neck.example_inputs(batch=1, image=args.image)
    check = next(node.target for node in neck.graph.nodes if node.name == "inputs")  # the contract's check_inputs

    times: dict[bool, list[float]] = {True: [], False: []}
    try:
        with torch.no_grad():
            for enabled in (True, False, True, False):  # warm-up
                contract.ENABLED = enabled
                neck(inputs)
            for run in range(2 * args.runs):
                enabled = run % 2 == 0
                contract.ENABLED = enabled
                start = time.perf_counter()
                neck(inputs)
                times[enabled].append(time.perf_counter() - start)
        contract.ENABLED = True
        on_us = check_cost_us(check, inputs)
        contract.ENABLED = False
        off_us = check_cost_us(check, inputs)
    finally:
        contract.ENABLED = True
    with_ms = statistics.median(times[True]) * 1000
    without_ms = statistics.median(times[False]) * 1000
    share = (on_us - off_us) / (without_ms * 1000)
    print(f"fpn [256, 512, 1024, 2048] -> 256, image {args.image}x{args.image}, batch 1, threads {args.threads}, median of {args.runs} interleaved forwards each")
    print(f"  forward with the check {with_ms:.2f} ms, without {without_ms:.2f} ms, ratio {with_ms / without_ms:.4f}")
    print(f"  the check itself: {on_us:.1f} us per call ({off_us:.1f} us unpacking alone), {on_us - off_us:.1f} us added = {100 * share:.4f}% of a forward")
    if share >= 0.01:
        raise SystemExit(f"the input check costs {100 * share:.2f}% of a forward, over the 1% budget")


if __name__ == "__main__":
    main()
