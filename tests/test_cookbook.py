"""docs/cookbook.md works as written: each recipe runs, snippet by snippet, in an empty directory.

A recipe is a ``## `` section. Its fenced blocks run in order, in a fresh directory, sharing one
Python namespace (as a reader's session would):

* ```yaml whose first line is ``# NAME.yaml``: written to ``NAME.yaml``;
* ```diff with ``--- FILE`` / ``+++ FILE``: applied to FILE (the ``-`` and context lines must
  occur exactly once);
* ```console: each ``$ pyramidgraph ...`` line runs the CLI in-process (``> FILE`` redirects
  its output); the lines under it are its expected output, ``...`` matching any lines in
  between; a command with no lines under it must just succeed;
* ```python: executed; one whose first line is ``# NAME.py`` is written to ``NAME.py`` instead (a
  module the recipe imports, or the CLI loads with ``--plugin``). The recipe's directory is on
  ``sys.path`` while it runs, and the ops its modules register are unregistered afterwards.

torchvision is not a dependency: when it is missing, recipe 4 runs against a stand-in that
builds the same modules under the same names and computes what torchvision computes (checked
against a recording of torchvision when the shared fixtures are there).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import linecache
import re
import shlex
import sys
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from recorded import SHARED, load_case
from torch import nn

import pyramidgraph
from pyramidgraph.cli import build_parser, main

COOKBOOK = Path(__file__).resolve().parents[1] / "docs" / "cookbook.md"
FENCE = re.compile(r"^```(\w*)\s*$")
TV_RECORDING = SHARED / "tv_fpn_maxpool.pt"


@dataclass
class Block:
    kind: str
    line: int
    text: str


@dataclass
class Recipe:
    title: str
    blocks: list[Block]

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


def _recipes() -> list[Recipe]:
    recipes: list[Recipe] = []
    lines = COOKBOOK.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("## "):
            recipes.append(Recipe(lines[i][3:].strip(), []))
        fence = FENCE.match(lines[i])
        if fence:
            end = i + 1
            while not lines[end].startswith("```"):
                end += 1
            if recipes:
                recipes[-1].blocks.append(Block(fence.group(1), i + 2, "\n".join(lines[i + 1 : end]) + "\n"))
            i = end
        i += 1
    return recipes


RECIPES = _recipes()


def _subcommands() -> set[str]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


def _matches(expected: list[str], got: list[str]) -> bool:
    """``got`` equals ``expected``, where an expected ``...`` line matches any lines."""
    if not expected:
        return not got
    if expected[0] == "...":
        return any(_matches(expected[1:], got[k:]) for k in range(len(got) + 1))
    return bool(got) and got[0] == expected[0] and _matches(expected[1:], got[1:])


def _run_command(command: str, expected: list[str], where: str) -> None:
    words = shlex.split(command)
    target = None
    if ">" in words:
        at = words.index(">")
        words, target = words[:at], words[at + 1]
    assert words[0] == "pyramidgraph", f"{where}: only pyramidgraph commands run here: {command}"
    if words[1] not in _subcommands():
        pytest.skip(f"{where}: `pyramidgraph {words[1]}` is not available in this build")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(words[1:])
    assert code == 0, f"{where}: `{command}` exited {code}:\n{err.getvalue()}"
    if target is not None:
        Path(target).write_text(out.getvalue(), encoding="utf-8")
    elif expected:
        got = out.getvalue().splitlines()
        assert _matches(expected, got), f"{where}: `{command}` printed:\n" + "\n".join(got)


def _console(block: Block) -> None:
    command: str | None = None
    expected: list[str] = []
    start = block.line
    for offset, line in enumerate(block.text.splitlines()):
        if line.startswith("$ "):
            if command is not None:
                _run_command(command, expected, f"cookbook.md:{start}")
            command, expected, start = line[2:], [], block.line + offset
        else:
            expected.append(line)
    if command is not None:
        _run_command(command, expected, f"cookbook.md:{start}")


def _apply_diff(block: Block) -> None:
    lines = block.text.splitlines()
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ ") and lines[0][4:] == lines[1][4:], f"cookbook.md:{block.line}: a diff names its file"
    path = Path(lines[0][4:].strip())
    text = path.read_text(encoding="utf-8")
    hunks: list[list[str]] = [[]]
    for line in lines[2:]:
        if line.startswith("@@"):
            hunks.append([])
        else:
            hunks[-1].append(line)
    for hunk in filter(None, hunks):
        old = "".join(line[1:] + "\n" for line in hunk if line[:1] in (" ", "-"))
        new = "".join(line[1:] + "\n" for line in hunk if line[:1] in (" ", "+"))
        assert text.count(old) == 1, f"cookbook.md:{block.line}: the lines to change occur {text.count(old)} times in {path}"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def _run_recipe(recipe: Recipe) -> dict:
    from pyramidgraph.ops import REGISTRIES
    from pyramidgraph.ops.base import GENERATION

    registered = {kind: dict(registry.entries) for kind, registry in REGISTRIES.items()}
    modules = set(sys.modules)
    sys.path.insert(0, str(Path.cwd()))
    try:
        return _run_blocks(recipe)
    finally:
        sys.path.remove(str(Path.cwd()))
        for kind, registry in REGISTRIES.items():
            registry.entries.clear()
            registry.entries.update(registered[kind])
        GENERATION[0] += 1
        for name in set(sys.modules) - modules:
            if getattr(sys.modules[name], "__file__", "") and str(Path.cwd()) in sys.modules[name].__file__:
                del sys.modules[name]


def _run_blocks(recipe: Recipe) -> dict:
    namespace: dict = {"__name__": f"cookbook_{recipe.id}"}
    for block in recipe.blocks:
        if block.kind == "yaml":
            first = block.text.splitlines()[0]
            assert re.fullmatch(r"# [\w.-]+\.yaml", first), f"cookbook.md:{block.line}: a YAML block starts with '# NAME.yaml'"
            Path(first[2:]).write_text(block.text, encoding="utf-8")
        elif block.kind == "diff":
            _apply_diff(block)
        elif block.kind == "console":
            _console(block)
        elif block.kind == "python" and re.fullmatch(r"# [\w]+\.py", block.text.splitlines()[0]):
            Path(block.text.splitlines()[0][2:]).write_text(block.text, encoding="utf-8")
        elif block.kind == "python":
            name = f"cookbook.md:{block.line}"
            linecache.cache[name] = (len(block.text), None, block.text.splitlines(keepends=True), name)  # tracebacks show the snippet
            exec(compile(block.text, name, "exec"), namespace)
        else:
            raise AssertionError(f"cookbook.md:{block.line}: unknown block kind '{block.kind}'")
    return namespace


# -- a stand-in for torchvision's FeaturePyramidNetwork ----------------------------------------


class _LastLevelMaxPool(nn.Module):
    def forward(self, results, inputs, names):
        names.append("pool")
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))
        return results, names


class _FeaturePyramidNetwork(nn.Module):
    """torchvision.ops.FeaturePyramidNetwork without norms: ``inner_blocks.i.0`` 1x1 and
    ``layer_blocks.i.0`` 3x3 convs (Conv2dNormActivation keeps its conv at index 0), kaiming
    uniform (a=1) with zero biases, nearest upsampling to the lateral's size."""

    def __init__(self, in_channels_list, out_channels, extra_blocks=None):
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(c, out_channels, 1)) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, padding=1)) for _ in in_channels_list)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)
        self.extra_blocks = extra_blocks

    def forward(self, x):
        names, x = list(x.keys()), list(x.values())
        last_inner = self.inner_blocks[-1](x[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(x) - 2, -1, -1):
            lateral = self.inner_blocks[idx](x[idx])
            last_inner = lateral + F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            results.insert(0, self.layer_blocks[idx](last_inner))
        if self.extra_blocks is not None:
            results, names = self.extra_blocks(results, x, names)
        return OrderedDict(zip(names, results))


@pytest.fixture
def torchvision_or_stand_in(monkeypatch):
    try:
        import torchvision  # noqa: F401
    except ImportError:
        package, ops, fpn_module = (types.ModuleType(n) for n in ("torchvision", "torchvision.ops", "torchvision.ops.feature_pyramid_network"))
        ops.FeaturePyramidNetwork = fpn_module.FeaturePyramidNetwork = _FeaturePyramidNetwork
        fpn_module.LastLevelMaxPool = _LastLevelMaxPool
        package.ops, ops.feature_pyramid_network = ops, fpn_module
        for module in (package, ops, fpn_module):
            monkeypatch.setitem(sys.modules, module.__name__, module)


def test_stand_in_computes_what_torchvision_computes():
    case = load_case(TV_RECORDING)
    config = case["config"]
    assert config["extra_blocks"] == "LastLevelMaxPool"
    stand_in = _FeaturePyramidNetwork(config["in_channels_list"], config["out_channels"], _LastLevelMaxPool())
    stand_in.load_state_dict(case["state_dict"], strict=True)
    with torch.no_grad():
        outputs = stand_in(OrderedDict(zip(case["input_names"], case["inputs"])))
    assert list(outputs) == list(case["output_names"])
    for ours, ref in zip(outputs.values(), case["outputs"]):
        assert torch.allclose(ours, ref, atol=1e-5)


# -- the recipes -------------------------------------------------------------------------------


def test_cookbook_has_the_four_recipes_and_the_export_guide():
    assert [r.title for r in RECIPES] == [
        "1. A neck from scratch",
        "2. A BiFPN variant",
        "3. Two necks in a chain",
        "4. Converting a checkpoint",
        "Exporting and distributed training",
        "An op of your own",
        "Feedback into your backbone",
    ]
    for recipe in RECIPES:
        assert {b.kind for b in recipe.blocks} >= {"python", "console"}, recipe.title


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.id for r in RECIPES])
def test_recipe_runs_as_written(recipe: Recipe, tmp_path, monkeypatch, torchvision_or_stand_in):
    monkeypatch.chdir(tmp_path)
    namespace = _run_recipe(recipe)
    if recipe.title.startswith("1."):
        assert json.loads((tmp_path / "pyramidgraph.schema.json").read_text()) == pyramidgraph.spec_schema()
        if "render" in _subcommands():
            assert "<svg" in (tmp_path / "my_neck.svg").read_text()
    if recipe.title.startswith("4."):
        assert sorted(torch.load(tmp_path / "out" / "neck.pt")) == sorted(namespace["neck"].state_dict())


def test_error_quoted_in_recipe_1_is_what_validate_reports(tmp_path, monkeypatch):
    """The prose quotes an error for a one-line mistake in my_neck.yaml: it must be the real one."""
    monkeypatch.chdir(tmp_path)
    text = COOKBOOK.read_text(encoding="utf-8")
    mistake, message = re.search(r"for example `(T4: \{from: \[C4, t5\]\})` gives `(my_neck\.yaml:[^`]+)`", text.replace("\n", " ")).groups()
    spec = next(b for b in RECIPES[0].blocks if b.kind == "yaml").text
    assert spec.count("T4: {from: [C4, T5]}") == 1
    Path("my_neck.yaml").write_text(spec.replace("T4: {from: [C4, T5]}", mistake), encoding="utf-8")
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate("my_neck.yaml")
    assert [str(issue) for issue in info.value.issues] == [message]
