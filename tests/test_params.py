"""Typed spec parameters: declarations, the checks of defaults and overrides, and their listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cli_helpers import issue_lines

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.cli import main
from pyramidgraph.docs import specs_reference_markdown
from pyramidgraph.params import declarations

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
pyramidgraph: 1
name: typed
params:
  width: {default: 8, type: int, min: 1, doc: the width}
  norm: {default: none, choices: [none, bn, gn], doc: a norm}
  eps: {default: 1.0e-5, type: float, min: 0, exclusive_min: true}
  gain: 2
  mode: {default: null, type: [str, null]}
  twice: ${width * 2}
example: {in_channels: [8, 16], image: 64}
inputs:
  C3: {level: 3}
  C4: {level: 4}
defaults: {channels: $width}
nodes:
  X3: {from: [C3, C4]}
outputs: [X3]
"""


def issues(spec, **params) -> list[str]:
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec, **params)
    return [f"{i.line}:{i.col}: {i.path}: {i.message}" for i in caught.value.issues]


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "typed.yaml"
    path.write_text(SPEC)
    return path


def test_overrides_are_checked_where_the_parameter_is_declared(spec_file):
    assert issues(spec_file, norm="ln", width="abc", eps=0.0) == [
        "4:10: params.width: parameter 'width' must be an integer, got 'abc'",
        "5:9: params.norm: parameter 'norm' cannot be 'ln'; allowed: 'none', 'bn', 'gn'",
        "6:8: params.eps: parameter 'eps' must be > 0, got 0.0",
    ]
    assert issues(spec_file, norm="bnn") == ["5:9: params.norm: parameter 'norm' cannot be 'bnn'; allowed: 'none', 'bn', 'gn'; did you mean 'bn'?"]
    assert issues(spec_file, eps=float("nan"), width=0, mode=3) == [
        "4:10: params.width: parameter 'width' must be >= 1, got 0",
        "6:8: params.eps: parameter 'eps' must be > 0, got nan",
        "8:9: params.mode: parameter 'mode' must be a string or null, got 3",
    ]
    assert issues(spec_file, width=True) == ["4:10: params.width: parameter 'width' must be an integer, got True"]


def test_values_that_fit_compile_and_the_short_form_accepts_anything(spec_file):
    neck = pyramidgraph.compile(spec_file, norm="gn", width=16, eps=0.5, mode="x", gain="anything")
    assert neck.out_channels == 16
    assert neck.info.params["twice"] == 32 and neck.info.params["gain"] == "anything"


def test_a_default_that_breaks_its_own_declaration_is_located_at_the_default(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("{default: none, choices", "{default: ln, choices").replace("{default: 8, type: int", "{default: 8.5, type: int"))
    assert issues(path) == [
        "4:20: params.width.default: parameter 'width' must be an integer, got 8.5",
        "5:19: params.norm.default: parameter 'norm' cannot be 'ln'; allowed: 'none', 'bn', 'gn'",
    ]


def test_malformed_declarations_are_schema_errors(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("{default: 8, type: int, min: 1, doc: the width}", "{defualt: 8, type: integer}"))
    assert issues(path) == [
        "4:11: params.width.defualt: unknown key 'defualt'; did you mean 'default'?",
        "4:29: params.width.type: unknown value 'integer'; did you mean 'int'?",
    ]


def test_cli_param_is_refused_with_a_located_message(spec_file, capsys):
    assert main(["validate", str(spec_file), "--param", "norm=ln"]) == 2
    err = capsys.readouterr().err
    assert issue_lines(err) == [f"{spec_file}:5:9: params.norm: parameter 'norm' cannot be 'ln'; allowed: 'none', 'bn', 'gn'"]


def test_bundled_spec_refuses_a_bad_norm_from_python_and_the_cli(capsys):
    path = pyramidgraph.bundled_specs()["fpn"]
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("  norm: "))
    with pytest.raises(SpecError) as caught:
        pyramidgraph.compile("fpn", norm="ln")
    assert str(caught.value) == f"{path}:{line}:9: params.norm: parameter 'norm' cannot be 'ln'; allowed: 'none', 'bn', 'gn'"
    assert main(["compile", "fpn", "--param", "norm=ln"]) == 2
    assert issue_lines(capsys.readouterr().err) == [str(caught.value)]


def test_include_params_are_checked_against_the_included_declarations(tmp_path):
    outer = tmp_path / "outer.yaml"
    outer.write_text(
        "pyramidgraph: 1\nexample: {in_channels: [8, 16, 32, 64], image: 64}\n"
        "inputs: {C2: {level: 2}, C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}\n"
        "nodes:\n  fpn: {include: fpn, inputs: [C2, C3, C4, C5], params: {channels: 8, extra: avgpool}}\n"
        "outputs: [fpn.P2]\n"
    )
    assert issues(outer) == ["5:78: nodes.fpn.params.extra: parameter 'extra' cannot be 'avgpool'; allowed: 'none', 'maxpool', 'conv'; did you mean 'maxpool'?"]


def test_info_params_lists_each_parameter_and_the_derived_values(spec_file, capsys):
    assert main(["info", str(spec_file), "--params"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "typed: parameters (set with --param NAME=VALUE, or compile(spec, NAME=VALUE) in Python)",
        "",
        "parameter  default  type         allowed             doc",
        "width      8        int          >= 1                the width",
        "norm       none     choice       'none', 'bn', 'gn'  a norm",
        "eps        1e-05    float        > 0",
        "gain       2        any",
        "mode       null     str or null",
        "",
        "derived (computed from the parameters above):",
        "  twice = ${width * 2}",
    ]
    assert main(["info", str(spec_file), "--params", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["name"] == "typed"
    assert listed["params"][1] == {"name": "norm", "default": "none", "type": "choice", "allowed": "'none', 'bn', 'gn'", "doc": "a norm", "derived": False}
    assert [p["name"] for p in listed["params"] if p["derived"]] == ["twice"]


@pytest.mark.parametrize("name", sorted(pyramidgraph.bundled_specs()))
def test_bundled_specs_type_and_document_every_parameter_a_user_sets(name):
    text = pyramidgraph.bundled_specs()[name].read_text(encoding="utf-8")
    assert "_must_be_" not in text and "unknown scale" not in text  # no invalid names standing in for enums
    for decl in declarations(yaml.safe_load(text)["params"]).values():
        if not decl.derived and not isinstance(decl.default, (list, type(None))):
            assert decl.typed and decl.doc, f"{name}: parameter '{decl.name}' has no type or no doc"


def test_docs_specs_md_is_generated():
    assert (ROOT / "docs" / "specs.md").read_text(encoding="utf-8") == specs_reference_markdown(), "docs/specs.md is stale: run `python3 -m pyramidgraph.docs --specs docs/specs.md`"
