"""The package as a user gets it: a wheel and an sdist, installed into a fresh venv, used from
a folder outside the checkout.

An editable checkout hides packaging mistakes (a subpackage missing from the wheel, specs that
are only found next to the source tree), so this builds the real artifacts and runs the CLI
from the installed copy. The venv borrows torch and the other dependencies from this
interpreter through a ``.pth`` line instead of downloading them: a ``.pth`` line adds a folder
to ``sys.path`` without running that folder's own ``.pth`` files, so the editable install's
import hook stays out and ``import pyramidgraph`` can only find the wheel.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SPEC_NAMES = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
GUIDES = sorted(p.name for p in (ROOT / "docs").glob("*.md"))

pytestmark = pytest.mark.packaging


def _run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def _package_folders() -> set[str]:
    """Every folder of the source tree that holds Python files: each must be in the wheel."""
    return {str(p.parent.relative_to(ROOT)) for p in (ROOT / "pyramidgraph").rglob("*.py") if "__pycache__" not in p.parts and "specs" not in p.parts}


def _expected_files() -> set[str]:
    return (
        {f"pyramidgraph/specs/{name}.yaml" for name in SPEC_NAMES}
        | {f"pyramidgraph/guide/{name}" for name in GUIDES}
        | {"pyramidgraph/spec.schema.json", "pyramidgraph/py.typed"}
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, ROOT], cwd=dist)
    _run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"], cwd=ROOT)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist, "dist": dist}


def _wheel_names(wheel: Path) -> set[str]:
    return set(zipfile.ZipFile(wheel).namelist())


def test_the_wheel_holds_every_subpackage_the_specs_the_guides_and_the_schema(artifacts):
    names = _wheel_names(artifacts["wheel"])
    folders = {os.path.dirname(n) for n in names}
    assert _package_folders() - folders == set()
    assert {"pyramidgraph", "pyramidgraph/interop", "pyramidgraph/adapters", "pyramidgraph/ops", "pyramidgraph/passes"} <= folders
    assert _expected_files() - names == set()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "specs/", "docs/"))]


def test_the_sdist_builds_the_same_wheel(artifacts, tmp_path):
    with tarfile.open(artifacts["sdist"]) as tar:
        members = tar.getnames()
        tar.extractall(tmp_path, filter="data")
    (top,) = {m.split("/")[0] for m in members}
    inside = {m.split("/", 1)[1] for m in members if "/" in m}
    assert _expected_files() - inside == set()
    assert {"pyproject.toml", "README.md"} <= inside
    rebuilt = tmp_path / "rebuilt"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", rebuilt, tmp_path / top], cwd=tmp_path)
    (wheel,) = rebuilt.glob("*.whl")
    assert {n for n in _wheel_names(wheel) if ".dist-info/" not in n} == {n for n in _wheel_names(artifacts["wheel"]) if ".dist-info/" not in n}


@pytest.fixture(scope="module")
def installed(artifacts, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed, and a work folder outside the repository."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=env_dir).stdout.strip())
    (purelib / "_borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages() + [site.getusersitepackages()]) + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", artifacts["wheel"]], cwd=env_dir)
    work = tmp_path_factory.mktemp("work")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {"python": python, "cli": env_dir / "bin" / "pyramidgraph", "work": work, "env": env, "venv": env_dir}


def _cli(installed: dict, *args) -> str:
    return _run([installed["cli"], *args], cwd=installed["work"], env=installed["env"]).stdout


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    out = _run([installed["python"], "-c", "import pyramidgraph, pyramidgraph.interop, pyramidgraph.adapters; print(pyramidgraph.__file__)"], cwd=installed["work"], env=installed["env"]).stdout
    assert Path(out.strip()).is_relative_to(installed["venv"])


def test_installed_cli_lists_compiles_renders_and_scaffolds_the_bundled_specs(installed):
    listed = _cli(installed, "list")
    assert [line.split()[0] for line in listed.splitlines()] == SPEC_NAMES
    assert _cli(installed, "compile", "bifpn").splitlines()[-1] == "  parameters: 194,361"
    assert _cli(installed, "render", "fpn").startswith("digraph")
    assert _cli(installed, "new", "mine", "--from", "fpn").splitlines()[0] == "wrote mine.yaml"
    assert _cli(installed, "validate", "mine.yaml") == "mine.yaml: ok (13 nodes, 5 outputs)\n"
    assert _cli(installed, "docs", "spec").startswith("# The pyramidgraph spec language")


def test_installed_include_of_bundled_specs(installed):
    chain = installed["work"] / "libra.yaml"
    chain.write_text(
        "pyramidgraph: 1\n"
        "example: {in_channels: [8, 16, 32, 64], image: 64}\n"
        "inputs: {C2: {level: 2}, C3: {level: 3}, C4: {level: 4}, C5: {level: 5}}\n"
        "nodes:\n"
        "  fpn: {include: fpn, inputs: [C2, C3, C4, C5], params: {channels: 8}}\n"
        "  bfp: {include: bfp, inputs: [fpn.P2, fpn.P3, fpn.P4, fpn.P5, fpn.P6], params: {refine: conv}}\n"
        "outputs: [bfp.O2, bfp.O3, bfp.O4, bfp.O5, bfp.O6]\n"
    )
    out = _cli(installed, "compile", "libra.yaml").splitlines()
    assert out[0] == "libra: 4 inputs -> 5 outputs, image 64x64"
    assert [line.split(None, 2)[1:] for line in out if line.startswith("  out")] == [
        [f"O{level}", f"(1, 8, {64 // 2**level}, {64 // 2**level})  stride {2**level}"] for level in range(2, 7)
    ]
    assert out[-1] == "  parameters: 3,912"


def test_installed_convert_reproduces_a_recorded_reference(installed):
    case = torch.load(ROOT / "tests" / "interop" / "fixtures" / "tv_fpn_p6p7_from_p5.pt", weights_only=False)
    work = installed["work"]
    (work / "cfg.json").write_text(json.dumps(case["config"]))
    torch.save(case["state_dict"], work / "sd.pt")
    torch.save({"inputs": case["inputs"]}, work / "inputs.pt")
    _cli(installed, "convert", "--from", case["source"], "--config", "cfg.json", "--weights", "sd.pt", "--out", "converted")
    script = (
        "import torch, pyramidgraph\n"
        "neck = pyramidgraph.compile('converted/neck.yaml').eval()\n"
        "neck.load_state_dict(torch.load('converted/neck.pt'))\n"
        "with torch.no_grad():\n"
        "    outs = neck(torch.load('inputs.pt')['inputs'])\n"
        "torch.save(list(outs.values()) if isinstance(outs, dict) else list(outs), 'outs.pt')\n"
    )
    _run([installed["python"], "-c", script], cwd=work, env=installed["env"])
    outs = torch.load(work / "outs.pt")
    assert [tuple(o.shape) for o in outs] == [tuple(r.shape) for r in case["outputs"]]
    for ours, ref in zip(outs, case["outputs"]):
        assert (ours - ref).abs().max().item() <= 1e-4 * max(1.0, ref.abs().max().item())
