"""pyramidgraph.loader: positions, duplicate keys, encodings, alias bombs, tags, sources."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.loader import MAX_SPEC_BYTES, MAX_YAML_NODES, load_document, parse_yaml

TEXT = """\
a: 1
b:
  c: [x, y]
  d: {e: 2}
list:
  - first
  - {from: P5, up: nearest}
"""


def _error(source, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_document(source, **kwargs)
    return info.value


def _only(error: SpecError) -> tuple:
    assert len(error.issues) == 1, error.issues
    issue = error.issues[0]
    return (issue.file, issue.line, issue.col, issue.path, issue.message)


# -- positions -------------------------------------------------------------------------------


def test_data_is_plain_python():
    doc = load_document(TEXT)
    assert doc.data == {"a": 1, "b": {"c": ["x", "y"], "d": {"e": 2}}, "list": ["first", {"from": "P5", "up": "nearest"}]}
    assert doc.file == "<string>"


def test_key_positions_are_one_based_line_and_column():
    doc = load_document(TEXT)
    assert doc.keys[("a",)] == (1, 1)
    assert doc.keys[("b",)] == (2, 1)
    assert doc.keys[("b", "c")] == (3, 3)
    assert doc.keys[("b", "d")] == (4, 3)
    assert doc.keys[("b", "d", "e")] == (4, 7)
    assert doc.keys[("list", 1, "up")] == (7, 16)


def test_value_positions_are_one_based_line_and_column():
    doc = load_document(TEXT)
    assert doc.values[()] == (1, 1)
    assert doc.values[("a",)] == (1, 4)
    assert doc.values[("b", "c")] == (3, 6)
    assert doc.values[("b", "c", 0)] == (3, 7)
    assert doc.values[("b", "c", 1)] == (3, 10)
    assert doc.values[("b", "d", "e")] == (4, 10)
    assert doc.values[("list", 0)] == (6, 5)
    assert doc.values[("list", 1, "from")] == (7, 12)


def test_where_prefers_values_or_keys_and_falls_back_to_ancestors():
    doc = load_document(TEXT)
    assert doc.where(("b", "d")) == (4, 6)
    assert doc.where(("b", "d"), key=True) == (4, 3)
    # a path made by expansion points at the nearest place that exists
    assert doc.where(("b", "c", 7, "deeper")) == (3, 6)
    assert doc.where(("nowhere",)) == (1, 1)


def test_issue_is_located_and_formatted():
    doc = load_document(TEXT, name="neck.yaml")
    issue = doc.issue(("b", "c", 1), "bad value")
    assert issue.format() == "neck.yaml:3:10: b.c[1]: bad value"
    assert doc.line_text(3) == "  c: [x, y]"
    assert doc.line_text(99) == ""


def test_bom_is_ignored():
    doc = parse_yaml("\ufeffa: 1\n".encode(), "bom.yaml")
    assert doc.data == {"a": 1}
    assert doc.keys[("a",)] == (1, 1)


# -- errors ----------------------------------------------------------------------------------


def test_duplicate_keys_are_an_error_with_both_positions():
    error = _error("a: 1\nb: 2\na: 3\n")
    assert _only(error) == ("<string>", 3, 1, "a", "duplicate key 'a' (first defined at line 1); each key may appear once")


def test_nested_duplicate_keys_are_all_reported():
    error = _error("n:\n  P4: {from: [C4], from: [C5]}\n  P4: {}\n")
    assert [issue.format() for issue in error.issues] == [
        "<string>:2:20: n.P4.from: duplicate key 'from' (first defined at line 2); each key may appear once",
        "<string>:3:3: n.P4: duplicate key 'P4' (first defined at line 2); each key may appear once",
    ]


@pytest.mark.parametrize(
    "raw, line, col, byte",
    [
        (b"a: 1\nb: \xff\n", 2, 4, "0xff"),
        (b'a: "\xc3\x28"\n', 1, 5, "0xc3"),
        (b"a: 1\nb: 2\nname: caf\xe9\n", 3, 10, "0xe9"),
    ],
)
def test_non_utf8_bytes_are_located(raw, line, col, byte, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(raw)
    error = _error(path)
    assert _only(error) == (str(path), line, col, "", f"byte {byte} is not valid UTF-8; save the file as UTF-8")


def test_billion_laughs_is_rejected_quickly():
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    start = time.perf_counter()
    error = _error("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5
    assert len(error.issues) == 1
    assert error.issues[0].message == f"spec expands to more than {MAX_YAML_NODES} YAML values (aliases counted at every use)"
    assert MAX_YAML_NODES == 100_000


def test_small_aliases_are_fine():
    doc = load_document("base: &p {kernel: 3}\nuse: *p\n")
    assert doc.data == {"base": {"kernel": 3}, "use": {"kernel": 3}}


@pytest.mark.parametrize(
    "text, line, col, path",
    [
        ("!!python/name:os.system\n", 1, 1, ""),
        ("a: !!python/object/apply:os.system [ls]\n", 1, 4, "a"),
        ("a: !!python/object/apply:os.system {args: [ls]}\n", 1, 4, "a"),
        ("a: !!python/object:collections.OrderedDict {b: 1}\n", 1, 4, "a"),
        ("a: !!python/tuple [1, 2]\n", 1, 4, "a"),
        ("a:\n  b: !!python/name:builtins.eval\n", 2, 6, "a.b"),
    ],
)
def test_python_tags_are_rejected(text, line, col, path):
    error = _error(text)
    assert len(error.issues) == 1
    issue = error.issues[0]
    assert (issue.line, issue.col, issue.path) == (line, col, path)
    assert "python" in issue.message
    assert issue.message.endswith("specs hold plain data only")


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: !!binary aGVsbG8=\n", "unsupported YAML value of type bytes; use a number, string or boolean"),
        ("a: 2001-01-01\n", "unsupported YAML value of type date; use a number, string or boolean"),
    ],
)
def test_non_data_values_are_rejected(text, message):
    assert _only(_error(text)) == ("<string>", 1, 4, "a", message)


def test_malformed_yaml_is_located():
    issue = _error("a: [1\n").issues[0]
    assert (issue.line, issue.col) == (2, 1)
    assert issue.message.startswith("malformed YAML: expected ',' or ']', but got '<stream end>'")


def test_several_documents_are_rejected():
    error = _error("a: 1\n---\nb: 2\n")
    assert _only(error) == ("<string>", 2, 1, "", "spec holds more than one YAML document; a spec is one (the second starts here)")


def test_empty_text_is_rejected():
    error = _error("\n# only a comment\n")
    assert error.issues[0].message == "spec is empty"


def test_missing_file_is_a_spec_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    error = _error(str(missing))
    assert error.issues[0].file == str(missing)
    assert error.issues[0].message.startswith("cannot read spec: ")


def test_oversized_file_is_rejected_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_SPEC_BYTES + 1))
    assert _only(_error(path)) == (str(path), 0, 0, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")


def test_non_spec_source_type_is_a_spec_error():
    assert _only(_error(42)) == ("<spec>", 0, 0, "", "a spec is a path, YAML text or a dict, not int")


def test_dict_nesting_is_bounded():
    deep: dict = {}
    node = deep
    for _ in range(70):
        node["x"] = {}
        node = node["x"]
    assert _only(_error(deep)) == ("<dict>", 0, 0, "", "spec nests deeper than 64 levels")


def test_yes_no_on_off_keys_stay_names():
    assert load_document("on: 1\nyes: 2\nno: 3\n").data == {"on": 1, "yes": 2, "no": 3}


# -- sources ---------------------------------------------------------------------------------

SPEC = """\
pyramidgraph: 1
name: tiny
inputs:
  C3: {level: 3, channels: 8}
  C4: {level: 4, channels: 16}
