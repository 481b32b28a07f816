"""How the command line shows spec problems (:mod:`pyramidgraph.diagnostics`): the located
``file:line:col: path: message`` line, the YAML line it points at with a caret under the
column, and ANSI colour only on a terminal (or when asked for)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest
from cli_helpers import BROKEN

from pyramidgraph.cli import main
from pyramidgraph.diagnostics import format_issue, format_issues, use_color
from pyramidgraph.errors import Issue

BOLD, RED, GREEN, RESET = "\033[1m", "\033[31m", "\033[32m", "\033[0m"


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch):
    """Colour decisions must not depend on the environment the tests run in."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_each_issue_quotes_its_yaml_line_with_a_caret_under_the_column(capsys, broken):
    code, out, err = _run(capsys, "validate", str(broken))
    assert (code, out) == (2, "")
    assert err == (
        f"{broken}:7:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?\n"
        "    7 |   P4: {from: [C4], post: [bnn]}\n"
        "      |                           ^~~\n"
        f"{broken}:8:25: nodes.P3.levl: unknown key 'levl'; did you mean 'level'?\n"
        "    8 |   P3: {from: [C3, P4x], levl: 3}\n"
        "      |                         ^~~~\n"
    )


def test_color_always_bolds_the_location_reddens_the_message_and_greens_the_caret(capsys, broken):
    expected = (
        f"{BOLD}{broken}:7:27:{RESET} nodes.P4.post[0]: {RED}unknown post op 'bnn'; did you mean 'bn'?{RESET}\n"
        "    7 |   P4: {from: [C4], post: [bnn]}\n"
        f"      |                           {GREEN}^~~{RESET}\n"
        f"{BOLD}{broken}:8:25:{RESET} nodes.P3.levl: {RED}unknown key 'levl'; did you mean 'level'?{RESET}\n"
        "    8 |   P3: {from: [C3, P4x], levl: 3}\n"
        f"      |                         {GREEN}^~~~{RESET}\n"
    )
    # The option works before the command and after it.
    assert _run(capsys, "--color", "always", "validate", str(broken))[2] == expected
    assert _run(capsys, "validate", str(broken), "--color", "always")[2] == expected
    assert _run(capsys, "--color", "always", "compile", str(broken))[2] == expected


def test_auto_colours_only_a_terminal_without_no_color(capsys, monkeypatch, broken):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def stderr_of(*argv: str) -> str:
        monkeypatch.setattr(sys, "stderr", Terminal())
        assert main(list(argv)) == 2
        return sys.stderr.getvalue()

    assert _run(capsys, "validate", str(broken))[2].count("\033[") == 0  # captured: not a terminal
    assert stderr_of("validate", str(broken)).count(BOLD) == 2
    assert stderr_of("validate", str(broken), "--color", "never").count("\033[") == 0
    monkeypatch.setenv("NO_COLOR", "1")
    assert stderr_of("validate", str(broken)).count("\033[") == 0
    assert stderr_of("validate", str(broken), "--color", "always").count(BOLD) == 2  # an explicit request wins
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty NO_COLOR does not disable colour
    assert stderr_of("validate", str(broken)).count(BOLD) == 2
    monkeypatch.setenv("TERM", "dumb")
    assert stderr_of("validate", str(broken)).count("\033[") == 0


def test_use_color_modes():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert [use_color(mode, io.StringIO()) for mode in ("auto", "always", "never")] == [False, True, False]
    assert [use_color(mode, Terminal()) for mode in ("auto", "always", "never")] == [True, True, False]


def test_bad_color_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--color", "sometimes", "list"])
    assert exit_.value.code == 2
    assert "argument --color: invalid choice: 'sometimes' (choose from auto, always, never)" in capsys.readouterr().err.replace("'auto', 'always', 'never'", "auto, always, never")


def test_entry_point_on_a_real_terminal_is_coloured_and_on_a_pipe_is_not(tmp_path, broken):
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    command = [sys.executable, "-m", "pyramidgraph.cli", "validate", str(broken)]
    piped = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert piped.returncode == 2 and "\033[" not in piped.stderr
    assert piped.stderr.splitlines()[0] == f"{broken}:7:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?"
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, env=env, timeout=300)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO once the child has closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    assert result.returncode == 2
    assert text.splitlines()[0] == f"{BOLD}{broken}:7:27:{RESET} nodes.P4.post[0]: {RED}unknown post op 'bnn'; did you mean 'bn'?{RESET}"


