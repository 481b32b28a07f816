"""docs/spec.md stays true: its examples compile and run as stated, its op reference is the
generated one, and the numbers it quotes are the package's.

Every ```yaml block whose first line that is not a comment is ``pyramidgraph: 1`` is a
complete spec. Comment lines at the start of a line, of the form ``# key: value``, say how to
compile it and what must come out:

* ``# in_channels: [16, 32]``, ``# params: {channels: 8}``, ``# image: 100`` are passed to
  ``pyramidgraph.compile`` (otherwise the spec's ``example`` is used);
* ``# outputs: (1, 8, 8, 8), (1, 8, 4, 4)`` are the output shapes for ``example_inputs()``;
* ``# names: P3, P4`` are ``neck.output_names``; ``# returns: dict`` the type returned
  (``tuple``, ``list`` or ``dict``);
* ``# state_dict: P3.post0.weight, ...`` is the full set of ``state_dict`` keys;
* ``# error: path: message`` (one line per issue) says the spec raises ``SpecError`` with
  exactly these issues, in order.

A spec that compiles must state its ``# outputs:``.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import pyramidgraph
from pyramidgraph.docs import BEGIN_MARKER, END_MARKER, ops_reference_markdown
from pyramidgraph.expr import FUNCTIONS
from pyramidgraph.ops import REGISTRIES

SPEC_MD = Path(__file__).resolve().parents[1] / "docs" / "spec.md"
DIRECTIVE = re.compile(r"^# (in_channels|params|image|outputs|names|returns|state_dict|error): ?(.*)$")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Example:
    heading: str
    line: int
    text: str
    directives: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"L{self.line}-{slug[:40]}"

    def one(self, key: str) -> str | None:
        values = self.directives.get(key)
        if values and len(values) > 1:
            raise AssertionError(f"{self.id}: '# {key}:' given {len(values)} times")
        return values[0] if values else None


def _examples() -> list[Example]:
    lines = SPEC_MD.read_text(encoding="utf-8").splitlines()
    examples: list[Example] = []
    heading = "top"
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip() or heading
        fence = FENCE.match(line)
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            body = lines[i + 1 : end]
            first = next((b for b in body if b.strip() and not b.lstrip().startswith("#")), "")
            if fence.group(1) == "yaml" and first.strip() == "pyramidgraph: 1":
                example = Example(heading, i + 2, "\n".join(body) + "\n")
                for b in body:
                    match = DIRECTIVE.match(b)
                    if match:
                        example.directives.setdefault(match.group(1), []).append(match.group(2).strip())
                examples.append(example)
            i = end + 1
            continue
        i += 1
    return examples


EXAMPLES = _examples()


def _shapes(text: str) -> list[tuple[int, ...]]:
    value = ast.literal_eval(f"[{text}]")
    return [tuple(v) for v in value]


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def test_spec_md_has_examples():
    assert len(EXAMPLES) >= 30, f"found only {len(EXAMPLES)} spec examples in {SPEC_MD}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_spec_md_example(example: Example):
    kwargs: dict[str, Any] = {}
    in_channels = example.one("in_channels")
    if in_channels is not None:
        kwargs["in_channels"] = yaml.safe_load(in_channels)
    image = example.one("image")
    if image is not None:
        kwargs["image"] = yaml.safe_load(image)
    params = example.one("params")
    if params is not None:
        kwargs["params"] = yaml.safe_load(params)

    errors = example.directives.get("error")
    if errors:
        with pytest.raises(pyramidgraph.SpecError) as info:
            pyramidgraph.compile(example.text, **kwargs)
        got = [f"{issue.path or '<spec>'}: {issue.message}" for issue in info.value.issues]
        assert got == errors
        return

    neck = pyramidgraph.compile(example.text, **kwargs)
    expected = example.one("outputs")
    assert expected is not None, f"{example.id}: a spec that compiles must state its '# outputs:'"
    with torch.no_grad():
        outputs = neck.eval()(neck.example_inputs(image=kwargs.get("image")))
    values = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    assert [tuple(v.shape) for v in values] == _shapes(expected)
    assert [tuple(v.shape[:2]) for v in values] == [(1, s.channels) for s in neck.output_shapes.values()]

    names = example.one("names")
    if names is not None:
        assert neck.output_names == _names(names)
    returns = example.one("returns")
    if returns is not None:
        assert {"tuple": tuple, "list": list, "dict": dict}[returns] in type(outputs).__mro__
    state = example.one("state_dict")
    if state is not None:
        assert sorted(neck.state_dict()) == sorted(_names(state))


def test_ops_reference_is_generated():
    text = SPEC_MD.read_text(encoding="utf-8")
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1
    section = text.split(BEGIN_MARKER, 1)[1].split(END_MARKER, 1)[0]
    assert section == "\n" + ops_reference_markdown() + "\n", "docs/spec.md is stale: run `python3 -m pyramidgraph.docs docs/spec.md`"


def test_ops_reference_lists_every_op():
    markdown = ops_reference_markdown()
    for registry in REGISTRIES.values():
        for name in registry.entries:
            assert f"| `{name}` |" in markdown


def test_limits_table_quotes_the_constants():
    """Rows of the limits table name their constant (`module.NAME`) and its value."""
    text = SPEC_MD.read_text(encoding="utf-8")
    rows = re.findall(r"^\| .*? \| ([0-9][0-9,_]*) \| `(pyramidgraph\.[\w.]+)\.([A-Z_]+)` \|$", text, re.M)
    assert len(rows) >= 6
    for value, module, name in rows:
        assert getattr(importlib.import_module(module), name) == int(value.replace(",", "").replace("_", "")), name


def test_expression_functions_are_listed():
    text = SPEC_MD.read_text(encoding="utf-8")
    match = re.search(r"^Functions: (.*)\.$", text, re.M)
    assert match, "the expressions section lists its functions on a line 'Functions: `a`, `b`.'"
    assert re.findall(r"`(\w+)\(", match.group(1)) == sorted(FUNCTIONS)


def test_bundled_specs_have_an_example():
    for name, path in pyramidgraph.bundled_specs().items():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "in_channels" in data.get("example", {}), name
