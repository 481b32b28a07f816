"""Hostile specs: an include never reads outside the folders a spec may read, and nothing of a
file it may not read reaches a message."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from cli_helpers import issue_lines

import pyramidgraph
from pyramidgraph import SpecError
from pyramidgraph.cli import main

SECRET = "root:x:0:0:secret-line-that-must-not-leak\n"

INNER = """\
pyramidgraph: 1
inputs: {A3: {level: 3}}
defaults: {channels: 8}
nodes:
  X3: {from: [A3], post: [conv3x3]}
outputs: [X3]
"""


def outer(ref: str) -> str:
    return (
        "pyramidgraph: 1\n"
        "example: {in_channels: [8], image: 32}\n"
        "inputs: {C3: {level: 3}}\n"
        f"nodes:\n  sub: {{include: '{ref}', inputs: [C3]}}\n"
        "outputs: [sub.X3]\n"
    )


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """specs/ (the user's folder), a secret file beside it, a shared folder of includable specs."""
    specs, shared = tmp_path / "specs", tmp_path / "shared"
    specs.mkdir()
    shared.mkdir()
    (tmp_path / "secret.yaml").write_text(SECRET)
    (shared / "inner.yaml").write_text(INNER)
    (specs / "inner.yaml").write_text(INNER)
    os.symlink(tmp_path / "secret.yaml", specs / "link.yaml")
    return {"root": tmp_path, "specs": specs, "shared": shared}


def refusal(ref: str, roots: str) -> str:
    return f"cannot include '{ref}': an include names a bundled spec or a file under the including spec's folder or a folder given with include_dirs (here: {roots})"


@pytest.mark.parametrize("ref", ["../secret.yaml", "link.yaml", "/etc/passwd", "/proc/self/environ", "sub/../../secret.yaml"])
def test_includes_outside_the_spec_folder_are_refused_without_quoting_the_file(layout, ref, capsys):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer(ref))
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(spec)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path, issue.message) == (5, "nodes.sub.include", refusal(ref, str(layout["specs"].resolve())))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "secret-line" not in err and "root:x" not in err
    assert issue_lines(err) == [str(issue)]


def test_includes_inside_the_spec_folder_and_named_folders_work(layout):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("inner.yaml"))
    assert pyramidgraph.compile(spec).output_names == ["X3"]
    spec.write_text(outer("../shared/inner.yaml"))
    with pytest.raises(SpecError):
        pyramidgraph.validate(spec)
    neck = pyramidgraph.compile(spec, include_dirs=[layout["root"]])
    assert sum(p.numel() for p in neck.parameters()) == 8 * 8 * 9 + 8


def test_a_text_spec_reads_only_bundled_specs_and_named_folders(layout, monkeypatch):
    monkeypatch.chdir(layout["shared"])  # the working directory is not a place specs may read
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(outer("../secret.yaml"))
    assert [i.message for i in caught.value.issues] == [refusal("../secret.yaml", "none: the spec is not a file")]
    with pytest.raises(SpecError) as caught:
        pyramidgraph.validate(outer("inner.yaml"))
    assert [i.message for i in caught.value.issues] == ["cannot include 'inner.yaml': no such file or bundled spec"]
    assert pyramidgraph.validate(outer("inner.yaml"), include_dirs=[layout["shared"]]).flat.name is not None


def test_cli_include_dir(layout, capsys):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("../shared/inner.yaml"))
    assert main(["validate", str(spec)]) == 2
    capsys.readouterr()
    assert main(["validate", str(spec), "--include-dir", str(layout["shared"].parent)]) == 0
    assert capsys.readouterr().out == f"{spec}: ok (1 nodes, 1 outputs)\n"


def test_a_neck_with_a_relative_include_unpickles_in_another_working_directory(layout, monkeypatch):
    spec = layout["specs"] / "outer.yaml"
    spec.write_text(outer("inner.yaml"))
    neck = pyramidgraph.compile(spec).eval()
    data = pickle.dumps(neck)
    monkeypatch.chdir(layout["shared"].parent.parent)
    again = pickle.loads(data).eval()
    x = [torch.randn(1, 8, 4, 4)]
    with torch.no_grad():
        assert torch.equal(neck(x)[0], again(x)[0])
