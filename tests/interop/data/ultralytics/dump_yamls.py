"""Re-dump every model YAML of the installed ultralytics package into this folder, without comments.

pyramidgraph's tests run without ultralytics, but the ultralytics importer reads the models' layer tables.
This script (run it with the peer venv's python, which has ultralytics) writes, for each
ultralytics/cfg/models/**/NAME.yaml, a file NAME.yaml beside itself holding the same data as
``yaml.safe_load`` of the original: the top-level keys in their order, ``scales`` one letter per line,
then ``backbone`` and ``head`` with one flow-style row per line. It checks that each output loads back
equal to the original's data and exits non-zero if one does not (or if two files share a name).

Usage: /tmp/peers-venv/bin/python tests/interop/data/ultralytics/dump_yamls.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
LAYER_LISTS = ("backbone", "head")


def flow(value: Any) -> str:
    """One value as a single-line flow-style YAML fragment (quoting whatever safe_load would misread)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def render(data: dict[str, Any], version: str, rel_path: str) -> str:
    """The file text: our 2-line header, then the keys in the original order."""
    lines = [f"# Layer table of ultralytics {version} cfg/models/{rel_path} (AGPL-3.0),",
             "# re-dumped without comments for pyramidgraph's tests."]
    for key, value in data.items():
        if key in LAYER_LISTS:
            lines.append(f"{key}:")
            lines.extend(f"  - {flow(row)}" for row in value)
        elif isinstance(value, dict):  # scales: one [depth, width, max_channels] row per letter
            lines.append(f"{key}:")
            lines.extend(f"  {flow(letter)}: {flow(row)}" for letter, row in value.items())
        else:
            lines.append(f"{flow(key)}: {flow(value)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    import ultralytics

    models = Path(ultralytics.__file__).resolve().parent / "cfg" / "models"
    sources = sorted(models.rglob("*.yaml"))
    names = [p.name for p in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        print(f"file names occur twice under {models}: {duplicates}", file=sys.stderr)
        return 1
    failures = 0
    for src in sources:
        rel_path = src.relative_to(models).as_posix()
        with open(src, encoding="utf-8") as f:
            data = yaml.safe_load(f)
        text = render(data, ultralytics.__version__, rel_path)
        if yaml.safe_load(text) != data:
            print(f"MISMATCH {rel_path}: the re-dumped text does not load back to the same data", file=sys.stderr)
            failures += 1
            continue
        out = HERE / src.name
        out.write_text(text, encoding="utf-8")
        print(f"ok {rel_path:36s} -> {os.path.relpath(out)} ({len(data['backbone'])} backbone + {len(data['head'])} head rows)")
    print(f"{len(sources) - failures} of {len(sources)} written")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