defaults: {channels: 8}
nodes:
  P4: {from: [C4]}
  P3: {from: [C3, P4], post: [conv3x3]}
outputs: [P3, P4]
"""


def test_text_path_pathlike_and_dict_sources_agree(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(SPEC, encoding="utf-8")
    from_text = load_document(SPEC)
    from_str_path = load_document(str(path))
    from_path = load_document(Path(path))
    from_dict = load_document(from_text.data)
    assert from_text.data == from_str_path.data == from_path.data == from_dict.data
    assert (from_text.file, from_str_path.file, from_path.file, from_dict.file) == ("<string>", str(path), str(path), "<dict>")
    assert from_path.keys[("nodes", "P3")] == (9, 3)
    assert from_dict.keys == {} and from_dict.values == {}


def test_dict_source_is_copied():
    data = {"a": [1, {"b": 2}]}
    doc = load_document(data)
    data["a"][1]["b"] = 3
    assert doc.data == {"a": [1, {"b": 2}]}


def test_dict_spec_works_end_to_end():
    spec = {
        "pyramidgraph": 1,
        "name": "tiny",
        "inputs": {"C3": {"level": 3, "channels": 8}, "C4": {"level": 4, "channels": 16}},
        "defaults": {"channels": 8},
        "nodes": {"P4": {"from": ["C4"]}, "P3": {"from": ["C3", "P4"], "post": ["conv3x3"]}},
        "outputs": ["P3", "P4"],
    }
    neck = pyramidgraph.compile(spec)
    assert neck.output_names == ["P3", "P4"]
    # P4 projects 16 -> 8 (1x1 conv with bias), P3 has a 3x3 conv 8 -> 8 with bias
    assert sum(p.numel() for p in neck.parameters()) == (16 * 8 + 8) + (8 * 8 * 9 + 8)
    p3, p4 = neck([torch.randn(2, 8, 12, 10), torch.randn(2, 16, 6, 5)])
    assert p3.shape == (2, 8, 12, 10)
    assert p4.shape == (2, 8, 6, 5)


def test_dict_spec_errors_have_no_position():
    spec = {"pyramidgraph": 1, "inputs": {"C3": {"level": 3, "channels": 8}}, "nodes": {"P3": {"from": ["C9"]}}, "outputs": ["P3"]}
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(spec)
    assert [issue.format() for issue in info.value.issues] == ["<dict>: nodes.P3.from[0]: unknown input or node 'C9'"]


def test_yaml_text_spec_errors_are_located():
    text = SPEC.replace("from: [C3, P4]", "from: [C3, P4x]")
    with pytest.raises(SpecError) as info:
        pyramidgraph.validate(text)
    assert [issue.format() for issue in info.value.issues] == ["<string>:9:19: nodes.P3.from[1]: unknown input or node 'P4x'; did you mean 'P4'?"]


@pytest.mark.parametrize("name", sorted(pyramidgraph.bundled_specs()))
def test_libyaml_and_the_python_parser_give_the_same_document_and_positions(name, monkeypatch):
    import yaml

    text = pyramidgraph.bundled_specs()[name].read_text(encoding="utf-8")
    fast = parse_yaml(text, "spec.yaml")
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    slow = parse_yaml(text, "spec.yaml")
    assert fast.data == slow.data
    assert (fast.values, fast.keys) == (slow.values, slow.keys)
