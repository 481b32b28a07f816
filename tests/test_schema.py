"""pyramidgraph.schema: a valid Draft 2020-12 schema, identical to the shipped file, that accepts
every bundled spec and knows every registered op."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import pyramidgraph
from pyramidgraph import SpecError, spec_schema
from pyramidgraph.loader import load_document
from pyramidgraph.ops import REGISTRIES
from pyramidgraph.schema import FORMAT_VERSION, SCHEMA_ID, check_schema

SHIPPED = Path(pyramidgraph.__file__).resolve().parent / "spec.schema.json"


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert schema["required"] == ["pyramidgraph", "inputs", "nodes", "outputs"]
    assert schema["properties"]["pyramidgraph"] == {"const": FORMAT_VERSION, "description": "Format version (1)."}


def test_shipped_schema_file_equals_the_generated_schema():
    # regenerate with: pyramidgraph schema > pyramidgraph/spec.schema.json
    assert json.loads(SHIPPED.read_text(encoding="utf-8")) == spec_schema()


def test_spec_schema_returns_a_fresh_copy():
    schema = spec_schema()
    schema["title"] = "changed"
    assert spec_schema()["title"] == "pyramidgraph neck spec"


@pytest.mark.parametrize("name", sorted(pyramidgraph.bundled_specs()))
def test_bundled_spec_validates_against_the_schema_with_jsonschema_alone(name):
    data = yaml.safe_load(pyramidgraph.bundled_specs()[name].read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft202012Validator(spec_schema()).iter_errors(data))
    assert errors == []


@pytest.mark.parametrize("name", sorted(pyramidgraph.bundled_specs()))
def test_bundled_spec_points_editors_at_the_shipped_schema(name):
    first = pyramidgraph.bundled_specs()[name].read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../pyramidgraph/spec.schema.json"


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registered_op_appears_in_the_schema_enums(kind):
    defs = spec_schema()["$defs"][f"{kind}_op"]["anyOf"]
    names_form, expr_form, op_form, one_key_form = defs
    registered = sorted(REGISTRIES[kind].entries)
    assert names_form == {"enum": registered, "title": f"{kind} op"}
    assert expr_form == {"$ref": "#/$defs/expr"}
    assert op_form["properties"]["op"]["anyOf"][0] == {"enum": registered}
    assert sorted(one_key_form["properties"]) == registered


@pytest.mark.parametrize("kind, name", [(kind, name) for kind, registry in sorted(REGISTRIES.items()) for name in sorted(registry.entries)])
def test_every_op_parameter_is_in_the_schema(kind, name):
    cls, _preset = REGISTRIES[kind].entries[name]
    forms = spec_schema()["$defs"][f"{kind}_op"]["anyOf"][3]["properties"][name]["anyOf"]
    params = forms[1]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert sorted(params["properties"]) == sorted(f.name for f in cls.param_fields())


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(spec_schema())


@pytest.mark.parametrize(
    "item",
    ["conv3x3", {"conv": 3}, {"conv": {"kernel": 1, "bias": False}}, {"op": "conv", "kernel": 5}, "$post_op", None and "x" or "bn", {"gn": 8}],
)
def test_schema_accepts_every_op_item_form(item):
    spec = {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"], "post": [item]}}, "outputs": ["P3"]}
    assert list(_validator().iter_errors(spec)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"pyramidgraph": 2, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"]}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"], "post": ["bnn"]}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"], "levl": 3}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"], "post": [{"conv": {"kernal": 3}}]}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"C3": {"level": "three"}}, "nodes": {"P3": {"from": ["C3"]}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"3C": {"level": 3}}, "nodes": {"P3": {"from": ["C3"]}}, "outputs": ["P3"]},
        {"pyramidgraph": 1, "inputs": {"C3": {"level": 3}}, "nodes": {"P3": {"from": ["C3"]}}},
    ],
)
def test_schema_rejects_wrong_specs(spec):
    assert list(_validator().iter_errors(spec)) != []


# -- the readable errors check_schema makes of jsonschema's -------------------------------------

BAD = """\
pyramidgraph: 1
inputs:
  C3: {level: 3}
nodes:
  P3: {from: [C3], post: [bnn], levl: 3}
outputs: [P3]
"""


def test_check_schema_reports_located_readable_issues():
    issues = check_schema(load_document(BAD, name="bad.yaml"))
    assert [issue.format() for issue in issues] == [
        "bad.yaml:5:27: nodes.P3.post[0]: unknown post op 'bnn'; did you mean 'bn'?",
        "bad.yaml:5:33: nodes.P3.levl: unknown key 'levl'; did you mean 'level'?",
    ]


def test_validate_raises_one_spec_error_with_every_schema_issue():
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(BAD)
    assert [(i.line, i.col, i.path) for i in info.value.issues] == [(5, 27, "nodes.P3.post[0]"), (5, 33, "nodes.P3.levl")]
    assert str(info.value).splitlines() == [issue.format() for issue in info.value.issues]


def test_wrong_format_version_message():
    issues = check_schema(load_document(BAD.replace("pyramidgraph: 1", "pyramidgraph: 2").replace("bnn", "bn").replace(", levl: 3", "")))
    assert [issue.format() for issue in issues] == ["<string>:1:15: pyramidgraph: must be 1, got 2"]
