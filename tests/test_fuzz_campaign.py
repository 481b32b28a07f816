"""A fast sample of the fuzz campaign (``benchmarks/fuzz_campaign.py``), and checks of its harness.

The campaign proper (20,000 cases) is a script, not a test; here 150 cases of a fixed seed run
in-process with the CLI every 10 cases and one real subprocess, and must end with no exception
but ``SpecError``, no CLI traceback or malformed stderr line, no failing forward pass and no hang.
The campaign's 2 s per-case limit is a timing figure, not asserted here (a loaded machine would
make it flaky); no case may reach the 10 s hang limit.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import fuzz_campaign as fc  # noqa: E402

import pyramidgraph  # noqa: E402
from pyramidgraph.cli import main  # noqa: E402

BROKEN = Path(__file__).parent / "broken"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    cfg = fc.Config(cases=150, seed=1, cli_every=10, subprocess_every=150, save_dir=str(tmp_path_factory.mktemp("fuzz")), progress=0, warm_up="light")
    return fc.run_campaign(cfg)


def _failures(report: dict, *kinds: str) -> list:
    return [(c["case"], c["spec"], c["mutations"], c["signatures"]) for c in report["failing"] if any(s.split(":")[0] in kinds for s in c["signatures"])]


def test_the_sample_reaches_every_spec_form_and_outcome(sample):
    assert sample["cases"] == 150 and not sample["harness_errors"]
    per_spec = 150 // len(pyramidgraph.bundled_specs())  # the cases go round the bundled specs
    assert set(sample["specs"].values()) <= {per_spec, per_spec + 1} and len(sample["specs"]) == len(pyramidgraph.bundled_specs())
    assert all(sample["forms"][form] for form in ("text", "bytes", "path"))
    assert sample["outcomes"].get("valid", 0) > 0 and sample["outcomes"].get("spec_error", 0) > 0
    assert sample["cli"]["in_process"] >= 15 and sample["cli"]["subprocess"] == 1


def test_the_sample_raises_nothing_but_spec_error(sample):
    assert sample["non_spec_error_exceptions"] == 0, _failures(sample, "other_exception", "memory", "bad_spec_error", "leak")
    assert not _failures(sample, "other_exception", "memory", "bad_spec_error", "leak")


def test_the_sample_cli_prints_no_traceback_and_only_issue_lines(sample):
    assert sample["cli_tracebacks"] == 0, _failures(sample, "cli_traceback")
    assert not _failures(sample, "cli_traceback", "cli_exit", "cli_format", "cli_output", "cli_mismatch", "cli_api_disagree")


def test_the_sample_necks_run_on_their_example_inputs(sample):
    assert not _failures(sample, "forward_error", "forward_input_error", "forward_shape")


def test_no_sample_case_hangs(sample):
    assert sample["hangs"] == 0 and sample["over_hang_limit"] == 0
    assert sample["case_time_s"]["max"] < 10.0


# -- the harness itself ------------------------------------------------------------------------------


def test_cases_are_deterministic_and_independent_of_order():
    campaign = fc.Campaign(fc.Config(seed=3))
    try:
        first = [campaign.make_case(i)[0] for i in (7, 3, 7)]
        again = fc.Campaign(fc.Config(seed=3))
        try:
            assert first[0] == first[2] == again.make_case(7)[0]
            assert first[1] == again.make_case(3)[0]
        finally:
            again.close()
    finally:
        campaign.close()


def test_every_mutator_applies_to_a_bundled_spec_without_failing():
    import random

    campaign = fc.Campaign(fc.Config())
    try:
        for name, mutator in fc.MUTATORS.items():
            applied = 0
            for i, spec in enumerate(campaign.names):
                rng = random.Random(f"{name}:{i}")
                out = campaign._apply(mutator, rng, campaign.raw[spec], None, fc.Context(spec, campaign.trees))
                if out is not None:
                    assert isinstance(out[0], bytes)
                    applied += 1
            assert applied, name
    finally:
        campaign.close()


@pytest.mark.parametrize("broken", ["cycle.yaml", "duplicate_key.yaml", "empty_file.yaml", "non_utf8.yaml", "malformed_yaml_tab_indentation.yaml"])
def test_the_stderr_check_accepts_what_the_cli_prints_for_broken_specs(broken):
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert main(["validate", str(BROKEN / broken)]) == 2
    assert fc.check_stderr(err.getvalue(), 2, BROKEN / broken) == []


def test_the_stderr_check_refuses_tracebacks_and_other_lines():
    case = BROKEN / "cycle.yaml"
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\nValueError: boom\n'
    assert fc.check_stderr(traceback, 1, case)[0] == "Traceback in stderr"
    assert fc.check_stderr("ValueError: boom\n", 2, case) == ["stderr line not file:line:col: path: message: 'ValueError: boom'"]
    assert fc.check_stderr("", 2, case) == ["exit 2 with no issue line on stderr"]
    assert fc.check_stderr(f"{case}:3:4: nodes.P3: a message\n    3 | x\n      | ^\n", 2, case) == []
