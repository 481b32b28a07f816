"""The bundled spec library: ``specs/*.yaml``, found by name (``"bifpn"``) or file name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from .files import looks_like_file

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
    if "\n" in text or "/" in text or os.sep in text or looks_like_file(text):
        return None
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    return bundled_specs().get(stem)


class IncludeRefused(ValueError):
    """An ``include:`` that names a file outside the folders a spec may read."""


def include_roots(including_file: str, include_dirs: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """The folders an ``include:`` may read from: the including spec's own folder (when it is a
    file) and the folders the caller named, each with everything below it."""
    roots = []
    if including_file and not including_file.startswith("<"):
        roots.append(Path(including_file).resolve().parent)
    roots.extend(Path(d).resolve() for d in include_dirs)
    return roots


def resolve_include(ref: str, including_file: str, include_dirs: Sequence[str | os.PathLike] = ()) -> Path | None:
    """The file an ``include:`` names: a path relative to one of :func:`include_roots` (the
    spec's folder first) or absolute, that lies under one of them; else a bundled spec; None
    when neither exists.

    A spec never reads outside those folders, so a hostile spec cannot pull ``/etc/passwd`` or
    ``../../secret.yaml`` into an error message: a path that resolves (links followed) outside
    every root raises :class:`IncludeRefused`, whose message does not show the file.
    """
    roots = include_roots(including_file, include_dirs)
    outside = False
    for root in roots:
        try:
            candidate = (root / ref).resolve()
        except (OSError, RuntimeError, ValueError):  # a name too long, a link loop, a NUL byte
            continue
        if not any(candidate.is_relative_to(r) for r in roots):
            outside = True
            continue
        if _is_file(candidate):
            return candidate
    bundled = find_bundled(ref)
    if bundled is None and (outside or (not roots and ("/" in ref or os.sep in ref))):
        where = ", ".join(str(r) for r in roots) or "none: the spec is not a file"
        raise IncludeRefused(f"cannot include '{ref}': an include names a bundled spec or a file under the including spec's folder or a folder given with include_dirs (here: {where})")
    return bundled


def _is_file(path: Path) -> bool:
    """``path.is_file()``, false where asking fails: Python 3.11 passes "File name too long"
    (a name over 255 bytes) through as an OSError."""
    try:
        return path.is_file()
    except OSError:
        return False


def spec_summary(path: Path) -> str:
    """The spec's one-line ``doc`` (read without compiling)."""
    import yaml

    from .loader import fast_loader

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=fast_loader())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return ""
    doc = data.get("doc", "") if isinstance(data, dict) else ""
    return str(doc).strip().split("\n")[0]
