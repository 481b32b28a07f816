"""How the command line shows spec problems: located, quoted and, on a terminal, coloured.

Each :class:`~pyramidgraph.errors.Issue` prints as its one-line form, the one editors and
compilers use and scripts parse, followed (when the issue has a line and the file can be read)
by the offending YAML line and a caret under the column, as gcc and rustc do::

    neck.yaml:7:27: nodes.P4.post[0]: unknown post op 'bnn'; did you mean 'bn'?
        7 |   P4: {from: [C4], post: [bnn]}
          |                           ^~~

The first line never changes with the options: the quoted lines are indented so that a script
can keep the issue lines alone (``not line.startswith(" ")``). Colour (bold location, red
message, green caret) is ANSI and only used when asked for, or in ``auto`` mode when the stream
is a terminal, ``NO_COLOR`` is unset or empty and ``TERM`` is not ``dumb``
(https://no-color.org).

Source lines are read back from the issue's file, so an issue inside an ``include``d spec
quotes that file; a spec given as text or as a dict has no file to quote and prints the first
line alone.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Iterable, TextIO

from .errors import Issue

__all__ = ["COLOR_MODES", "use_color", "format_issue", "format_issues", "SourceLines", "QUOTE_WIDTH"]

COLOR_MODES = ("auto", "always", "never")

_BOLD = "\033[1m"
_RED = "\033[31m"
_GREEN = "\033[32m"
_RESET = "\033[0m"

_TOKEN = re.compile(r"""[\w$.\-]+|'[^']*'?|"[^"]*"?""")
"""What the caret underlines: a plain scalar (a name, a number, ``$param``) or a quoted string."""


def use_color(mode: str, stream: TextIO) -> bool:
    """Whether to colour output written to ``stream`` for a ``--color`` ``mode``."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class SourceLines:
    """Lines of spec files, read once each; a file that cannot be read has no lines."""

    def __init__(self) -> None:
        self._files: dict[str, list[str]] = {}

    def __call__(self, file: str, line: int) -> str | None:
        """Line ``line`` (1-based) of ``file``, or None when there is no such line to show."""
        if file not in self._files:
            try:
                with open(file, "rb") as handle:
                    raw = handle.read()
            except (OSError, ValueError):
                raw = b""
            # A file that is not UTF-8 is itself an issue; show its line with the bad bytes replaced.
            self._files[file] = raw.decode("utf-8", errors="replace").splitlines()
        lines = self._files[file]
        return lines[line - 1] if 0 < line <= len(lines) else None


def format_issue(issue: Issue, source: str | None = None, *, color: bool = False) -> str:
    """``file:line:col: path: message``, then ``source`` (the issue's line) with a caret under
    ``issue.col`` when both are known."""
    where = f"{issue.file}:{issue.line}:{issue.col}" if issue.line else issue.file
    path = issue.path or "<spec>"
    if color:
        head = f"{_BOLD}{where}:{_RESET} {path}: {_RED}{issue.message}{_RESET}"
    else:
        head = f"{where}: {path}: {issue.message}"
    if source is None or not issue.line:
        return head
    number = str(issue.line)
    start = min(max(issue.col, 1), len(source) + 1) - 1
    source, start = _window(source, start)
    # Keep the source's tabs in the padding so that the caret lines up under any tab width.
    padding = "".join("\t" if ch == "\t" else " " for ch in source[:start])
    token = _TOKEN.match(source, start)
    marker = "^" + "~" * (len(token.group()) - 1 if token else 0)
    if color:
        marker = f"{_GREEN}{marker}{_RESET}"
    gutter = " " * len(number)
    return "\n".join([head, f"    {number} | {source}".rstrip(), f"    {gutter} | {padding}{marker}"])


QUOTE_WIDTH = 120
"""Most characters of a source line quoted under an issue. A longer line is cut to a window
around the column, so that a one-line spec of 2,000 bad list items prints 2,000 short quotes,
not 2,000 copies of the whole line (32 MB of output for an 11 KB spec)."""


def _window(source: str, start: int) -> tuple[str, int]:
    """``source`` cut to :data:`QUOTE_WIDTH` characters around index ``start`` (``...`` where
    cut), and where ``start`` is in the cut line."""
    if len(source) <= QUOTE_WIDTH:
        return source, start
    left = max(0, min(start - QUOTE_WIDTH // 3, len(source) - QUOTE_WIDTH))
    cut = source[left : left + QUOTE_WIDTH]
    head, tail = ("..." if left > 0 else ""), ("..." if left + QUOTE_WIDTH < len(source) else "")
    return head + cut + tail, start - left + len(head)


def format_issues(issues: Iterable[Issue], *, color: bool = False, source: Callable[[str, int], str | None] | None = None) -> str:
    """Every issue with its source line (read with ``source``, by default from the issue's file)."""
    source = source or SourceLines()
    return "\n".join(format_issue(issue, source(issue.file, issue.line) if issue.line else None, color=color) for issue in issues)
