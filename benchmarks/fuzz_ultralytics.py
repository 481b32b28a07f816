"""Mutate ultralytics model yamls and check that the importer only ever refuses with a SpecError.

    python3 benchmarks/fuzz_ultralytics.py [--cases 2500] [--seed 2]

Each case takes one of the layer tables in tests/interop/data/ultralytics, changes one to three
things (a top-level key, a row's ``from``, repeats, module or an argument, a row duplicated or
dropped) and imports the neck, then builds it on the meta device. Prints how many compiled, how
many were refused with a located SpecError, and every other exception with its traceback (there
should be none). Run it under a memory limit (``ulimit -v 6000000``) so that a runaway build
shows as a MemoryError instead of the kernel killing the process.
"""

from __future__ import annotations

import argparse
import copy
import random
import traceback
from pathlib import Path

import yaml

from pyramidgraph.compiler import Compilation
from pyramidgraph.errors import SpecError
from pyramidgraph.interop import conversion

TABLES = sorted((Path(__file__).resolve().parents[1] / "tests" / "interop" / "data" / "ultralytics").glob("*.yaml"))
VALUES = [0, -1, -2, 1, 2, 3, 7, 64, 65, 10**9, -(10**9), 0.5, 1.5, True, False, None, "None", "nc", "x", "nearest", "bilinear", [], [1], [1, 2], {}, {"a": 1},
          "1e400", "[[[[1]]]]", "nn.ReLU()", "eval('1')", "__import__('os')", 2**64, float("nan"), float("inf")]
MODULES = ["Conv", "C2f", "C3k2", "Concat", "nn.Upsample", "AIFI", "RepC3", "ADown", "SCDown", "C2fCIB", "A2C2f", "Foo", "nn.ConvTranspose2d", "Bottleneck", "SPP",
           "SPPF", "GhostConv", "C3Ghost", "RepNCSPELAN4", "ELAN1", "AConv", "DWConv", "C3", "C2", "Detect", 5, None]
TOP_VALUES = VALUES + [{"n": [0.5, 0.25, 1024]}, {"n": [0, 0, 0]}, {"n": "x"}, "nn.LeakyReLU(0.1)"]


def mutate(data: dict, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        section = rng.choice(["head", "backbone", "top"])
        if section == "top":
            data[rng.choice(["scales", "depth_multiple", "width_multiple", "activation", "nc", "head", "backbone"])] = rng.choice(TOP_VALUES)
            continue
        rows = data.get(section)
        if not isinstance(rows, list) or not rows:
            continue
        i = rng.randrange(len(rows))
        row = rows[i]
        if not isinstance(row, list):
            continue
        what = rng.random()
        if what < 0.2:
            rows[i] = rng.choice([row[:3], row + [1], "x", None, [row[0], row[1], rng.choice(MODULES), row[3] if len(row) > 3 else []]])
        elif what < 0.4 and len(row) == 4:
            row[0] = rng.choice(VALUES + [[-1, rng.randint(-5, 40)], [-1, -1], [rng.randint(0, 40)]])
        elif what < 0.55 and len(row) == 4:
            row[1] = rng.choice(VALUES)
        elif what < 0.7 and len(row) == 4:
            row[2] = rng.choice(MODULES)
        elif len(row) == 4 and isinstance(row[3], list):
            if row[3] and rng.random() < 0.7:
                row[3][rng.randrange(len(row[3]))] = rng.choice(VALUES)
            else:
                row[3].append(rng.choice(VALUES))
        elif what < 0.85:
            rows.insert(i, copy.deepcopy(row))
        else:
            del rows[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    compiled = refused = failed = 0
    for _ in range(args.cases):
        path = rng.choice(TABLES)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        mutate(data, rng)
        config = {"yaml": data}
        if rng.random() < 0.5:
            config["scale"] = rng.choice(["n", "s", "x"])
        try:
            plan = conversion("ultralytics.neck", config)
            Compilation(plan.spec, plan.in_channels, device="meta").run()
            compiled += 1
        except SpecError:
            refused += 1
        except Exception:  # what the campaign looks for: anything but a SpecError
            failed += 1
            print(f"{path.name}: not a SpecError")
            traceback.print_exc(limit=4)
    print(f"{args.cases} cases: {compiled} compiled, {refused} refused with a SpecError, {failed} other exceptions")


if __name__ == "__main__":
    main()
