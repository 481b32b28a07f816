"""A corpus of broken specs, one failure class per file, each with the exact errors it must give.

Every file in ``tests/broken/`` starts with a comment saying what is wrong and one
``# expect: LINE:COL: PATH: MESSAGE`` line per issue, in the order :class:`SpecError` sorts
them. Positions are where a human would look (the offending key or value), not merely
wherever the checker happened to notice. ``0:0`` means "no position" (an empty file).

To add a case: write the YAML, work out by hand which line and column the error belongs at,
and put the expected lines on top (the header lines count for the line numbers).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import issue_lines

import pyramidgraph
from pyramidgraph.cli import main

BROKEN = Path(__file__).resolve().parent / "broken"
CASES = sorted(BROKEN.glob("*.yaml"))
EXPECT = b"# expect: "


def expected(path: Path) -> list[str]:
    """The ``# expect:`` header lines of ``path`` (ASCII even where the file is not UTF-8)."""
    lines = path.read_bytes().splitlines()
    return [line[len(EXPECT) :].decode("ascii") for line in lines if line.startswith(EXPECT)]


def located(issue: pyramidgraph.Issue) -> str:
    return f"{issue.line}:{issue.col}: {issue.path or '<spec>'}: {issue.message}"


def cli_line(file: str, expectation: str) -> str:
    """What ``pyramidgraph validate`` prints for one expected issue of ``file``."""
    line, col, rest = expectation.split(":", 2)
    return f"{file}: {rest.lstrip()}" if line == "0" else f"{file}:{line}:{col}:{rest}"




def test_corpus_is_large_and_every_case_states_its_errors():
    assert len(CASES) >= 30
    for path in CASES:
        assert expected(path), f"{path.name} has no '# expect:' header"
        assert path.read_bytes().startswith(b"# "), f"{path.name} should start with a comment saying what is wrong"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_spec_reports_exactly_its_errors(path: Path):
    with pytest.raises(pyramidgraph.SpecError) as caught:
        pyramidgraph.validate(str(path))
    issues = caught.value.issues
    assert [located(i) for i in issues] == expected(path)
    assert all(i.file == str(path) for i in issues)
    assert str(caught.value).splitlines() == [cli_line(str(path), e) for e in expected(path)]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_cli_validate_exits_2_with_located_lines(path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    assert out == ""
    assert issue_lines(err) == [cli_line(str(path), e) for e in expected(path)]


def test_cli_entry_point_reports_several_files_without_traceback(tmp_path: Path):
    chosen = [BROKEN / name for name in ("python_tag.yaml", "non_utf8.yaml", "cycle.yaml", "upsample_scale_size_mismatch.yaml")]
    result = subprocess.run([sys.executable, "-m", "pyramidgraph.cli", "validate", *map(str, chosen)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert issue_lines(result.stderr) == [cli_line(str(p), e) for p in chosen for e in expected(p)]


def test_unknown_compile_argument_points_at_the_declared_parameters():
    with pytest.raises(pyramidgraph.SpecError) as caught:
        pyramidgraph.validate("fpn", chanels=128)
    (issue,) = caught.value.issues
    assert (issue.path, issue.message) == ("params", "unknown parameter 'chanels'; did you mean 'channels'?")
    assert issue.line > 0 and issue.file.endswith("fpn.yaml")
