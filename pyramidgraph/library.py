"""The bundled spec library: ``specs/*.yaml``, found by name (``"bifpn"``) or file name."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_specs", "find_bundled", "spec_summary", "guide_dir"]

_PACKAGE = Path(__file__).parent


def _spec_dir() -> Path:
    """``pyramidgraph/specs``: a folder in a wheel or sdist install, a link to the repository's
    ``specs/`` in a checkout. pip always installs unpacked, so a plain path is enough (and
    ``importlib.resources`` would hand back a ``MultiplexedPath`` for this data-only package)."""
    return _PACKAGE / "specs"


def guide_dir() -> Path:
    """``pyramidgraph/guide``: the installed copy of ``docs/*.md`` (``pyramidgraph docs``)."""
    return _PACKAGE / "guide"


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
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml where PyYAML has it
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return ""
    doc = data.get("doc", "") if isinstance(data, dict) else ""
    return str(doc).strip().split("\n")[0]
