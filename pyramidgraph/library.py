"""The bundled spec library: ``specs/*.yaml``, found by name (``"bifpn"``) or file name."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = ["bundled_specs", "find_bundled", "spec_summary"]


def _spec_dir() -> Path:
    try:
        installed = Path(str(resources.files("pyramidgraph.specs")))
        if installed.is_dir() and any(installed.glob("*.yaml")):
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "specs"


def bundled_specs() -> dict[str, Path]:
    """Bundled spec names and their files, sorted by name."""
    directory = _spec_dir()
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


def find_bundled(name: str | os.PathLike) -> Path | None:
    """The bundled spec called ``name`` (``bifpn`` or ``bifpn.yaml``), unless a file of that name exists."""
    text = str(name)
    if "\n" in text or Path(text).exists() or "/" in text or os.sep in text:
        return None
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    return bundled_specs().get(stem)


def resolve_include(ref: str, including_file: str) -> Path | None:
    """The file an ``include:`` names: a path relative to the including spec, or a bundled spec."""
    candidates = []
    if including_file and not including_file.startswith("<"):
        candidates.append(Path(including_file).resolve().parent / ref)
    candidates.append(Path(ref))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return find_bundled(ref)


def spec_summary(path: Path) -> str:
    """The spec's one-line ``doc`` (read without compiling)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return ""
    doc = data.get("doc", "") if isinstance(data, dict) else ""
    return str(doc).strip().split("\n")[0]
