"""Compiled FPN vs a plain hand-written eager FPN, same weights, same process.

The eager module below is written the way torchvision writes its FeaturePyramidNetwork (lists
of lateral and output convs, a Python loop over levels, max-pool extra level). The compiled
neck's weights are copied into it, outputs are compared, then both are timed.

    python benchmarks/bench_fpn.py [--threads 1] [--runs 50] [--image 512]

Prints max |difference| and the median latency ratio (compiled / eager; below 1 is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import pyramidgraph


class EagerFPN(nn.Module):
    """A hand-written FPN: lateral 1x1, nearest top-down by size, 3x3 outputs, max-pool P6."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.inner = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.layer = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        last = self.inner[-1](xs[-1])
        results = [self.layer[-1](last)]
        for i in range(len(xs) - 2, -1, -1):
            lateral = self.inner[i](xs[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer[i](last))
        results.append(F.max_pool2d(results[-1], 1, 2, 0))
        return tuple(results)


def load_from_neck(eager: EagerFPN, neck: torch.nn.Module, first_level: int) -> None:
    """Copy weights by the spec's node names: L{l}.post0 -> inner[i], P{l}.post0 -> layer[i]."""
    state = neck.state_dict()
    for i in range(len(eager.inner)):
        level = first_level + i
        for kind in ("weight", "bias"):
            getattr(eager.inner[i], kind).data.copy_(state[f"L{level}.post0.{kind}"])
            getattr(eager.layer[i], kind).data.copy_(state[f"P{level}.post0.{kind}"])


def median_ms(fn, inputs, runs: int) -> float:
    with torch.no_grad():
        for _ in range(5):
            fn(inputs)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--image", type=int, default=512)
    parser.add_argument("--channels", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    in_channels = [256, 512, 1024, 2048]
    neck = pyramidgraph.compile("fpn", in_channels, channels=args.channels).eval()
    eager = EagerFPN(in_channels, args.channels).eval()
    load_from_neck(eager, neck, first_level=2)
    inputs = neck.example_inputs(batch=1, image=args.image)
    with torch.no_grad():
        ours, ref = neck(inputs), eager(inputs)
    error = max((a - b).abs().max().item() for a, b in zip(ours, ref))
    compiled_ms = median_ms(neck, inputs, args.runs)
    eager_ms = median_ms(eager, inputs, args.runs)
    print(f"fpn {in_channels}->{args.channels}, image {args.image}, threads {args.threads}, median of {args.runs}")
    print(f"  max |compiled - eager| = {error:.3g}")
    print(f"  compiled {compiled_ms:.2f} ms, eager {eager_ms:.2f} ms, ratio {compiled_ms / eager_ms:.3f}")


if __name__ == "__main__":
    main()