def test_first_lines_are_unchanged_so_scripts_can_parse_them(capsys, broken):
    err = _run(capsys, "validate", str(broken))[2]
    assert [line for line in err.splitlines() if not line.startswith(" ")] == [
        f"{broken}:7:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?",
        f"{broken}:8:25: nodes.P3.levl: unknown key 'levl'; did you mean 'level'?",
    ]


def test_gutter_widens_for_long_line_numbers_and_quoted_values_are_underlined(capsys, tmp_path):
    path = tmp_path / "long.yaml"
    comments = "".join(f"# comment {i}\n" for i in range(10))
    path.write_text(comments + BROKEN.replace("post: [bnn]", 'post: ["bnn"]'), encoding="utf-8")
    code, _out, err = _run(capsys, "validate", str(path))
    assert code == 2
    assert err.splitlines() == [
        f"{path}:17:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?",
        '    17 |   P4: {from: [C4], post: ["bnn"]}',
        "       |                           ^~~~~",
        f"{path}:18:25: nodes.P3.levl: unknown key 'levl'; did you mean 'level'?",
        "    18 |   P3: {from: [C3, P4x], levl: 3}",
        "       |                         ^~~~",
    ]


def test_tabs_before_the_column_are_kept_so_the_caret_lines_up():
    # YAML allows tabs inside quoted scalars and comments, where an editor shows them at any width.
    source = 'doc: "a\tb"  # see\tbelow: bad'
    issue = Issue("f.yaml", 1, 26, "doc", "m")  # 'bad': 25 characters before it, two of them tabs
    assert format_issue(issue, source).splitlines()[1:] == [
        '    1 | doc: "a\tb"  # see\tbelow: bad',
        "      | " + " " * 7 + "\t" + " " * 9 + "\t" + " " * 7 + "^~~",
    ]


def test_a_file_that_is_not_utf8_is_quoted_with_the_bad_byte_replaced(capsys, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"pyramidgraph: 1\nname: caf\xe9\n")
    err = _run(capsys, "validate", str(path))[2]
    assert err.splitlines() == [
        f"{path}:2:10: <spec>: byte 0xe9 is not valid UTF-8; save the file as UTF-8",
        "    2 | name: caf\ufffd",
        "      |          ^",
    ]


def test_issues_without_a_position_or_a_readable_file_print_one_line(capsys, tmp_path):
    assert _run(capsys, "validate", "fpnn")[2] == "fpnn: <spec>: no spec 'fpnn': not a file and not a bundled spec; did you mean 'fpn'?\n"
    assert _run(capsys, "compile", "fpn", "--image", "1x2x3")[2] == "<command line>: --image: '1x2x3' is not HxW or N (positive integers, such as 512x640 or 512)\n"
    gone = Issue(str(tmp_path / "deleted.yaml"), 3, 5, "nodes.P3", "something")
    assert format_issues([gone]) == f"{tmp_path / 'deleted.yaml'}:3:5: nodes.P3: something"
    past_the_end = Issue(str(tmp_path / "deleted.yaml"), 99, 1, "", "x")
    assert format_issue(past_the_end, None) == f"{tmp_path / 'deleted.yaml'}:99:1: <spec>: x"


def test_each_issue_quotes_its_own_file(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("one: 1\ntwo: 2\n", encoding="utf-8")
    second.write_text("three: {x: 3}\n", encoding="utf-8")
    text = format_issues([Issue(str(first), 2, 6, "two", "bad"), Issue(str(second), 1, 9, "three.x", "worse")])
    assert text.splitlines() == [
        f"{first}:2:6: two: bad",
        "    2 | two: 2",
        "      |      ^",
        f"{second}:1:9: three.x: worse",
        "    1 | three: {x: 3}",
        "      |         ^",
    ]


def test_a_column_past_the_end_of_the_line_puts_the_caret_after_it():
    assert format_issue(Issue("f.yaml", 1, 40, "p", "m"), "key:").splitlines()[1:] == ["    1 | key:", "      |     ^"]
