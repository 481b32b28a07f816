"""Ops of one's own: a plugin registers them, and every part of pyramidgraph knows them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyramidgraph
from pyramidgraph.cli import main
from pyramidgraph.ops import POST
from pyramidgraph.plugins import load_plugin, register_op

PLUGINS = Path(__file__).resolve().parent / "plugins"
SPEC = """
pyramidgraph: 1
example: {in_channels: [16], image: 64}
inputs: {C3: {level: 3}}
nodes:
  P3: {from: [C3], channels: 8, post: [{eca: 5}]}
outputs: [P3]
"""


@pytest.fixture
def eca(monkeypatch):
    """The plugin imported, and unregistered again afterwards."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    before = dict(POST.entries)
    load_plugin("eca_plugin")
    yield POST.entries["eca"][0]
    POST.entries.clear()
    POST.entries.update(before)
    sys.modules.pop("eca_plugin", None)
    from pyramidgraph.ops import base

    base.GENERATION[0] += 1


def test_a_spec_cannot_use_an_op_nobody_loaded():
    with pytest.raises(pyramidgraph.SpecError) as info:
        pyramidgraph.validate(SPEC)
    assert str(info.value) == (
        "<string>:6:41: nodes.P3.post[0].eca: unknown post op 'eca' (`pyramidgraph list-ops post` lists them; an op of a plugin is known once it is imported, or with --plugin)"
    )


def test_a_plugin_op_compiles_and_computes_what_it_says(eca):
    neck = pyramidgraph.compile(SPEC).eval()
    assert list(neck.state_dict()) == ["P3.from_C3.conv.weight", "P3.from_C3.conv.bias", "P3.post0.conv.weight"]
    x = torch.randn(2, 16, 8, 8)
    (y,) = neck([x])
    projected = neck.get_submodule("P3.from_C3.conv")(x)
    gate = torch.sigmoid(neck.get_submodule("P3.post0.conv")(projected.mean((2, 3)).unsqueeze(1))).reshape(2, 8, 1, 1)
    torch.testing.assert_close(y, projected * gate)
    assert pyramidgraph.neck_info(SPEC).params == 16 * 8 + 8 + 5


def test_the_schema_docs_and_renderer_know_a_plugin_op(eca):
    schema = pyramidgraph.spec_schema()
    assert "eca" in schema["$defs"]["post_op"]["anyOf"][0]["enum"]
    from pyramidgraph.docs import ops_reference_markdown
    from pyramidgraph.render import render

    assert "| `eca` | `kernel`: integer (1 to 31), default `3` (shorthand) | Efficient channel attention" in ops_reference_markdown()
    assert "eca" in render(SPEC).source


def test_a_name_already_taken_is_refused():
    with pytest.raises(ValueError) as info:
        register_op("post", "bn")
    assert str(info.value) == "post op 'bn' is already registered (by pyramidgraph.ops.post); choose another name"
    with pytest.raises(ValueError, match="unknown op kind 'postt'"):
        register_op("postt", "x")


def test_the_cli_loads_a_plugin_only_when_asked(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "eca.yaml"
    spec.write_text(SPEC)
    monkeypatch.syspath_prepend(str(PLUGINS))
    env = {"PYTHONPATH": str(PLUGINS)}
    without = subprocess.run([sys.executable, "-m", "pyramidgraph.cli", "validate", str(spec)], capture_output=True, text=True, env={**__import__("os").environ, **env})
    assert without.returncode == 2 and "unknown post op 'eca'" in without.stderr
    listed = subprocess.run([sys.executable, "-m", "pyramidgraph.cli", "--plugin", "eca_plugin", "list-ops", "post"], capture_output=True, text=True, env={**__import__("os").environ, **env})
    assert listed.returncode == 0 and "  eca " in listed.stdout
    after = subprocess.run([sys.executable, "-m", "pyramidgraph.cli", "validate", str(spec), "--plugin", "eca_plugin"], capture_output=True, text=True, env={**__import__("os").environ, **env})
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == f"{spec}: ok (1 nodes, 1 outputs)"


def test_a_plugin_that_does_not_import_is_a_located_error(capsys):
    assert main(["--plugin", "no_such_plugin_module", "list-ops"]) == 2
    assert capsys.readouterr().err.strip() == "<command line>: --plugin: cannot load plugin 'no_such_plugin_module': ModuleNotFoundError: No module named 'no_such_plugin_module'"


def test_list_and_mapping_parameters_are_typed_frozen_and_checked():
    from dataclasses import dataclass

    from pyramidgraph.ops.base import FrozenDict
    from pyramidgraph.plugins import PostOp

    @dataclass(frozen=True)
    class Scale(PostOp):
        """Multiplies the map by ``factors[fn]``; ``taps`` are only checked."""

        factors: dict[str, float] | None = None
        taps: list[int] | None = None
        fn: str = "a"

        def emit(self, e, args, shapes, out):
            import operator

            return e.call_function(operator.mul, args[0], float(self.factors[self.fn]))

    before = dict(POST.entries)
    try:
        register_op("post", "test_scale")(Scale)
        schema = pyramidgraph.spec_schema()["$defs"]["post_op"]["anyOf"][3]["properties"]["test_scale"]["anyOf"][1]["properties"]
        mapping = schema["factors"]["anyOf"][0]["anyOf"][0]["anyOf"][0]  # (the parameter or an expression) of (a mapping or null) of numbers or expressions
        assert mapping == {"type": "object", "additionalProperties": {"anyOf": [{"type": "number"}, {"$ref": "#/$defs/expr"}]}}
        spec = SPEC.replace("[{eca: 5}]", "[{test_scale: {factors: {a: 2, b: 3}, taps: [1, 2], fn: b}}]")
        neck = pyramidgraph.compile(spec)
        op = pyramidgraph.analyze(spec).ir.ops[-1].op
        assert isinstance(op.factors, FrozenDict) and op.taps == (1, 2) and hash(op) == hash(op)
        x = torch.randn(1, 16, 8, 8)
        torch.testing.assert_close(neck([x])[0], 3 * neck.get_submodule("P3.from_C3.conv")(x))
        with pytest.raises(pyramidgraph.SpecError) as info:
            pyramidgraph.validate(SPEC.replace("[{eca: 5}]", "[{test_scale: {factors: {a: x}, taps: [1, y]}}]"))
        assert [i.message for i in info.value.issues] == ["expected a number or a $expression, got 'x'", "expected an integer or a $expression, got 'y'"]
    finally:
        POST.entries.clear()
        POST.entries.update(before)
        from pyramidgraph.ops import base

        base.GENERATION[0] += 1
