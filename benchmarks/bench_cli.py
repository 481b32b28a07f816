"""Start-up time of the ``pyramidgraph`` command, and which commands import torch.

Each command runs as a fresh subprocess, ``--runs`` times, the commands interleaved (one of
each per round) so that a busy machine slows them all alike:

    python benchmarks/bench_cli.py [--runs 7] [--exe PATH] [--bytecode]

Prints, per command, the median and fastest wall time, the exit status, and whether torch was
imported (from one extra run with ``PYTHONPROFILEIMPORTTIME=1``, whose stderr lists every module
imported). The console script next to this interpreter is run directly, not through a shell or
a pyenv shim, which would add their own start-up; ``python -c pass`` is timed too, the floor.
Targets on the reference machine: ``--help`` under 0.3 s, ``list`` and ``validate`` under 1 s.

Where ``PYTHONDONTWRITEBYTECODE`` is set (as in the development containers), every run compiles
pyramidgraph's sources again, about 0.1-0.2 s that an installed package does not pay;
``--bytecode`` keeps bytecode in a temporary ``PYTHONPYCACHEPREFIX`` instead, warmed by one
untimed run of each command (the first one compiles torch's sources too: half a minute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (
    ("--help",),
    ("--version",),
    ("list",),
    ("validate", "fpn"),
    ("validate", "bifpn", "nasfpn"),
    ("compile", "fpn"),
)


def find_exe() -> list[str]:
    """The installed console script beside ``sys.executable``; else the CLI through ``python -c``."""
    script = Path(sys.executable).with_name("pyramidgraph")
    if script.is_file():
        return [str(script)]
    found = shutil.which("pyramidgraph")
    if found and "shims" not in Path(found).parts:
        return [found]
    return [sys.executable, "-c", "import sys; from pyramidgraph.cli import main; sys.exit(main())"]


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def imports_torch(argv: list[str], env: dict[str, str]) -> bool:
    """Whether running ``argv`` imports ``torch`` (read from ``-X importtime``'s report on stderr)."""
    _, done = run(argv, env=dict(env, PYTHONPROFILEIMPORTTIME="1"))
    return any(line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == "torch" for line in done.stderr.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    parser.add_argument("--exe", help="the command to time (default: the console script installed beside this Python)")
    parser.add_argument("--bytecode", action="store_true", help="cache bytecode in a temporary PYTHONPYCACHEPREFIX, as an installed package has it")
    args = parser.parse_args()
    exe = [args.exe] if args.exe else find_exe()
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench_cli_pycache_") as cache:
        if args.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = cache
            for command in COMMANDS:
                run(exe + list(command), env)
        report(exe, args.runs, env)
    return 0


def report(exe: list[str], runs: int, env: dict[str, str]) -> None:
    floor = [sys.executable, "-c", "pass"]
    times: dict[tuple[str, ...], list[float]] = {c: [] for c in COMMANDS}
    floor_times: list[float] = []
    status: dict[tuple[str, ...], int] = {}
    for _ in range(runs):
        floor_times.append(run(floor, env)[0])
        for command in COMMANDS:
            elapsed, done = run(exe + list(command), env)
            times[command].append(elapsed)
            status[command] = done.returncode
    bytecode = "cached in PYTHONPYCACHEPREFIX" if "PYTHONPYCACHEPREFIX" in env else "not written (PYTHONDONTWRITEBYTECODE)" if env.get("PYTHONDONTWRITEBYTECODE") else "as usual"
    print(f"{' '.join(exe)}  ({runs} runs each, interleaved; bytecode {bytecode})")
    print(f"{'command':<28} {'median':>8} {'min':>8} {'rc':>3}  torch")
    print(f"{'(python -c pass)':<28} {statistics.median(floor_times):>7.3f}s {min(floor_times):>7.3f}s {0:>3}  -")
    for command in COMMANDS:
        torch = "yes" if imports_torch(exe + list(command), env) else "no"
        print(f"{' '.join(command):<28} {statistics.median(times[command]):>7.3f}s {min(times[command]):>7.3f}s {status[command]:>3}  {torch}")


if __name__ == "__main__":
    sys.exit(main())
