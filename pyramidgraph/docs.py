"""Reference text generated from the op registries, for ``docs/spec.md``.

The op reference of the spec language is not written by hand: :func:`ops_reference_markdown`
renders every registered op, alias, parameter, type and default from the registries, so a new
op is documented by registering it. ``docs/spec.md`` holds the generated text between
:data:`BEGIN_MARKER` and :data:`END_MARKER`; a test keeps the two identical, and

.. code-block:: console

    python3 -m pyramidgraph.docs docs/spec.md

rewrites that section in place.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Sequence

from .ops import REGISTRIES, Op, Registry
from .ops.base import _POSITIVE
from .runtime import init_conv

__all__ = ["ops_reference_markdown", "replace_ops_section", "specs_reference_markdown", "main", "BEGIN_MARKER", "END_MARKER"]

BEGIN_MARKER = "<!-- ops:begin -->"
END_MARKER = "<!-- ops:end -->"

_INTRO = {
    "resample": (
        "Resample ops sit on one edge (one entry of a node's `from`) and bring the source to the node's level "
        "and width. They are named by `up`, `down` and `project` (in `defaults.resample`, a node's `resample`, "
        "or on the edge itself) and listed in an edge's `via`."
    ),
    "fuse": "Fuse ops merge a node's resampled inputs into one map (`fuse:` of a node or of `defaults`). A node with one input skips fusion.",
    "post": "Post ops run in order after fusion (`post:` of a node or of `defaults`, a list).",
    "apply": (
        "Apply ops take a node's inputs as they are (`apply:` of a node, instead of `fuse`): each at its own "
        "level, size and width, none resampled, so one op can read several resolutions (cross-level attention). "
        "An op with several outputs is read as `node.0`, `node.1`..."
    ),
}


def _text(doc: str | None) -> str:
    """A docstring as one Markdown line: RST ``code`` becomes `code`, table pipes are escaped."""
    text = " ".join((doc or "").split())
    return text.replace("``", "`").replace("|", "\\|")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{json.dumps(value)}`"


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _type(hint: Any) -> str:
    """A parameter type in words: ``integer or null``, ```nearest`, `bilinear` or `bicubic```."""
    parts: list[str] = []

    def walk(h: Any) -> None:
        origin = typing.get_origin(h)
        if origin is Literal:
            parts.extend(_value(a) for a in typing.get_args(h))
        elif origin in (typing.Union, types.UnionType):
            for arg in typing.get_args(h):
                walk(arg)
        elif origin in (list, tuple):
            parts.append(f"list of {_type(typing.get_args(h)[0]) if typing.get_args(h) else 'values'}")
        elif origin is dict:
            parts.append(f"mapping of names to {_type(typing.get_args(h)[1]) if typing.get_args(h) else 'values'}")
        else:
            parts.append({int: "integer", float: "number", bool: "boolean", str: "string", type(None): "null"}.get(h, getattr(h, "__name__", str(h))))

    walk(hint)
    return _join(parts)


def _parameters(cls: type[Op]) -> str:
    hints = cls.param_hints()
    lines = []
    for field in cls.param_fields():
        line = f"`{field.name}`: {_type(hints[field.name])}"
        if field.name in _POSITIVE:
            line += f" (1 to {_POSITIVE[field.name]})"
        line += ", required" if field.default is dataclasses.MISSING else f", default {_value(field.default)}"
        if field.name == cls.shorthand:
            line += " (shorthand)"
        doc = field.metadata.get("doc")
        if doc:
            line += f": {_text(doc)}"
        lines.append(line)
    return "<br>".join(lines) if lines else "none"


def _traits(cls: type[Op], kind: str) -> str:
    traits = ["stateful, no weights" if cls.stateful else "learnable" if cls.has_parameters else "parameter-free"]
    if kind == "resample" and cls.changes_channels:
        traits.append("sets the width itself: no separate projection")
    if len(cls.kinds) > 1:
        traits.append(f"also a {' and '.join(k for k in cls.kinds if k != kind)} op: one op")
    if kind == "fuse":
        traits.append("inputs projected to the node's width" if cls.projects_inputs else "inputs keep their own widths")
    return ", ".join(traits)


def _table(registry: Registry) -> list[str]:
    rows = ["| op | parameters | what it does |", "|---|---|---|"]
    canonical = sorted({cls.name: cls for cls, _ in registry.entries.values()}.items())
    for name, cls in canonical:
        rows.append(f"| `{name}` | {_parameters(cls)} | {_text(cls.__doc__)} *({_traits(cls, registry.kind)})* |")
        for alias, (alias_cls, preset) in sorted(registry.entries.items()):
            if alias_cls is cls and alias != name:
                same = ", ".join(f"`{k}: {v if isinstance(v, str) else json.dumps(v)}`" for k, v in preset.items())
                rows.append(f"| `{alias}` | see `{name}` | Alias of `{name}`" + (f" with {same}" if same else "") + ". |")
    shorthands = [f"`{{{name}: V}}` is `{{{name}: {{{cls.shorthand}: V}}}}`" for name, cls in canonical if cls.shorthand]
    if shorthands:
        rows += ["", "Shorthand: " + "; ".join(shorthands) + "."]
    return rows


def ops_reference_markdown() -> str:
    """The op reference: one section and table per kind (resample, fuse, post), generated from
    the registries. Parameters show their type, allowed range, default and shorthand."""
    out: list[str] = []
    for kind, registry in REGISTRIES.items():
        out.append(f"### {kind.capitalize()} ops")
        out.append("")
        out.append(_INTRO.get(kind, _text(registry.base.__doc__)))
        out.append("")
        out.extend(_table(registry))
        out.append("")
    init = (init_conv.__doc__ or "").split("\n\n", 1)[-1]
    out.append(f"Convolution `init` schemes: {_text(init)}")
    return "\n".join(out).rstrip("\n")


def replace_ops_section(text: str) -> str:
    """``text`` (a Markdown document with the markers) with a freshly generated op reference."""
    pattern = re.compile(re.escape(BEGIN_MARKER) + r".*?" + re.escape(END_MARKER), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {BEGIN_MARKER} ... {END_MARKER} section")
    section = f"{BEGIN_MARKER}\n{ops_reference_markdown()}\n{END_MARKER}"
    return pattern.sub(lambda _: section, text, count=1)


def specs_reference_markdown() -> str:
    """``docs/specs.md``: every bundled spec with its example backbone and a table of its
    parameters (default, type, allowed values, doc), read from the specs' declarations."""
    import yaml

    from .library import bundled_specs
    from .params import declarations, params_markdown

    out = [
        "# The bundled specs and their parameters",
        "",
        "Generated from the specs' `params:` declarations by `python3 -m pyramidgraph.docs --specs docs/specs.md`",
        "(a test keeps it current). `pyramidgraph info NAME --params` prints the same for any spec, yours too.",
        "Set a parameter with `--param NAME=VALUE` on the command line or `pyramidgraph.compile(NAME, NAME=VALUE)`;",
        "a value outside its type, allowed values or range is refused where the parameter is declared.",
    ]
    for name, path in bundled_specs().items():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        example = data.get("example") or {}
        image = example.get("image")
        out += ["", f"## `{name}`", "", _text(data.get("doc")), ""]
        out.append(f"Example: `in_channels: {json.dumps(example.get('in_channels'))}`" + (f", image {image}" if image else "") + f"; `pyramidgraph compile {name}` builds it.")
        out += [""] + params_markdown(declarations(data.get("params")))
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m pyramidgraph.docs FILE... [--specs FILE]``: regenerate the op reference in
    each FILE, and write the bundled specs' reference to the file after ``--specs``."""
    names = list(argv if argv is not None else sys.argv[1:])
    if "--specs" in names:
        index = names.index("--specs")
        Path(names[index + 1]).write_text(specs_reference_markdown(), encoding="utf-8")
        del names[index : index + 2]
    for name in names:
        path = Path(name)
        path.write_text(replace_ops_section(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
