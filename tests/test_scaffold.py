"""``pyramidgraph new``: scaffolds keep their source's text, validate, and compile to the same modules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph.cli import main
from pyramidgraph.scaffold import LOCAL_SCHEMA, TEMPLATE, scaffold_text, write_scaffold

BUNDLED = pyramidgraph.bundled_specs()
PACKAGE_SCHEMA = Path(pyramidgraph.__file__).resolve().parent / "spec.schema.json"
MODELINE = re.compile(r"^#\s+yaml-language-server\s*:")  # yaml-language-server's own test (modelineUtil.isModeline)


def _body(text: str) -> str:
    """The scaffold after its header (the header ends at the first blank line)."""
    header, _, body = text.partition("\n\n")
    assert all(line.startswith("#") for line in header.splitlines())
    return body


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("source", sorted(BUNDLED))
def test_scaffold_of_every_bundled_spec_keeps_its_text_validates_and_compiles_alike(source: str, tmp_path):
    original = BUNDLED[source].read_text(encoding="utf-8")
    text = scaffold_text(f"my_{source}", source)

    # the source's text, byte for byte, except its (relative) modeline and its name
    first, rest = original.split("\n", 1)
    assert first == "# yaml-language-server: $schema=../pyramidgraph/spec.schema.json"
    assert rest.count(f"\nname: {source}\n") == 1
    assert _body(text) == rest.replace(f"\nname: {source}\n", f"\nname: my_{source}\n")
    assert [line for line in text.splitlines() if MODELINE.match(line)] == [f"# yaml-language-server: $schema={PACKAGE_SCHEMA.as_posix()}"]
    assert text.splitlines()[0] == f"# yaml-language-server: $schema={PACKAGE_SCHEMA.as_posix()}"

    analysis = pyramidgraph.validate(text)
    assert analysis.flat.name == f"my_{source}"

    # the header's command with explicit widths and a parameter is accepted by this spec
    command = next(line for line in text.splitlines() if "--in-channels" in line).split("  #")[0].split()[1:]
    assert command[:2] == ["pyramidgraph", "compile"] and command[2] == f"my_{source}.yaml"
    path = tmp_path / command[2]
    path.write_text(text, encoding="utf-8")
    assert main(["validate", str(path), *command[3:]]) == 0
    ours, theirs = pyramidgraph.compile(text), pyramidgraph.compile(source)
    assert ours.info.name == f"my_{source}"
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    assert ours.output_names == theirs.output_names


def test_template_is_a_commented_three_level_fpn():
    text = scaffold_text("mine")
    assert _body(text) == TEMPLATE.replace("name: neck\n", "name: mine\n")
    assert sum(1 for line in TEMPLATE.splitlines() if "#" in line) >= 12  # it explains itself
    neck = pyramidgraph.compile(text)
    assert neck.info.name == "mine"
    assert [n for n, _ in neck.info.inputs] == ["C3", "C4", "C5"]
    assert neck.output_names == ["P3", "P4", "P5", "P6"]
    with torch.no_grad():
        outputs = neck(neck.example_inputs())
    assert [tuple(o.shape) for o in outputs] == [(1, 64, 32, 32), (1, 64, 16, 16), (1, 64, 8, 8), (1, 64, 4, 4)]
    assert sorted(neck.state_dict()) == sorted(
        f"{node}.{module}.{kind}" for node, module in [("P3", "from_C3.conv"), ("P4", "from_C4.conv"), ("P5", "from_C5.conv"), ("P3", "post0"), ("P4", "post0")] for kind in ("weight", "bias")
    )
    # 1x1 projections 128/256/512 -> 64 and two 3x3 convs 64 -> 64, with biases
    assert sum(p.numel() for p in neck.parameters()) == (128 + 256 + 512) * 64 + 3 * 64 + 2 * (9 * 64 * 64 + 64)


def test_header_says_how_to_use_the_spec():
    text = scaffold_text("mybifpn", "bifpn")
    header = text.partition("\n\n")[0]
    assert "made by `pyramidgraph new` from the bundled spec 'bifpn'" in header
    for command in (
        "pyramidgraph validate mybifpn.yaml",
        "pyramidgraph compile mybifpn.yaml --code",
        "pyramidgraph render mybifpn.yaml -o mybifpn.svg",
        "pyramidgraph compile mybifpn.yaml --in-channels 40,112,320 --param channels=128",
        "pyramidgraph schema > pyramidgraph.schema.json",
        'pyramidgraph.compile("mybifpn.yaml")',
        "`pyramidgraph docs spec`",
        "`pyramidgraph docs specs`",
        "`pyramidgraph docs cookbook`",
        "`pyramidgraph info SPEC --params`",
    ):
        assert command in header, command
    assert "docs/spec.md" not in text  # documentation a user of the installed package has: the docs command


def test_name_is_set_in_any_mapping_style():
    assert _body(scaffold_text("b", "pyramidgraph: 1\nname: 'a'   # old\ninputs: {C3: {level: 3}}\n")).startswith("pyramidgraph: 1\nname: b   # old\n")
    assert _body(scaffold_text("b", "pyramidgraph: 1  # v\ninputs: {C3: {level: 3}}\n")).startswith("pyramidgraph: 1\nname: b  # v\n")
    assert _body(scaffold_text("b", "{pyramidgraph: 1, inputs: {C3: {level: 3}}}\n")) == "{pyramidgraph: 1, name: b, inputs: {C3: {level: 3}}}\n"


def test_scaffold_of_a_scaffold_has_one_header(tmp_path):
    first = write_scaffold("first", "fpn", tmp_path)
    second = write_scaffold("second", first, tmp_path)
    assert _body(second.read_text()) == _body(first.read_text()).replace("name: first\n", "name: second\n")
    assert second.read_text().count("made by `pyramidgraph new`") == 1


def test_cli_new_writes_in_the_current_directory_and_refuses_to_overwrite(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "new", "mybifpn", "--from", "bifpn")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "wrote mybifpn.yaml"
    written = (tmp_path / "mybifpn.yaml").read_text()
    assert written == scaffold_text("mybifpn", "bifpn")

    (tmp_path / "mybifpn.yaml").write_text("mine")
    code, out, err = _run(capsys, "new", "mybifpn", "--from", "bifpn")
    assert (code, out) == (2, "")
    assert err == "<command line>: new: mybifpn.yaml exists; choose another name or pass --force to overwrite it\n"
    assert (tmp_path / "mybifpn.yaml").read_text() == "mine"

    code, out, err = _run(capsys, "new", "mybifpn", "--from", "bifpn", "--force")
    assert (code, err) == (0, "")
    assert (tmp_path / "mybifpn.yaml").read_text() == written


def test_cli_new_without_from_writes_the_template_to_out(capsys, tmp_path):
    code, out, _ = _run(capsys, "new", "neck2", "--out", str(tmp_path / "specs"))
    assert code == 0
    path = tmp_path / "specs" / "neck2.yaml"
    assert out.splitlines()[0] == f"wrote {path}"
    assert _body(path.read_text()) == TEMPLATE.replace("name: neck\n", "name: neck2\n")
    code, out, err = _run(capsys, "validate", str(path))
    assert (code, out, err) == (0, f"{path}: ok (4 nodes, 4 outputs)\n", "")


def test_modeline_points_at_a_local_schema_when_there_is_one(capsys, tmp_path):
    (tmp_path / LOCAL_SCHEMA).write_text("{}")
    assert _run(capsys, "new", "a", "--from", "fpn", "--out", str(tmp_path))[0] == 0
    lines = (tmp_path / "a.yaml").read_text().splitlines()
    assert lines[0] == f"# yaml-language-server: $schema={LOCAL_SCHEMA}"
    assert [line for line in lines if MODELINE.match(line)] == [lines[0]]
    assert PACKAGE_SCHEMA.is_file()


def test_cli_new_notes_a_name_that_shadows_a_bundled_spec(capsys, tmp_path):
    code, out, _ = _run(capsys, "new", "fpn", "--from", "fpn", "--out", str(tmp_path))
    assert code == 0
    assert out.splitlines()[1] == f"note: 'fpn' is also a bundled spec; name yours by its path ({tmp_path / 'fpn.yaml'})"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["new", "3x"], "'3x' is not a valid spec name: use letters, digits and _, not starting with a digit"),
        (["new", "my-neck"], "'my-neck' is not a valid spec name: use letters, digits and _, not starting with a digit"),
        (["new", "mine.yaml"], "'mine.yaml' is not a valid spec name: use letters, digits and _, not starting with a digit; give the name without the extension: 'mine' (the file is mine.yaml)"),
        (["new", "mine", "--from", "bifnp"], "--from 'bifnp' is neither a bundled spec nor a file; did you mean 'bifpn'? (bundled: " + ", ".join(BUNDLED) + ")"),
    ],
)
def test_cli_new_rejects_bad_arguments(capsys, tmp_path, argv, message):
    code, out, err = _run(capsys, *argv, "--out", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == f"<command line>: new: {message}\n"
    assert list(tmp_path.iterdir()) == []
