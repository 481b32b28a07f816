"""Spec parameters: what a spec declares under ``params:`` and the check of a value against it.

A parameter is declared in one of two forms::

    params:
      channels: 256                                   # short: the default, nothing else
      norm: {default: none, choices: [none, bn, gn], doc: after every conv}
      eps: {default: 1.0e-5, type: float, min: 0, exclusive_min: true, doc: norm epsilon}

The long form is any mapping (a parameter's value is never a mapping, so the two cannot be
confused). Its ``type``, ``choices`` and range are checked against the default and against every
override (``--param``, ``compile(spec, name=value)``, an include's ``params``) after
expressions are evaluated, so a bad value is refused where the parameter is declared, with
the allowed values, instead of falling through to a later, less clear error or to a silent
"none". The declarations are also what ``pyramidgraph info SPEC --params`` and
``docs/specs.md`` list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import did_you_mean

__all__ = ["ParamDecl", "declarations", "params_table", "params_markdown", "PARAM_KEYS", "PARAM_TYPES"]

PARAM_KEYS = {
    "default": "The value unless overridden (may be an expression over other parameters).",
    "type": "int, float, bool, str, list or null, or a list of them such as [str, null] (float also takes integers).",
    "choices": "The allowed values.",
    "min": "Smallest allowed value (numbers).",
    "max": "Largest allowed value (numbers).",
    "exclusive_min": "true: the value must be greater than min, not equal to it.",
    "doc": "One line saying what the parameter does.",
}

PARAM_TYPES: dict[str, tuple[str, Any]] = {
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "list": ("a list", lambda v: isinstance(v, list)),
    "null": ("null", lambda v: v is None),
}


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)


@dataclass(frozen=True)
class ParamDecl:
    """One declared parameter; ``typed`` is False for the short form, which accepts anything."""

    name: str
    default: Any
    types: tuple[str, ...] = ()
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    exclusive_min: bool = False
    doc: str = ""

    @property
    def typed(self) -> bool:
        return bool(self.types or self.choices is not None or self.min is not None or self.max is not None)

    @property
    def derived(self) -> bool:
        """An undocumented, untyped expression over other parameters: a value the spec computes
        for itself (``top: ${base + used - 1}``), listed apart from the knobs."""
        return not self.typed and not self.doc and isinstance(self.default, str) and "$" in self.default

    def type_text(self) -> str:
        if self.choices is not None:
            return "choice"
        return " or ".join(self.types) if self.types else "any"

    def range_text(self) -> str:
        """The allowed values as a reader wants them: ``none, bn, gn`` or ``>= 1``."""
        if self.choices is not None:
            return ", ".join(_show(c) for c in self.choices)
        low = None if self.min is None else (f"> {self.min}" if self.exclusive_min else f">= {self.min}")
        high = None if self.max is None else f"<= {self.max}"
        return " and ".join(part for part in (low, high) if part)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed for this parameter, or None when it is."""
        if self.choices is not None:
            if any(value == c and type(value) is type(c) for c in self.choices):
                return None
            hint = did_you_mean(value, [c for c in self.choices if isinstance(c, str)]) if isinstance(value, str) else ""
            return f"parameter '{self.name}' cannot be {_show(value)}; allowed: {self.range_text()}{hint}"
        if self.types and not any(PARAM_TYPES[t][1](value) for t in self.types):
            wanted = " or ".join(PARAM_TYPES[t][0] for t in self.types)
            return f"parameter '{self.name}' must be {wanted}, got {_show(value)}"
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (self.min is not None or self.max is not None):
            too_low = self.min is not None and not (value > self.min if self.exclusive_min else value >= self.min)
            too_high = self.max is not None and not value <= self.max
            if too_low or too_high:  # NaN fails both comparisons
                return f"parameter '{self.name}' must be {self.range_text()}, got {_show(value)}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.default, "type": self.type_text(), "allowed": self.range_text(), "doc": self.doc}


def declarations(params: Mapping[str, Any] | None) -> dict[str, ParamDecl]:
    """The spec's ``params:`` section as declarations, in order (the schema has checked its shape)."""
    out: dict[str, ParamDecl] = {}
    for name, body in (params or {}).items():
        if not isinstance(body, Mapping):
            out[name] = ParamDecl(name, body)
            continue
        types = body.get("type", ())
        if types is None or isinstance(types, str):
            types = [types]
        choices = body.get("choices")
        out[name] = ParamDecl(
            name,
            body.get("default"),
            tuple("null" if t is None else t for t in types),
            tuple(choices) if choices is not None else None,
            body.get("min"),
            body.get("max"),
            bool(body.get("exclusive_min", False)),
            " ".join(str(body.get("doc") or "").split()),
        )
    return out


def _default_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def params_table(decls: Mapping[str, ParamDecl]) -> str:
    """The parameters as aligned text columns (name, default, type, allowed values, doc), then
    the derived values on one line each."""
    knobs = [d for d in decls.values() if not d.derived]
    rows = [("parameter", "default", "type", "allowed", "doc")]
    rows += [(d.name, _default_text(d.default), d.type_text(), d.range_text(), d.doc) for d in knobs]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    derived = [d for d in decls.values() if d.derived]
    if derived:
        lines += ["", "derived (computed from the parameters above):"] + [f"  {d.name} = {d.default}" for d in derived]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def params_markdown(decls: Mapping[str, ParamDecl]) -> list[str]:
    """The parameters as a Markdown table (for ``docs/specs.md``)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| parameter | default | type | allowed | what it does |", "|---|---|---|---|---|"]
    for d in decls.values():
        if d.derived:
            continue
        rows.append(f"| `{d.name}` | `{cell(_default_text(d.default))}` | {d.type_text()} | {cell(d.range_text())} | {cell(d.doc)} |")
    derived = [f"`{d.name} = {cell(d.default)}`" for d in decls.values() if d.derived]
    if derived:
        rows += ["", "Derived: " + ", ".join(derived) + "."]
    return rows
