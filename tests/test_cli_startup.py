"""Checking a spec and the quick commands do not import torch; ``--version``; the lazy package names.

``import torch`` takes about two seconds, so only compiling (and the commands that build
modules) may import it. Each check runs in a fresh interpreter, since this one has torch
already. Timings are not tested here: ``benchmarks/bench_cli.py`` prints them.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest

import pyramidgraph

TORCH_FREE_MODULES = [
    "pyramidgraph",
    "pyramidgraph.cli",
    "pyramidgraph.compiler",
    "pyramidgraph.diagnostics",
    "pyramidgraph.errors",
    "pyramidgraph.expand",
    "pyramidgraph.expr",
    "pyramidgraph.graph",
    "pyramidgraph.ir",
    "pyramidgraph.library",
    "pyramidgraph.loader",
    "pyramidgraph.lower",
    "pyramidgraph.ops",
    "pyramidgraph.ops.attention",
    "pyramidgraph.ops.base",
    "pyramidgraph.ops.common",
    "pyramidgraph.ops.csp",
    "pyramidgraph.ops.fpg",
    "pyramidgraph.ops.fuse",
    "pyramidgraph.ops.gates",
    "pyramidgraph.ops.interpolate",
    "pyramidgraph.ops.post",
    "pyramidgraph.ops.resample",
    "pyramidgraph.passes",
    "pyramidgraph.schema",
    "pyramidgraph.shape",
]


def fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter; it must leave a JSON object as the last line on stdout.
    ``torch`` in the result says whether anything imported torch."""
    script = f"import json, sys\n{code}\nresult['torch'] = 'torch' in sys.modules\nprint(json.dumps(result))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cli(argv: list[str]) -> dict:
    """``pyramidgraph.cli.main(argv)`` in a new interpreter: exit status, stdout, stderr and ``torch``."""
    code = f"""
import contextlib, io
import pyramidgraph.cli
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        status = pyramidgraph.cli.main({argv!r})
    except SystemExit as exc:
        status = exc.code
result = {{"status": status, "out": out.getvalue(), "err": err.getvalue()}}
"""
    return fresh_python(code)


def test_the_checking_modules_import_without_torch():
    result = fresh_python(f"import importlib\nfor name in {TORCH_FREE_MODULES!r}:\n    importlib.import_module(name)\nresult = {{}}")
    assert result["torch"] is False


def test_checking_specs_through_the_api_does_not_import_torch():
    code = """
import pyramidgraph
analysis = pyramidgraph.validate("fpn")
pyramidgraph.validate("bifpn", channels=64)
pyramidgraph.analyze("nasfpn", [64, 128, 256])
pyramidgraph.load("pafpn")
try:
    pyramidgraph.validate("fpn", channels=0)
except pyramidgraph.SpecError as exc:
    issues = len(exc.issues)
result = {"nodes": len(analysis.flat.nodes), "issues": issues, "specs": len(pyramidgraph.bundled_specs()), "schema": "$schema" in pyramidgraph.spec_schema(),
          "version": pyramidgraph.__version__}
"""
    result = fresh_python(code)
    assert result["torch"] is False
    assert result["nodes"] > 0 and result["issues"] > 0 and result["specs"] > 0 and result["schema"]
    assert result["version"] == importlib.metadata.version("pyramidgraph")


@pytest.mark.parametrize(
    "argv",
    [["list"], ["validate", "fpn"], ["validate", "bifpn", "nasfpn", "--param", "channels=64"], ["list-ops"], ["schema"]],
    ids=" ".join,
)
def test_quick_commands_succeed_without_torch(argv):
    result = run_cli(argv)
    assert result["status"] == 0, result["err"]
    assert result["out"]
    assert result["torch"] is False


def test_a_broken_spec_is_reported_without_torch(tmp_path):
    from cli_helpers import BROKEN, issue_lines

    spec = tmp_path / "broken.yaml"
    spec.write_text(BROKEN, encoding="utf-8")
    result = run_cli(["validate", str(spec)])
    assert result["status"] == 2
    assert len(issue_lines(result["err"])) == 2
    assert result["torch"] is False


def test_help_exits_zero_without_torch():
    result = run_cli(["--help"])
    assert result["status"] == 0
    assert "validate" in result["out"] and "--version" in result["out"]
    assert result["torch"] is False


def test_version_prints_the_installed_version():
    expected = f"pyramidgraph {importlib.metadata.version('pyramidgraph')}\n"
    result = run_cli(["--version"])
    assert (result["status"], result["out"], result["torch"]) == (0, expected, False)
    done = subprocess.run([sys.executable, "-m", "pyramidgraph.cli", "--version"], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (0, expected)


def test_compile_imports_torch_and_works():
    result = fresh_python("import pyramidgraph\nneck = pyramidgraph.compile('fpn', [8, 16, 32, 64], channels=16)\nresult = {'type': type(neck).__name__}")
    assert result == {"type": "PyramidNeck", "torch": True}


def test_the_lazy_names_resolve():
    from pyramidgraph import PyramidNeck, compile
    from pyramidgraph.compiler import compile as compile_spec
    from pyramidgraph.module import PyramidNeck as neck_class

    assert PyramidNeck is neck_class and pyramidgraph.PyramidNeck is neck_class
    assert compile is compile_spec
    neck = pyramidgraph.compile("fpn", [8, 16, 32, 64], channels=16)
    assert isinstance(neck, pyramidgraph.PyramidNeck)
    assert set(pyramidgraph.__all__) <= set(dir(pyramidgraph))
    for name in pyramidgraph.__all__:
        assert getattr(pyramidgraph, name) is not None
    assert pyramidgraph.__version__ == importlib.metadata.version("pyramidgraph")
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        pyramidgraph.not_a_name  # noqa: B018
