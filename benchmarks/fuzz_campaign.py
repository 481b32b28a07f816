#!/usr/bin/env python3
"""A fuzz campaign over the bundled specs: mutate them, run the API and the CLI, count what breaks.

    python3 benchmarks/fuzz_campaign.py --cases 20000 --seed 0 [--cli-every 10] [--subprocess-every 100]
        [--timeout 2.0] [--hang 10] [--memory-gb 8] [--out report.json] [--save-dir /tmp/pyramidgraph-fuzz]
    python3 benchmarks/fuzz_campaign.py --seed 0 --case 1234        # replay one case, verbosely

Each case takes a bundled spec (round-robin over ``pyramidgraph.bundled_specs()``), applies one to
three mutations from :data:`MUTATORS` (byte, token, structure and API-argument level), and hands
the result to the API as YAML text, bytes, a file path or (after a structure mutation) a dict:

* ``validate`` (``analyze`` when the case overrides parameters); when the spec is valid,
  ``compile`` and a forward pass on the neck's example inputs (batch 1, under ``no_grad``);
* every ``--cli-every`` cases, one command of the CLI in-process (``pyramidgraph.cli.main``
  with stdout and stderr captured) on the mutated spec written to a file;
* every ``--subprocess-every`` cases, the same command as a real process (the ``pyramidgraph``
  console script and ``python -m pyramidgraph.cli`` in turn), compared with the in-process run.

What counts as a failure (the library's contract):

* any exception from the API but :class:`pyramidgraph.SpecError` (a ``MemoryError``, or torch's
  ``can't allocate memory``, counts as one too: ``--memory-gb`` bounds the address space so that
  a memory bomb shows up as one instead of taking the machine); a ``SpecError`` without issues,
  or whose issues are not located strings, or that quotes a file a spec may not read;
* a compiled neck that fails on its own example inputs (``NeckInputError`` included), or returns
  outputs whose widths are not the ones it declares;
* a CLI command that raises, exits with anything but 0 or 2, prints ``Traceback``, or prints a
  stderr line that is neither ``file:line:col: path: message`` (``file: path: message`` when no
  position is known) nor an indented quote of the YAML under it (nor ``pyramidgraph render: ...``);
  a stderr over 1 MB and over 100 times the spec's size; a subprocess run whose exit status or
  issue lines differ from the in-process one;
* a case whose API work (validate + compile) or one CLI command takes more than ``--timeout``
  seconds (``slow``), or any phase more than ``--hang`` seconds (``hang``: aborted by a timer).
  A neck the validator estimates at over ``--large-params`` parameters (50M; fpg, the largest
  bundled spec, has 41.6M) is exempt from ``--timeout`` and ``--hang`` and counted as large (a
  run past ``--hang`` is still stopped): its time is torch building and initialising weights,
  about 40M parameters a second here, which the weight limit allows.

The forward pass is the model's own arithmetic (an unmutated fpg takes 6 s on one core at its
example image), so it is timed on its own and not part of the case time, and it runs at a smaller
image of the same shape behaviour: the smallest size of the example's residue class modulo the
neck's coarsest stride that is at least that stride (or about 128). Should the neck refuse that
size with ``NeckInputError``, it runs again at the example image (when those inputs hold at most
``--forward-elements`` values), where it must not. Example inputs wider than 4096 channels or
images over 1024 on a side are not run (the case still compiles). The forward phase may take
three times ``--hang``.

Every case draws from its own ``random.Random`` seeded by ``(seed, case index)``, so a run is
deterministic and ``--case N`` replays one case alone. Failures are saved under ``--save-dir``
(the input, how it was made and the traceback), grouped by signature (kind, exception type and
the innermost pyramidgraph frame); ``--minimize`` shrinks the smallest input of each group line
by line while it still fails the same way. ``tests/test_fuzz_campaign.py`` runs a fast sample.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import io
import json
import keyword
import math
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

import pyramidgraph
from pyramidgraph import NeckInputError, SpecError
from pyramidgraph.lower import estimated_parameters

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

CLI_COMMANDS = (("validate",), ("compile", "--code"), ("info",), ("render",))
"""The CLI commands a case runs, in turn; ``compile --code`` builds the neck without the forward
pass of a plain ``compile`` (the API part of the case runs that)."""

HUGE_WIDTH = 4096
HUGE_IMAGE = 1024
CANARY = "pyramidgraph-fuzz-canary-5f1c9e"
"""Put in the environment while the campaign runs: a spec that manages to read
``/proc/self/environ`` into a message shows it."""


class CaseTimeout(BaseException):
    """Raised by the interval timer when a phase runs past ``--hang``; a ``BaseException`` so that
    no ``except Exception`` in the library swallows it."""


# -- pools of things users (and attackers) write ---------------------------------------------------

HOSTILE_EXPRESSIONS = [
    "${10**10**10}", "${2**4096}", "${9**9**9**9}", "${().__class__}", "${().__class__.__bases__[0].__subclasses__()}", "${[].__class__.__mro__}", "${__import__('os').system('true')}",
    "${open('/etc/passwd').read()}", "${eval('1')}", "${exec('x=1')}", "${globals()}", "${__builtins__}", "${getattr(1, 'real')}", "${(lambda: 1)()}", "${[x for x in range(10**9)]}",
    "${[0] * 10**9}", "${'a' * 10**9}", "${'x' * 100000}", "${range(10**12)}", "${list(range(10**8))}", "${sum(range(10**9))}", "${max(range(10**9))}", "${str(10**300)}", "${int('9' * 5000)}",
    "${1e308 * 1e308}", "${10 ** -400}", "${-2 ** 0.5}", "${(-8) ** (1/3)}", "${1/0}", "${1 // 0}", "${1 % 0}", "${[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    "${(((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))}", "${" + "1+" * 400 + "1}", "${" + "-" * 2000 + "1}", "${'%s' % 1}", "${f'{1}'}", "${{1: 2}}", "${ {1:2} }",
    "${}", "${", "$", "$$", "${}}", "${$channels}", "${channels if channels else ${channels}}", "$nope", "${nope}", "${channels.real}", "${channels * 1000}", "${channels * 10**6}", "${-channels}",
    "${channels / 3}", "${channels // 0.0}", "${range(100000)}", "${range(-5)}", "${range(0, 10, 0)}", "${[1] * 100000}", "${'P' * 300}", "${num_inputs * 10**9}", "${in_channels[99]}",
    "${in_channels[-99]}", "${in_channels * 100000}", "${range(first_level, first_level + 10**6)}", "${True + True}", "${None}", "${float('nan')}", "${float('inf')}", "${-(2 ** 255)}",
    "${2 ** 255 + 2 ** 255}", "${round(1e308)}", "${int(1e308)}", "${abs(-(2 ** 300))}", "${min()}", "${max([])}", "${sorted([1, 'a'])}", "${'a' < 1}", "${[1, 2][1.5]}", "${'abc'[10**20]}",
    "${'abc' * -1}", "${len(range(10**18))}", "${l}", "${l + 1}", "${\x00}", "${'\\x00'}", "${'\udcff'}",
]

SCALAR_SNIPPETS = [
    "0", "-1", "1", "2", "3", "7", "16", "17", "31", "33", "100", "1023", "1025", "4095", "4097", "8192", "16384", "16385", "65535", "65536", "65537", "2147483648", "9223372036854775808",
    "99999999999999999999999999999999", "-99999999999999999999999999999999", "1" + "0" * 400, "0x7fffffffffffffff", "0o777", "0b1010", "1_000_000", "190:20:30", "3.5", "-2.5", "0.0", "-0.0",
    "1.0e+400", "-1.0e+400", "1.0e-320", ".nan", ".NaN", ".inf", "-.inf", "+.inf", "1e9", "true", "false", "yes", "no", "on", "off", "~", "null", "''", '""', "' '", "'x'", "[]", "{}", "[[[]]]",
    "[1, 2, 3]", "[-1, 0, 99999]", "{a: {b: {c: d}}}", "[C3, C3, C3]", "[nope]", "[P3, P4, P5]", "!!binary aGVsbG8=", "!!timestamp 2001-12-14", "2001-12-14", "2001-12-14T21:59:43.10-05:00",
    "!!set {a, b}", "!!omap [a: 1]", "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!float 1", "!!int '7'", "!!str 7", "!custom x", "|\n  block", ">-\n  folded",
    "'" + "x" * 5000 + "'", "'" + "P3" * 3000 + "'", "'\u00fc\u0301\u200b'", "'\U0001f4a5'", "'\\'", '"\\x00"', '"\\ud800"', '"\\uffff"', '"\\e\\a"', "none", "bn", "gn", "relu", "silu", "nearest",
    "bilinear", "sum", "fast", "softmax", "concat", "conv3x3", "maxpool", "P3", "C3", "P3_out", "cell.P3_out", "P4.pre", "$channels", "$l", "$nope", "P$l",
]

SPEC_KEYS = [
    "pyramidgraph", "name", "doc", "params", "example", "in_channels", "image", "inputs", "defaults", "nodes", "outputs", "return_type",
    "level", "channels", "optional", "from", "post", "pre", "fuse", "resample", "up", "down", "project", "order", "foreach", "each", "when",
    "repeat", "share", "include", "default", "type", "min", "max", "choices", "exclusive_min", "op", "kernel", "stride", "bias", "mode", "by",
]

MODULE_NAMES = [
    "forward", "training", "graph", "code", "state_dict", "info", "half", "cuda", "to", "eval", "train", "parameters", "modules",
    "_modules", "_parameters", "_buffers", "register_buffer", "__init__", "__class__", "__dict__", "__call__", "self", "torch", "meta",
    "input_names", "output_names", "example_inputs", "strides", "out_channels", "contract",
]

KEY_SNIPPETS = [
    "''", "'1'", "1", "-1", "1.5", "true", "null", "~", "'P3: x'", "'a b'", "'a.b'", "'P$l'", "'P${l}'", "'${l}'", "'$'", "'<<'", "<<",
    "'\u00fc'", "'P3\u200b'", "'" + "x" * 300 + "'", "[a]", "{a: b}", "? complex", "'C3'", "'P3'", "'cell'", "'1x'", "'_'", "'__'",
]

INCLUDE_REFS = [
    "/etc/passwd", "../../../../etc/passwd", "../../../../../../../../../../etc/shadow", "/dev/zero", "/dev/urandom", "/dev/stdin", "/proc/self/environ", "/proc/self/mem", "/proc/self/cmdline",
    "/proc/self/fd/0", "/", ".", "..", "", "~/.ssh/id_rsa", "file:///etc/passwd", "C:\\Windows\\win.ini", "\\\\server\\share\\x.yaml", "x" * 5000, "a\x00b", "${'/etc/passwd'}", "fpn", "fpn.yaml",
    "bifpn", "nope", "fifo.yaml", "zero.yaml", "dir.yaml", "loop.yaml", "passwd.yaml", "big.yaml", "bad.yaml", "ok.yaml", "case.yaml", "./case.yaml", "../case.yaml",
]

INNER_SPEC = """\
pyramidgraph: 1
inputs: {A3: {level: 3}}
defaults: {channels: 8}
nodes:
  X3: {from: [A3], post: [conv3x3]}
outputs: [X3]
"""


def _python_values() -> list[Any]:
    """Scalars a structure mutation may put anywhere."""
    return [
        None, True, False, 0, -1, 1, 2, 3, 7, 16, 17, 33, 1025, 4097, 16385, 65536, 65537, 2**31, 2**63, 10**30, 10**100, -(10**30),
        float("nan"), float("inf"), float("-inf"), 1e-320, 0.5, -0.0, 3.7, "", " ", "x" * 10000, "P3", "C3", "P5", "conv3x3", "conv",
        "none", "bn", "gn", "relu", "nearest", "sum", "fast", "concat", "maxpool", "$channels", "$l", "${channels * 2}", "P$l", "cell.P3_out",
        "\x00", "\ud800", "\U0001f4a5", "forward", "def", *HOSTILE_EXPRESSIONS[:12],
    ]


PY_VALUES = _python_values()


# -- the mutators -----------------------------------------------------------------------------------


@dataclass
class Context:
    """What a mutator may read besides the input: the other specs, and the case's API arguments
    (an ``api`` mutator sets them)."""

    spec: str
    trees: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    in_channels: Any = None
    image: Any = None


@dataclass(frozen=True)
class Mutator:
    name: str
    level: str  # byte, token, structure, api
    fn: Callable[..., Any]
    weight: float = 1.0  # relative to the other mutators of its level


MUTATORS: dict[str, Mutator] = {}
LEVEL_WEIGHTS = {"byte": 0.22, "token": 0.40, "structure": 0.33, "api": 0.05}


def mutator(level: str, weight: float = 1.0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a mutator. Byte mutators take and return bytes, token mutators text, structure
    mutators the parsed tree (mutated in place or replaced), api mutators change the context; each
    returns None when it does not apply to its input."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        MUTATORS[fn.__name__] = Mutator(fn.__name__, level, fn, weight)
        return fn

    return register


def _pos(rng: random.Random, n: int) -> int:
    return rng.randint(0, n)


# byte level


@mutator("byte")
def flip_bits(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    if not raw:
        return None
    data = bytearray(raw)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


@mutator("byte")
def insert_random_bytes(rng: random.Random, raw: bytes, ctx: Context) -> bytes:
    at = _pos(rng, len(raw))
    return raw[:at] + rng.randbytes(rng.randint(1, 8)) + raw[at:]


@mutator("byte")
def delete_bytes(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    if not raw:
        return None
    at = rng.randrange(len(raw))
    return raw[:at] + raw[at + rng.randint(1, 32) :]


@mutator("byte")
def truncate(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    if not raw:
        return None
    return raw[: rng.randrange(len(raw))]


@mutator("byte")
def duplicate_span(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    if not raw:
        return None
    start = rng.randrange(len(raw))
    span = raw[start : start + rng.randint(1, 400)]
    at = _pos(rng, len(raw))
    return raw[:at] + span * rng.choice([1, 1, 2, 3, 50]) + raw[at:]


@mutator("byte")
def insert_nul(rng: random.Random, raw: bytes, ctx: Context) -> bytes:
    at = _pos(rng, len(raw))
    return raw[:at] + b"\x00" * rng.choice([1, 1, 4]) + raw[at + rng.choice([0, 1]) :]


INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3\x28", b"\xe2\x28\xa1", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xe2\x82"]


@mutator("byte")
def insert_invalid_utf8(rng: random.Random, raw: bytes, ctx: Context) -> bytes:
    at = _pos(rng, len(raw))
    return raw[:at] + rng.choice(INVALID_UTF8) + raw[at:]


@mutator("byte")
def insert_bom(rng: random.Random, raw: bytes, ctx: Context) -> bytes:
    how = rng.randrange(5)
    if how == 0:
        return b"\xef\xbb\xbf" + raw  # UTF-8 BOM at the start: allowed
    if how == 1:
        at = _pos(rng, len(raw))
        return raw[:at] + b"\xef\xbb\xbf" + raw[at:]
    if how == 2:
        return b"\xff\xfe" + raw
    if how == 3:
        return b"\xef\xbb\xbf\xef\xbb\xbf" + raw
    return raw.decode("utf-8", "replace").encode(rng.choice(["utf-16", "utf-16-le", "utf-32", "utf-8-sig"]))


@mutator("byte")
def crlf(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    if b"\n" not in raw:
        return None
    how = rng.randrange(4)
    if how == 0:
        return raw.replace(b"\n", b"\r\n")
    if how == 1:
        return raw.replace(b"\n", b"\r")
    if how == 2:
        lines = raw.split(b"\n")
        return b"".join(line + rng.choice([b"\n", b"\r\n", b"\r"]) for line in lines)
    return raw.replace(b"\n", rng.choice([b"\xc2\x85", "\u2028".encode(), "\u2029".encode(), b"\x0b", b"\x0c"]), rng.randint(1, 3))


@mutator("byte")
def tabs(rng: random.Random, raw: bytes, ctx: Context) -> bytes | None:
    lines = raw.split(b"\n")
    indented = [i for i, line in enumerate(lines) if line.startswith(b" ")]
    if not indented:
        return None
    how = rng.randrange(3)
    for i in rng.sample(indented, min(len(indented), rng.randint(1, 3))):
        stripped = lines[i].lstrip(b" ")
        depth = len(lines[i]) - len(stripped)
        if how == 0:
            lines[i] = b"\t" * max(1, depth // 2) + stripped
        elif how == 1:
            lines[i] = lines[i].replace(b": ", b":\t", 1)
        else:
            lines[i] = b" " * (depth - 1) + b"\t" + stripped
    return b"\n".join(lines)


@mutator("byte")
def insert_control(rng: random.Random, raw: bytes, ctx: Context) -> bytes:
    at = _pos(rng, len(raw))
    char = rng.choice(["\x1b", "\x07", "\x0b", "\x0c", "\x7f", "\x85", "\u2028", "\u200b", "\ufeff", "\ufffe", "\u202e", "\U0001f4a5"])
    return raw[:at] + char.encode("utf-8", "surrogatepass") + raw[at:]


# token level: YAML-aware where the scanner can read the text, line-based where it cannot


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _scalars(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """(key spans, value spans) of the scalar tokens of ``text``, as character offsets; None when
    the scanner refuses the text (then the mutators fall back to lines)."""
    if len(text) > 200_000:
        return None
    keys: list[tuple[int, int]] = []
    values: list[tuple[int, int]] = []
    previous = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.ScalarToken):
                span = (token.start_mark.index, token.end_mark.index)
                (keys if isinstance(previous, yaml.KeyToken) else values).append(span)
            previous = token
    except yaml.YAMLError:
        return None
    except Exception:  # the scanner has its own bugs on hostile text (it is not under test)
        return None
    return keys, values


_KEY_LINE = re.compile(r"^(\s*(?:-\s+)?)([^\s:#'\"\-][^:#\n]*?)(\s*:)(?=\s|$)", re.M)
_VALUE_LINE = re.compile(r"^(\s*(?:-\s+)?[^\s:#][^:#\n]*?:[ \t]+)([^\s#{}\[\]][^#\n]*?)\s*$", re.M)


def _key_spans(text: str) -> list[tuple[int, int]]:
    scanned = _scalars(text)
    if scanned is not None:
        return scanned[0]
    return [m.span(2) for m in _KEY_LINE.finditer(text)]


def _value_spans(text: str) -> list[tuple[int, int]]:
    scanned = _scalars(text)
    if scanned is not None:
        return scanned[1]
    return [m.span(2) for m in _VALUE_LINE.finditer(text)]


def _quote(rng: random.Random, value: str) -> str:
    """``value`` as a YAML scalar: plain (which may well break the YAML: that is a case too),
    single-quoted or double-quoted."""
    how = rng.random()
    if how < 0.2:
        return value
    if how < 0.5:
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


def _replace(text: str, span: tuple[int, int], new: str) -> str:
    return text[: span[0]] + new + text[span[1] :]


def _near_miss(rng: random.Random, word: str) -> str:
    if not word:
        return "x"
    i = rng.randrange(len(word))
    how = rng.randrange(9)
    if how == 0:
        return word[:i] + word[i + 1 :] or "x"
    if how == 1:
        return word[:i] + word[i] + word[i:]
    if how == 2 and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        chars = list(word)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if how == 3:
        return word[:i] + word[i].swapcase() + word[i + 1 :]
    if how == 4:
        return word + rng.choice(["s", "_", "2", "_x"])
    if how == 5:
        return word.replace("l", "1").replace("o", "0") if any(c in word for c in "lo") else word + "1"
    if how == 6:
        return word[:i] + " " + word[i:]
    if how == 7:
        return rng.choice(["x", "_", "my_"]) + word
    return word.upper() if word != word.upper() else word.lower()


def _key_name(rng: random.Random, old: str) -> str:
    how = rng.random()
    if how < 0.3:
        return _near_miss(rng, old)
    if how < 0.45:
        return rng.choice(keyword.kwlist)
    if how < 0.65:
        return rng.choice(MODULE_NAMES)
    if how < 0.85:
        return rng.choice(SPEC_KEYS)
    return rng.choice(KEY_SNIPPETS)


@mutator("token")
def swap_scalar(rng: random.Random, text: str, ctx: Context) -> str | None:
    spans = _value_spans(text)
    if not spans:
        return None
    return _replace(text, rng.choice(spans), rng.choice(SCALAR_SNIPPETS))


@mutator("token")
def swap_expression(rng: random.Random, text: str, ctx: Context) -> str | None:
    expression = rng.choice(HOSTILE_EXPRESSIONS)
    inside = [m.span() for m in re.finditer(r"\$\{[^}\n]*\}", text)]
    if inside and rng.random() < 0.5:  # replace an expression of the spec, keeping its quotes
        return _replace(text, rng.choice(inside), expression.replace('"', "'"))
    spans = _value_spans(text)
    if not spans:
        return None
    return _replace(text, rng.choice(spans), _quote(rng, expression))


@mutator("token")
def rename_key(rng: random.Random, text: str, ctx: Context) -> str | None:
    spans = _key_spans(text)
    if not spans:
        return None
    span = rng.choice(spans)
    return _replace(text, span, _key_name(rng, text[span[0] : span[1]]))


def _node_lines(lines: list[str]) -> list[int]:
    """Indices of the lines that name a node: keys one level under a ``nodes:`` key."""
    found: list[int] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)nodes:\s*(#.*)?$", line)
        if not m:
            continue
        outer = len(m.group(1))
        indent = None
        for j in range(i + 1, len(lines)):
            body = lines[j].split("#", 1)[0]
            if not body.strip():
                continue
            depth = len(body) - len(body.lstrip(" "))
            if depth <= outer:
                break
            indent = depth if indent is None else indent
            if depth == indent and _KEY_LINE.match(lines[j]):
                found.append(j)
    return found


@mutator("token")
def rename_node(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    candidates = _node_lines(lines)
    if not candidates:
        return None
    i = rng.choice(candidates)
    m = _KEY_LINE.match(lines[i])
    assert m is not None
    old = m.group(2)
    how = rng.random()
    if how < 0.3:
        new = rng.choice(MODULE_NAMES)
    elif how < 0.5:
        new = rng.choice(["def", "None", "True", "class", "lambda", "import", "return", "yield", "match", "case", "_", "__"])
    elif how < 0.7:
        others = [_KEY_LINE.match(lines[j]).group(2) for j in candidates if j != i]  # type: ignore[union-attr]
        new = rng.choice(others + ["C3", "C4", "P3", "P$l"])  # a name already taken, or an input's
    elif how < 0.85:
        new = _near_miss(rng, old)
    else:
        new = rng.choice(["P${l}x", "${l}", "P$", "P${", "P${nope}", "1abc", "a-b", "a.b", "x" * 300, "'P3'", "\u00fcber", "P3\u200b"])
    lines[i] = lines[i][: m.start(2)] + new + lines[i][m.end(2) :]
    return "\n".join(lines)


@mutator("token")
def delete_line(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    if len(lines) < 2:
        return None
    start = rng.randrange(len(lines))
    del lines[start : start + rng.choice([1, 1, 1, 2, 5])]
    return "\n".join(lines)


@mutator("token")
def duplicate_line(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    if not lines:
        return None
    i = rng.randrange(len(lines))
    count = rng.choice([1, 1, 2, 200])
    lines[i:i] = [lines[i]] * count
    return "\n".join(lines)


@mutator("token")
def swap_lines(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    if len(lines) < 2:
        return None
    i, j = rng.sample(range(len(lines)), 2)
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


@mutator("token")
def reindent(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    if not lines:
        return None
    start = rng.randrange(len(lines))
    end = min(len(lines), start + rng.choice([1, 1, 3, 10]))
    shift = rng.choice([-4, -2, -1, 1, 2, 4, 8])
    for i in range(start, end):
        if shift > 0:
            lines[i] = " " * shift + lines[i]
        else:
            lines[i] = lines[i][min(-shift, len(lines[i]) - len(lines[i].lstrip(" "))) :]
    return "\n".join(lines)


LAUGHS = "".join(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}" if i else "lol"] * 10) + "]\n" for i in range(9))


@mutator("token")
def anchor_alias(rng: random.Random, text: str, ctx: Context) -> str | None:
    spans = _value_spans(text)
    how = rng.randrange(7)
    if how == 0 and len(spans) >= 2:  # anchor one value, alias it in another place (before or after)
        a, b = rng.sample(spans, 2)
        first, second = sorted([a, b])
        if rng.random() < 0.5:  # the anchor first: a value used twice
            return text[: first[0]] + "&a " + text[first[0] : second[0]] + "*a" + text[second[1] :]
        return text[: first[0]] + "*a" + text[first[1] : second[0]] + "&a " + text[second[0] :]  # the alias before its anchor
    if how == 1 and spans:
        return _replace(text, rng.choice(spans), rng.choice(["*nope", "*", "&", "&a", "&a *a", "*a\u00fc"]))
    if how == 2 and spans:
        return _replace(text, rng.choice(spans), rng.choice(["&a [*a]", "&a {b: *a}", "&a [1, [2, *a]]"]))
    if how == 3:  # a merge key in some mapping
        lines = text.split("\n")
        keyed = [i for i, line in enumerate(lines) if _KEY_LINE.match(line)]
        if not keyed:
            return None
        i = rng.choice(keyed)
        indent = re.match(r"^\s*", lines[i]).group()  # type: ignore[union-attr]
        lines.insert(i, indent + rng.choice(["<<: *a", "<<: {level: 99}", "<<: [1, 2]", "<<: *nope", "<<: &a {x: 1}"]))
        return "\n".join(lines)
    if how == 4:  # billion laughs, at the top or under a node
        if rng.random() < 0.5:
            return LAUGHS + text
        return LAUGHS + (_replace(text, rng.choice(spans), "*lol8") if spans else text)
    if how == 5:  # a whole node aliased under another name
        lines = text.split("\n")
        nodes = _node_lines(lines)
        if len(nodes) < 1:
            return None
        i = rng.choice(nodes)
        m = _KEY_LINE.match(lines[i])
        assert m is not None
        rest = lines[i][m.end() :]
        indent = m.group(1)
        lines[i] = lines[i][: m.end()] + " &n" + rest
        lines.insert(rng.randint(i + 1, len(lines)), f"{indent}{_near_miss(rng, m.group(2))}: *n")
        return "\n".join(lines)
    if spans:
        return _replace(text, rng.choice(spans), "&" + "a" * rng.choice([1, 300]) + " " + text[slice(*rng.choice(spans))])
    return None


def _include_body(rng: random.Random) -> str:
    ref = rng.choice(INCLUDE_REFS)
    inputs = rng.choice(["[C3]", "[C3, C4]", "[P3, P4, P5]", "[]", "[nope]", "C3"])
    extra = rng.choice(["", "", ", params: {channels: 8}", ", params: {channels: 99999999}", ", params: {nope: 1}", ", params: *a"])
    return "{include: " + _quote(rng, ref) + ", inputs: " + inputs + extra + "}"


@mutator("token")
def insert_include(rng: random.Random, text: str, ctx: Context) -> str | None:
    lines = text.split("\n")
    nodes = _node_lines(lines)
    how = rng.randrange(4)
    if how == 0 and nodes:  # a new node that includes a file
        i = rng.choice(nodes)
        indent = re.match(r"^\s*", lines[i]).group()  # type: ignore[union-attr]
        lines.insert(i, f"{indent}{rng.choice(['evil', 'sub', 'P3', 'forward'])}: {_include_body(rng)}")
        return "\n".join(lines)
    if how == 1 and nodes:  # an existing node's body replaced by an include
        i = rng.choice(nodes)
        m = _KEY_LINE.match(lines[i])
        assert m is not None
        lines[i] = lines[i][: m.end()] + " " + _include_body(rng)
        return "\n".join(lines)
    if how == 2:  # at the top level
        return f"include: {_quote(rng, rng.choice(INCLUDE_REFS))}\n" + text
    spans = _value_spans(text)
    if not spans:
        return None
    return _replace(text, rng.choice(spans), _include_body(rng))


@mutator("token")
def insert_yaml_syntax(rng: random.Random, text: str, ctx: Context) -> str:
    """Document markers, directives, tags and complex keys: YAML that is not plain data."""
    lines = text.split("\n")
    i = rng.randint(0, len(lines))
    snippet = rng.choice(
        [
            "---", "...", "--- !!map", "%YAML 1.2", "%YAML 1.1\n---", "%TAG ! tag:example.com,2000:", "? [a, b]\n: c", "? a", "!!python/object/apply:os.system ['true']: x",
            "x: !!python/object/apply:os.system ['true']", "x: !!python/object/new:object {}", "x: !!binary aGVsbG8=", "x: !!set {a, b}", "x: !!omap [a: 1]", "x: 2001-12-14", "nodes: !!seq [1]",
            "- a", "'", '"', "{", "[", "&a", "*a", "|", "@x", "`x`", "%",
        ]
    )
    lines.insert(i, snippet)
    return "\n".join(lines)


# structure level: on the tree yaml.safe_load gives


def _paths(tree: Any, limit: int = 20000) -> list[tuple]:
    """Paths of the tree's values (mapping keys and list indices), the root included, at most
    ``limit``; iterative, so a deeply nested tree does not recurse."""
    out: list[tuple] = []
    stack: list[tuple[tuple, Any]] = [((), tree)]
    while stack and len(out) < limit:
        path, value = stack.pop()
        out.append(path)
        if len(path) > 80:
            continue
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value[:200]))
    return out


def _get(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _set(tree: Any, path: tuple, value: Any) -> Any:
    """``tree`` with ``path`` set to ``value`` (the new root when ``path`` is empty)."""
    if not path:
        return value
    _get(tree, path[:-1])[path[-1]] = value
    return tree


def _pick(rng: random.Random, tree: Any, kind: type | tuple[type, ...] | None = None, root: bool = False) -> tuple | None:
    paths = [p for p in _paths(tree) if (root or p) and (kind is None or isinstance(_get(tree, p), kind))]
    return rng.choice(paths) if paths else None


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.12:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and roll < 0.24:
        return {rng.choice(SPEC_KEYS + MODULE_NAMES): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return copy.copy(rng.choice(PY_VALUES))


def _random_key(rng: random.Random, old: Any) -> Any:
    if rng.random() < 0.1:
        return rng.choice([1, -1, 1.5, True, None, 2**70])  # keys that are not strings
    return _key_name(rng, str(old)).strip("'") if rng.random() < 0.9 else rng.choice(["", "<<", "a.b", "P$l", "x" * 300])


@mutator("structure")
def drop_key(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree)
    if path is None:
        return None
    del _get(tree, path[:-1])[path[-1]]
    return tree


@mutator("structure")
def duplicate_key(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree)
    if path is None:
        return None
    parent = _get(tree, path[:-1])
    if isinstance(parent, dict):
        parent[_random_key(rng, path[-1])] = copy.deepcopy(parent[path[-1]])
    else:
        parent.insert(path[-1], copy.deepcopy(parent[path[-1]]))
    return tree


@mutator("structure")
def rename_tree_key(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree)
    if path is None or not isinstance(_get(tree, path[:-1]), dict):
        return None
    parent = _get(tree, path[:-1])
    parent[_random_key(rng, path[-1])] = parent.pop(path[-1])
    return tree


@mutator("structure")
def replace_value(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree, root=rng.random() < 0.03)
    if path is None:
        return None
    return _set(tree, path, random_value(rng))


@mutator("structure")
def nest_deeply(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree)
    if path is None:
        return None
    value = _get(tree, path)
    for _ in range(rng.choice([2, 10, 40, 63, 64, 65, 100])):
        value = [value] if rng.random() < 0.5 else {rng.choice(["a", "from", "post", "nodes"]): value}
    return _set(tree, path, value)


@mutator("structure")
def huge_list(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree, list) if rng.random() < 0.7 else _pick(rng, tree)
    if path is None:
        return None
    value = _get(tree, path)
    n = int(10 ** rng.uniform(2, 4.7))  # 100 .. 50000
    how = rng.randrange(3)
    if how == 0 and isinstance(value, list) and value:
        new: Any = [copy.deepcopy(rng.choice(value)) for _ in range(n)]
    elif how == 1:
        new = list(range(n))
    else:
        new = [value] * n
    return _set(tree, path, new)


@mutator("structure")
def swap_subtree(rng: random.Random, tree: Any, ctx: Context) -> Any:
    other_name = rng.choice(sorted(ctx.trees))
    other = ctx.trees[other_name]
    if rng.random() < 0.5 and isinstance(tree, dict):  # the same section from another spec: often valid, and odd
        key = rng.choice(["nodes", "params", "inputs", "outputs", "defaults", "example"])
        if key not in other:
            return None
        tree[key] = copy.deepcopy(other[key])
        return tree
    path = _pick(rng, tree)
    source = _pick(rng, other, root=False)
    if path is None or source is None:
        return None
    return _set(tree, path, copy.deepcopy(_get(other, source)))


@mutator("structure")
def confuse_type(rng: random.Random, tree: Any, ctx: Context) -> Any:
    path = _pick(rng, tree, (str, int, float, bool, type(None)))
    if path is None:
        return None
    value = _get(tree, path)
    options: list[Any] = [[value], {"value": value}, str(value), None]
    if isinstance(value, str):
        options += [value.encode("utf-8", "surrogatepass").hex(), value * 2, value.upper(), value + "$"]
        if value.lstrip("-").isdigit():
            options.append(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        options += [float(value), -value, value * 1000, bool(value)]
    return _set(tree, path, rng.choice(options))


EXTREME_INTS = [0, -1, 1, 2, 17, 33, 64, 1000, 1001, 4096, 4097, 10000, 65536, 65537, 2**31, 2**63, 10**20, 10**100, -(2**63)]


@mutator("structure")
def extreme_number(rng: random.Random, tree: Any, ctx: Context) -> Any:
    paths = [p for p in _paths(tree) if p and isinstance(_get(tree, p), (int, float)) and not isinstance(_get(tree, p), bool)]
    if not paths:
        return None
    return _set(tree, rng.choice(paths), rng.choice(EXTREME_INTS + [float("nan"), float("inf"), 1e-320, 0.5, 1e308]))


@mutator("structure")
def param_default(rng: random.Random, tree: Any, ctx: Context) -> Any:
    """A declared parameter's default set to another value: the values the checker must range-check."""
    params = tree.get("params") if isinstance(tree, dict) else None
    if not isinstance(params, dict) or not params:
        return None
    name = rng.choice(sorted(params, key=str))
    value = rng.choice(EXTREME_INTS) if rng.random() < 0.6 else random_value(rng)
    if isinstance(params[name], dict) and "default" in params[name]:
        params[name]["default"] = value
        if rng.random() < 0.2:  # and sometimes its bounds
            params[name][rng.choice(["min", "max", "type", "choices"])] = random_value(rng)
    else:
        params[name] = value
    return tree


ACTIVATIONS = ["none", "relu", "silu", "gelu", "leaky_relu", "hardswish", "mish", "relu6", "identity", "sigmoid", "tanh", None]


def plausible_value(rng: random.Random, decl: Any) -> Any:
    """A value a user could well choose for a declared parameter: one of its choices, the other
    boolean, a small number within its bounds, an activation name; the valid space, where a neck
    that compiles and then fails on its own example inputs hides."""
    if not isinstance(decl, dict):
        return decl
    if decl.get("choices"):
        return rng.choice(list(decl["choices"]))
    types = decl.get("type")
    types = types if isinstance(types, list) else [types]
    low = decl.get("min") if isinstance(decl.get("min"), (int, float)) else None
    high = decl.get("max") if isinstance(decl.get("max"), (int, float)) else None
    if "bool" in types:
        return rng.choice([True, False, None] if "null" in types else [True, False])
    if "int" in types:
        pool = [v for v in (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 24, 32, 48, 64) if (low is None or v >= low) and (high is None or v <= high)]
        return rng.choice(pool or [low if low is not None else 1])
    if "float" in types:
        a = low if low is not None else 0.0
        b = high if high is not None else a + 2.0
        return round(rng.uniform(a, b), 4) or (b + a) / 2
    return rng.choice(ACTIVATIONS)


@mutator("structure", weight=4.0)
def param_choice(rng: random.Random, tree: Any, ctx: Context) -> Any:
    """One to three declared parameters set to plausible values (see :func:`plausible_value`)."""
    params = tree.get("params") if isinstance(tree, dict) else None
    declared = [name for name, decl in (params or {}).items() if isinstance(decl, dict) and "default" in decl] if isinstance(params, dict) else []
    if not declared:
        return None
    for name in rng.sample(declared, min(len(declared), rng.randint(1, 3))):
        params[name]["default"] = plausible_value(rng, params[name])
    return tree


@mutator("structure")
def example_sizes(rng: random.Random, tree: Any, ctx: Context) -> Any:
    """The example's widths and image: what compile builds and the forward runs."""
    if not isinstance(tree, dict):
        return None
    example = tree.get("example")
    if not isinstance(example, dict):
        example = tree["example"] = {}
    if rng.random() < 0.5:
        count = len(example.get("in_channels") or [1, 2, 3]) if isinstance(example.get("in_channels"), list) else 3
        pool = [1, 3, 8, 17, 64, 255, 256, 4096, 4097, 65536, 65537, 0, -8, 10**9]
        example["in_channels"] = [rng.choice(pool) for _ in range(rng.choice([count, count, count - 1, count + 1, 0, 20]))]
    else:
        example["image"] = rng.choice([1, 2, 7, 31, 32, 33, 127, 1023, 1024, 1025, 4096, 16384, 16385, 0, -1, [64, 4096], [1, 1], [8192, 8192], "512", 512.0, None])
    return tree


@mutator("structure")
def node_field(rng: random.Random, tree: Any, ctx: Context) -> Any:
    """One field of one node set to a random value, or an unknown field added."""
    nodes = tree.get("nodes") if isinstance(tree, dict) else None
    if not isinstance(nodes, dict) or not nodes:
        return None
    name = rng.choice(sorted(nodes, key=str))
    body = nodes[name]
    if not isinstance(body, dict):
        return None
    key = rng.choice(["from", "level", "channels", "post", "pre", "fuse", "resample", "foreach", "when", "repeat", "share", "inputs", "outputs", "include", "nope", "optional"])
    body[key] = random_value(rng) if rng.random() < 0.7 else copy.deepcopy(rng.choice(list(body.values()) or [None]))
    return tree


# api level: the arguments the spec is checked with


def _declared(ctx: Context) -> list[str]:
    params = ctx.trees[ctx.spec].get("params") or {}
    return sorted(params) + ["num_inputs", "in_channels", "nope", "channels"]


@mutator("api")
def api_params(rng: random.Random, raw: bytes, ctx: Context) -> bool:
    declared = ctx.trees[ctx.spec].get("params") or {}
    for _ in range(rng.randint(1, 2)):
        name = rng.choice(_declared(ctx))
        roll = rng.random()
        if roll < 0.4 and name in declared:
            ctx.params[name] = plausible_value(rng, declared[name])
        else:
            ctx.params[name] = rng.choice(EXTREME_INTS) if roll < 0.7 else random_value(rng)
    return True


@mutator("api")
def api_in_channels(rng: random.Random, raw: bytes, ctx: Context) -> bool:
    ctx.in_channels = rng.choice([[8], [8, 8], [8, 16, 32], [8, 16, 32, 64], [8] * 20, [0, 8, 8], [-1], [65537, 8], [2**40], "8,16", 8, {"C3": 8, "x": 2}, [8.0, 16.0], [True], []])
    return True


@mutator("api")
def api_image(rng: random.Random, raw: bytes, ctx: Context) -> bool:
    ctx.image = rng.choice([1, 31, 33, 64, 100, (64, 96), (1, 1024), 16384, 16385, 0, -1, (0, 5), "512", 512.0, (64,), [64, 64, 64], True])
    return True


# -- running one case ---------------------------------------------------------------------------------


@dataclass
class Failure:
    kind: str  # other_exception, memory, hang, forward_error, forward_input_error, forward_shape, bad_spec_error, leak, cli_*
    phase: str
    signature: str
    message: str
    detail: str = ""


@dataclass
class CaseResult:
    index: int
    spec: str
    mutations: list[str]
    form: str
    size: int
    outcome: str = ""  # valid, spec_error, compile_spec_error (validate passed, compile refused), hang, large_timeout (a large neck stopped at --hang while building), other_exception
    api_s: float = 0.0  # validate + compile
    validate_s: float = 0.0
    compile_s: float = 0.0
    params: int = 0  # the compiled neck's parameters
    weights: int = 0  # the validator's estimate of them (Op.weight_estimate), known before compiling
    forward_s: float = 0.0
    cli: list[dict[str, Any]] = field(default_factory=list)
    forward: str = ""  # "", run, reduced, skipped-huge, retried-at-example
    nonfinite: bool = False
    failures: list[Failure] = field(default_factory=list)
    slow: bool = False
    issue_count: int = 0

    @property
    def case_s(self) -> float:
        return self.api_s + sum(c["s"] for c in self.cli if not c["subprocess"])


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (between bytecodes: a long
    call into C returns first)."""

    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _signature(kind: str, exc: BaseException) -> str:
    """``kind: Type at file:line (function)`` of the innermost pyramidgraph frame (else the innermost)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "pyramidgraph" in f.filename and "fuzz_campaign" not in f.filename]
    frame = (ours or frames or [None])[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})" if frame else "?"
    return f"{kind}: {type(exc).__name__} at {where}"


def _is_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "DefaultCPUAllocator" in str(exc)))


def _exception_failure(phase: str, exc: BaseException) -> Failure:
    kind = "memory" if _is_memory(exc) else "other_exception"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(kind, phase, _signature(kind, exc), f"{type(exc).__name__}: {str(exc)[:500]}", text[-6000:])


class Secrets:
    """Text that must never reach a message: the canary in the environment, /etc/passwd's first line."""

    def __init__(self) -> None:
        self.strings = [CANARY]
        try:
            first = Path("/etc/passwd").read_text(encoding="utf-8", errors="replace").splitlines()[0]
            if len(first) > 8:
                self.strings.append(first)
        except (OSError, IndexError):
            pass

    def found(self, text: str, source: bytes) -> str | None:
        for secret in self.strings:
            if secret in text and secret.encode() not in source:
                return secret
        return None


def _check_spec_error(exc: SpecError, result: CaseResult, phase: str, secrets: Secrets, source: bytes) -> None:
    problems = []
    if not exc.issues:
        problems.append("no issues")
    for issue in exc.issues:
        if not (isinstance(issue.file, str) and isinstance(issue.path, str) and isinstance(issue.message, str) and issue.message.strip()):
            problems.append(f"issue fields are not strings: {issue!r}"[:300])
        if not (isinstance(issue.line, int) and isinstance(issue.col, int) and issue.line >= 0 and issue.col >= 0):
            problems.append(f"issue position is not two non-negative ints: {issue!r}"[:300])
    try:
        text = str(exc)
    except Exception as err:  # formatting must never fail
        problems.append(f"str(SpecError) raised {type(err).__name__}: {err}")
        text = ""
    leaked = secrets.found(text, source)
    if leaked:
        result.failures.append(Failure("leak", phase, f"leak: SpecError quotes {leaked[:20]!r}", text[:500]))
    if problems:
        result.failures.append(Failure("bad_spec_error", phase, f"bad_spec_error: {problems[0][:80]}", "; ".join(problems)[:1000]))
    result.issue_count = len(exc.issues)


def _forward_image(neck: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the example image, the image the forward runs at).

    Along each side, whether a neck's maps line up depends only on the image size modulo its
    coarsest stride (see :mod:`pyramidgraph.contract`), so the forward runs at the smallest size
    of the example's residue class that is at least one coarsest stride, or about 128: the same
    shapes' behaviour, a fraction of the arithmetic."""
    image = neck.info.image or (256, 256)
    if isinstance(image, int):
        image = (image, image)
    unit = max([shape.stride for _, shape in neck.info.inputs] + list(neck.strides) + [1])

    def smaller(side: int) -> int:
        rest = side % unit
        target = min(side, max(unit, 128))
        return min(side, rest + unit * max(1, (target - rest) // unit))

    return image, (smaller(image[0]), smaller(image[1]))


def _volume(neck: Any, image: tuple[int, int]) -> int:
    return sum(shape.channels * -(-image[0] // shape.stride) * -(-image[1] // shape.stride) for _, shape in neck.info.inputs)


def _run_forward(neck: Any, result: CaseResult, budget: int) -> None:
    """The neck on its example inputs at the reduced image; again at the example image when it
    refuses the reduced one (and the example's inputs hold at most ``budget`` values)."""
    import torch

    widths = [shape.channels for _, shape in neck.info.inputs]
    example, image = _forward_image(neck)
    if max(widths + [0]) > HUGE_WIDTH or max(example) > HUGE_IMAGE:
        result.forward = "skipped-huge"
        return
    neck.eval()
    attempts = [image] + ([example] if image != example and _volume(neck, example) <= budget else [])
    for attempt in attempts:
        inputs = neck.example_inputs(batch=1, image=attempt)
        try:
            with torch.no_grad():
                outputs = neck(inputs)
        except NeckInputError as exc:
            if attempt != attempts[-1]:
                continue  # the reduced size is not one this neck takes; the example's must be
            if attempt != example:
                result.forward = "refused-reduced"  # the example's inputs are too big to try; not a verdict
                return
            result.failures.append(Failure("forward_input_error", "forward", _signature("forward_input_error", exc), f"NeckInputError on the example inputs {[tuple(x.shape) for x in inputs]}: {exc}"[:800]))
            return
        except CaseTimeout:
            raise
        except Exception as exc:
            failure = _exception_failure("forward", exc)
            if failure.kind == "other_exception":
                failure = Failure("forward_error", "forward", _signature("forward_error", exc), f"at image {attempt}: {failure.message}", failure.detail)
            result.failures.append(failure)
            return
        result.forward = ("run" if attempt == example else "reduced") if attempt == attempts[0] else "retried-at-example"
        values = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
        declared = [shape.channels for _, shape in neck.info.outputs]
        got = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values]
        if len(values) != len(declared) or any(not isinstance(v, torch.Tensor) or v.dim() != 4 or v.shape[0] != 1 or v.shape[1] != c for v, c in zip(values, declared)):
            result.failures.append(Failure("forward_shape", "forward", "forward_shape: outputs differ from the declared widths", f"declared widths {declared}, got {got}"))
        result.nonfinite = any(isinstance(v, torch.Tensor) and not bool(torch.isfinite(v).all()) for v in values)
        return


def run_api(source: Any, ctx: Context, include_dirs: list[str], result: CaseResult, cfg: Config, secrets: Secrets, raw: bytes) -> None:
    kwargs: dict[str, Any] = {"image": ctx.image, "params": dict(ctx.params), "include_dirs": include_dirs}
    start = time.perf_counter()
    neck = None
    try:
        with deadline(cfg.hang):
            try:
                if ctx.params:
                    analysis = pyramidgraph.analyze(source, ctx.in_channels, **kwargs)
                else:
                    analysis = pyramidgraph.validate(source, ctx.in_channels, image=ctx.image, include_dirs=include_dirs)
                result.weights = estimated_parameters(analysis.ir.ops)
            except SpecError as exc:
                result.outcome = "spec_error"
                _check_spec_error(exc, result, "validate", secrets, raw)
                return
            finally:
                result.validate_s = time.perf_counter() - start
            try:
                neck = pyramidgraph.compile(source, ctx.in_channels, **kwargs)
            except SpecError as exc:
                result.outcome = "compile_spec_error"
                _check_spec_error(exc, result, "compile", secrets, raw)
                return
            finally:
                result.compile_s = time.perf_counter() - start - result.validate_s
            result.outcome = "valid"
            result.params = sum(p.numel() for p in neck.parameters())
    except CaseTimeout:
        if result.weights > cfg.large_params:  # validated, and building its weights ran out of time: torch's work (see _slow_mark)
            result.outcome = "large_timeout"
            return
        result.outcome = "hang"
        result.failures.append(Failure("hang", "api", f"hang: api over {cfg.hang:g} s", f"validate/compile did not finish in {cfg.hang:g} s"))
        return
    except Exception as exc:
        result.outcome = "other_exception"
        result.failures.append(_exception_failure("api", exc))
        return
    finally:
        result.api_s = time.perf_counter() - start
    if cfg.forward:
        start = time.perf_counter()
        try:
            with deadline(3 * cfg.hang):  # a retry at the example image is the model's own arithmetic
                _run_forward(neck, result, cfg.forward_elements)
        except CaseTimeout:
            result.failures.append(Failure("hang", "forward", f"hang: forward over {3 * cfg.hang:g} s", f"the forward pass did not finish in {3 * cfg.hang:g} s"))
        finally:
            result.forward_s = time.perf_counter() - start
    del neck


# -- the CLI -----------------------------------------------------------------------------------------

_ISSUE_LINE = re.compile(r"^(?P<file>\S.*?)(?::(?P<line>\d+):(?P<col>\d+))?: (?P<path>\S.*?): (?P<message>\S.*)$")


def _allowed_files(case_file: Path) -> tuple[str, ...]:
    spec_dir = Path(pyramidgraph.__file__).parent / "specs"
    return (str(case_file.parent), str(case_file.parent.resolve()), str(spec_dir), str(spec_dir.resolve()))


def check_stderr(err: str, rc: int | None, case_file: Path) -> list[str]:
    """What is wrong with a CLI run's stderr: tracebacks and lines of neither shape."""
    problems = []
    if "Traceback" in err:
        problems.append("Traceback in stderr")
    allowed = _allowed_files(case_file)
    lines = [line for line in err.splitlines() if line and not line.startswith((" ", "\t"))]
    for line in lines:
        if line.startswith("pyramidgraph render: "):
            continue
        m = _ISSUE_LINE.match(line)
        if m is None or not (m.group("file") == "<command line>" or m.group("file").startswith(allowed)):
            problems.append(f"stderr line not file:line:col: path: message: {line[:300]!r}")
    if rc == 2 and not lines:
        problems.append("exit 2 with no issue line on stderr")
    if rc == 0 and any(not line.startswith("pyramidgraph render: warning:") for line in lines):
        problems.append("exit 0 with issue lines on stderr")
    return problems


def run_cli_inprocess(argv: list[str], hang: float) -> dict[str, Any]:
    from pyramidgraph.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    rc: Any = None
    error = None
    try:
        with deadline(hang), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:  # argparse: never for these arguments
                rc = exc.code
    except CaseTimeout:
        error = "hang"
    except Exception as exc:
        error = exc
    return {"argv": argv, "rc": rc, "out": out.getvalue(), "err": err.getvalue(), "error": error, "s": time.perf_counter() - start, "subprocess": False}


def _subprocess_exe(turn: int) -> list[str]:
    script = Path(sys.executable).with_name("pyramidgraph")
    found = str(script) if script.is_file() else shutil.which("pyramidgraph")
    if found and turn % 2 == 0:
        return [found]
    return [sys.executable, "-m", "pyramidgraph.cli"]


def run_cli_subprocess(argv: list[str], hang: float, turn: int) -> dict[str, Any]:
    env = dict(os.environ, NO_COLOR="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    exe = _subprocess_exe(turn)
    start = time.perf_counter()
    try:
        done = subprocess.run(exe + argv, capture_output=True, text=True, errors="replace", timeout=hang + 30, env=env, stdin=subprocess.DEVNULL)
        rc, out, err, error = done.returncode, done.stdout, done.stderr, None
    except subprocess.TimeoutExpired as exc:
        rc, out, err, error = None, "", str(exc.stderr or ""), "hang"
    return {"argv": argv, "exe": exe, "rc": rc, "out": out, "err": err, "error": error, "s": time.perf_counter() - start, "subprocess": True}


def _cli_failures(run: dict[str, Any], case_file: Path, cfg: Config, secrets: Secrets, source: bytes, large: bool = False) -> list[Failure]:
    """What is wrong with one CLI run; ``large``: the neck is over ``cfg.large_params``, so running
    out of time building it is not a hang (see :func:`_slow_mark`)."""
    where = ("subprocess " if run["subprocess"] else "") + " ".join(run["argv"][:1])
    error = run["error"]
    if error == "hang" and large:
        return []
    if error == "hang":
        return [Failure("hang", f"cli {where}", f"hang: cli {run['argv'][0]} over {cfg.hang:g} s", " ".join(run["argv"]))]
    if isinstance(error, BaseException):
        failure = _exception_failure(f"cli {where}", error)
        return [Failure("cli_traceback", failure.phase, "cli_traceback: " + failure.signature.split(": ", 1)[1], failure.message, failure.detail)]
    failures = []
    if "Traceback" in run["err"]:  # one failure, whatever else is wrong with that output
        signature = f"cli_traceback: {run['argv'][0]}: {_traceback_tail(run['err'])}"
        failures.append(Failure("cli_traceback", f"cli {where}", signature, f"exit {run['rc']}, traceback in stderr", run["err"][-4000:]))
    else:
        if run["rc"] not in (0, 2):
            failures.append(Failure("cli_exit", f"cli {where}", f"cli_exit: {run['argv'][0]} exited {run['rc']}", run["err"][-3000:]))
        for problem in check_stderr(run["err"], run["rc"], case_file):
            signature = f"cli_format: {run['argv'][0]}: " + re.sub(r"'.*", "", problem)
            failures.append(Failure("cli_format", f"cli {where}", signature, problem, run["err"][-4000:]))
    limit = max(1 << 20, 100 * len(source))
    if len(run["err"]) > limit:  # quoting a long source line under each of thousands of issues
        failures.append(Failure("cli_output", f"cli {where}", f"cli_output: {run['argv'][0]} stderr over 100x the spec", f"{len(run['err'])} bytes of stderr for a {len(source)}-byte spec"))
    leaked = secrets.found(run["out"] + run["err"], source)
    if leaked:
        failures.append(Failure("leak", f"cli {where}", f"leak: cli {run['argv'][0]} prints {leaked[:20]!r}", run["err"][:500]))
    return failures


def _issue_lines(err: str) -> list[str]:
    """The issue lines of stderr, without the quoted YAML under them."""
    return [line for line in err.splitlines() if line and not line.startswith((" ", "\t"))]


def _traceback_tail(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    frames = [line.strip() for line in lines if line.strip().startswith("File ") and "pyramidgraph" in line]
    last = lines[-1] if lines else ""
    return f"{last.split(':')[0]} at {frames[-1] if frames else '?'}"[:200]


def _slow_mark(result: CaseResult, cfg: Config) -> None:
    """Slow: validate + compile, or one in-process CLI command, over ``cfg.timeout``; the failure
    says which part, and how many parameters the neck had. A neck the validator estimates at
    more than ``cfg.large_params`` parameters is exempt (counted as ``large``): building and
    initialising its weights is torch's work, proportional to their number and allowed by the
    weight limit, and no bundled spec's defaults come near it (fpg, the largest: 41.6M)."""
    if result.weights > cfg.large_params:
        return
    if result.api_s > cfg.timeout and result.outcome != "hang":
        part = "validate" if result.validate_s > result.compile_s or not result.compile_s else "compile"
        size = f", {result.params / 1e6:.1f}M parameters" if result.params else ""
        message = f"validate {result.validate_s:.2f} s + compile {result.compile_s:.2f} s{size} ({result.outcome})"
        result.failures.append(Failure("slow", "api", f"slow: {part} over {cfg.timeout:g} s", message))
    for c in result.cli:
        if not c["subprocess"] and c["s"] > cfg.timeout and c["error"] != "hang":
            result.failures.append(Failure("slow", f"cli {c['argv'][0]}", f"slow: cli {c['argv'][0]} over {cfg.timeout:g} s", f"{c['s']:.2f} s, exit {c['rc']}"))
    result.slow = any(f.kind == "slow" for f in result.failures)


# -- the campaign --------------------------------------------------------------------------------------


@dataclass
class Config:
    cases: int = 2000
    seed: int = 0
    start: int = 0
    cli_every: int = 10
    subprocess_every: int = 100
    timeout: float = 2.0
    large_params: int = 50_000_000
    hang: float = 10.0
    forward: bool = True
    forward_elements: int = 16_000_000
    memory_gb: float = 8.0
    save_dir: str = "/tmp/pyramidgraph-fuzz"
    save_per_signature: int = 3
    threads: int = 1
    progress: int = 500
    minimize: bool = False
    verbose: bool = False
    warm_up: str = "all"  # all: every bundled spec through every step first; light: one small spec (imports only)


class Campaign:
    """The state a run keeps: the bundled specs, the folder cases are written to, the tallies."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.paths = pyramidgraph.bundled_specs()
        self.names = sorted(self.paths)
        self.raw = {name: path.read_bytes() for name, path in self.paths.items()}
        self.trees = {name: yaml.load(raw, Loader=_LOADER) for name, raw in self.raw.items()}
        self.secrets = Secrets()
        self.workdir = Path(tempfile.mkdtemp(prefix="pyramidgraph-fuzz-work-"))
        self.case_dir = self.workdir / "specs"
        self._make_case_dir()
        self.results: list[CaseResult] = []
        self.harness_errors: list[str] = []
        self.saved: dict[str, int] = {}
        self.inputs: dict[int, tuple[bytes, str, Any, Context]] = {}  # case -> (raw, form, tree, ctx), for failing cases

    def _make_case_dir(self) -> None:
        """Beside the case file: the things a hostile include names (a FIFO, /dev/zero, a folder,
        a link loop, a link out of the folder, a file over the size limit, bytes that are not UTF-8)
        and one spec that includes fine."""
        d = self.case_dir
        d.mkdir()
        os.mkfifo(d / "fifo.yaml")
        os.symlink("/dev/zero", d / "zero.yaml")
        (d / "dir.yaml").mkdir()
        os.symlink(d / "loop.yaml", d / "loop.yaml")
        os.symlink("/etc/passwd", d / "passwd.yaml")
        (d / "big.yaml").write_bytes(b"x: " + b"y" * (2 << 20) + b"\n")
        (d / "bad.yaml").write_bytes(b"pyramidgraph: 1\nname: \xff\xfe\n")
        (d / "ok.yaml").write_text(INNER_SPEC, encoding="utf-8")

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # making a case

    def make_case(self, index: int) -> tuple[bytes, str, Any, Context, list[str]]:
        """The case's input: (bytes, form, tree for the dict form, context, mutations applied)."""
        rng = random.Random(f"pyramidgraph-fuzz:{self.cfg.seed}:{index}")
        spec = self.names[index % len(self.names)]
        ctx = Context(spec, self.trees)
        raw = self.raw[spec]
        tree: Any = None  # the mutated tree while the last mutation was structural
        applied: list[str] = []
        by_level: dict[str, list[Mutator]] = {}
        for m in MUTATORS.values():
            by_level.setdefault(m.level, []).append(m)
        levels = sorted(by_level)
        weights = [LEVEL_WEIGHTS[level] for level in levels]
        for _ in range(rng.randint(1, 3)):
            for _attempt in range(8):
                pool = by_level[rng.choices(levels, weights)[0]]
                chosen = rng.choices(pool, [m.weight for m in pool])[0]
                out = self._apply(chosen, rng, raw, tree, ctx)
                if out is not None:
                    raw, tree = out
                    applied.append(chosen.name)
                    break
        roll = rng.random()
        if tree is not None and roll < 0.3:
            form = "dict" if isinstance(tree, dict) else "text"
        else:
            form = rng.choices(["text", "bytes", "path"], [0.4, 0.2, 0.4])[0]
        return raw, form, tree, ctx, applied

    def _apply(self, m: Mutator, rng: random.Random, raw: bytes, tree: Any, ctx: Context) -> tuple[bytes, Any] | None:
        if m.level == "byte":
            new = m.fn(rng, raw, ctx)
            return None if new is None else (new, None)
        if m.level == "token":
            new = m.fn(rng, _text(raw), ctx)
            return None if new is None else (_bytes(new), None)
        if m.level == "api":
            m.fn(rng, raw, ctx)
            return raw, tree
        if tree is None:
            if len(raw) > 300_000:
                return None
            try:
                tree = yaml.load(raw, Loader=_LOADER)
            except Exception:  # unparsable after an earlier mutation: a structure mutation does not apply
                return None
            if not isinstance(tree, (dict, list)) or _shares(tree):
                return None
        try:
            tree = m.fn(rng, tree, ctx)
            if tree is None:
                return None
            unicode = rng.random() < 0.5
            style = {"sort_keys": False, "default_flow_style": rng.choice([False, None]), "width": rng.choice([80, 10**6])}
            try:
                text = yaml.dump(tree, Dumper=_DUMPER, allow_unicode=unicode, **style)
            except UnicodeEncodeError:  # a lone surrogate: libyaml cannot write it, the Python emitter escapes it
                text = yaml.dump(tree, Dumper=yaml.SafeDumper, allow_unicode=False, **style)
        except RecursionError:
            return None
        return _bytes(text), tree

    # running a case

    def run_case(self, index: int) -> CaseResult:
        cfg = self.cfg
        raw, form, tree, ctx, applied = self.make_case(index)
        result = CaseResult(index, ctx.spec, applied, form, len(raw))
        self.check(raw, form, tree, ctx, result, cli=self._cli_plan(index))
        _slow_mark(result, cfg)
        if result.failures or result.slow:
            self.inputs[index] = (raw, form, tree, ctx)
            self._save(result, raw, tree, ctx)
        return result

    def _cli_plan(self, index: int) -> list[tuple[tuple[str, ...], bool, int]]:
        """(command, as a subprocess too, turn) for this case."""
        plan = []
        if self.cfg.cli_every and index % self.cfg.cli_every == 0:
            command = CLI_COMMANDS[(index // self.cfg.cli_every) % len(CLI_COMMANDS)]
            plan.append((command, False, 0))
        if self.cfg.subprocess_every and index % self.cfg.subprocess_every == 0:
            turn = index // self.cfg.subprocess_every
            command = CLI_COMMANDS[turn % len(CLI_COMMANDS)]
            plan = [p for p in plan if p[0] != command] + [(command, True, turn)]
        return plan

    def case_file(self) -> Path:
        return self.case_dir / "case.yaml"

    def check(self, raw: bytes, form: str, tree: Any, ctx: Context, result: CaseResult, cli: list[tuple[tuple[str, ...], bool, int]]) -> None:
        path = self.case_file()
        path.write_bytes(raw)
        include_dirs: list[str] = []
        if form == "path":
            source: Any = str(path)
        elif form == "dict":
            source = tree
        elif form == "text":
            try:
                source = raw.decode("utf-8")
            except UnicodeDecodeError:
                source, result.form = raw, "bytes"
        else:
            source = raw
        if form in ("text", "bytes", "dict") and (result.index % 2 == 0):
            include_dirs = [str(self.case_dir)]
        run_api(source, ctx, include_dirs, result, self.cfg, self.secrets, raw)
        if result.index % 50 == 0:
            gc.collect()  # compiled necks hold their weights until collected
        for command, also_subprocess, turn in cli:
            argv = [command[0], str(path), *command[1:]]
            mine = run_cli_inprocess(argv, self.cfg.hang)
            result.cli.append(mine)
            result.failures += _cli_failures(mine, path, self.cfg, self.secrets, raw, result.weights > self.cfg.large_params)
            if form == "path" and not ctx.params and ctx.in_channels is None and ctx.image is None and mine["error"] is None:
                self._agree(command[0], mine, result)
            if also_subprocess:
                theirs = run_cli_subprocess(argv, self.cfg.hang, turn)
                result.cli.append(theirs)
                result.failures += _cli_failures(theirs, path, self.cfg, self.secrets, raw, result.weights > self.cfg.large_params)
                if mine["error"] is None and theirs["error"] is None and (mine["rc"], _issue_lines(mine["err"])) != (theirs["rc"], _issue_lines(theirs["err"])):
                    detail = f"in-process rc {mine['rc']}:\n{mine['err'][-2000:]}\nsubprocess {theirs['exe']} rc {theirs['rc']}:\n{theirs['err'][-2000:]}"
                    result.failures.append(Failure("cli_mismatch", f"cli subprocess {command[0]}", f"cli_mismatch: {command[0]} subprocess differs from in-process", "exit status or issue lines differ", detail))

    def _agree(self, command: str, run: dict[str, Any], result: CaseResult) -> None:
        """The CLI on the same file says what the API said (validate and compile; info and render
        also compile or draw, and may refuse what validate passed only for their own reasons)."""
        if result.outcome not in ("valid", "spec_error", "compile_spec_error") or command not in ("validate", "compile"):
            return
        api_ok = result.outcome == "valid" or (command == "validate" and result.outcome == "compile_spec_error")
        if (run["rc"] == 0) != api_ok:
            result.failures.append(Failure("cli_api_disagree", f"cli {command}", f"cli_api_disagree: {command} exits {run['rc']}, the API gave {result.outcome}", run["err"][-2000:]))

    def _save(self, result: CaseResult, raw: bytes, tree: Any, ctx: Context) -> None:
        kinds = [f.signature for f in result.failures] or ["slow"]
        for signature in dict.fromkeys(kinds):
            count = self.saved.get(signature, 0)
            self.saved[signature] = count + 1
            if count >= self.cfg.save_per_signature:
                continue
            folder = Path(self.cfg.save_dir) / re.sub(r"[^\w.-]+", "_", signature)[:120]
            folder.mkdir(parents=True, exist_ok=True)
            stem = folder / f"case{result.index:06d}-{result.spec}"
            stem.with_suffix(".yaml").write_bytes(raw)
            lines = [
                f"case {result.index} (seed {self.cfg.seed}; replay: python3 benchmarks/fuzz_campaign.py --seed {self.cfg.seed} --case {result.index})",
                f"spec {result.spec}, mutations {result.mutations}, given as {result.form}, {len(raw)} bytes",
                f"params={ctx.params!r} in_channels={ctx.in_channels!r} image={ctx.image!r}"[:2000],
                f"outcome {result.outcome}, api {result.api_s:.3f} s, forward {result.forward_s:.3f} s ({result.forward}), cli {[(c['argv'][0], c['rc'], round(c['s'], 3)) for c in result.cli]}",
                "",
            ]
            for f in result.failures:
                lines += [f"== {f.signature} [{f.phase}]", f.message, f.detail, ""]
            stem.with_suffix(".txt").write_text("\n".join(lines), encoding="utf-8", errors="replace")

    # the whole run

    def warm_up(self) -> None:
        """Every bundled spec, unmutated, through every step once: imports and first-call costs
        are not charged to the first cases, and a spec that does not pass here would make every
        case of it meaningless."""
        for name in self.names if self.cfg.warm_up == "all" else ["yolov8"]:
            ctx = Context(name, self.trees)
            result = CaseResult(-1, name, [], "path", len(self.raw[name]))
            self.check(self.raw[name], "path", None, ctx, result, cli=[(c, False, 0) for c in CLI_COMMANDS])
            if result.outcome != "valid" or result.failures:
                raise SystemExit(f"bundled spec {name} does not pass unmutated: {result.outcome} {[f.signature for f in result.failures]}")

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        start = time.perf_counter()
        self.warm_up()
        warm = time.perf_counter() - start
        for index in range(cfg.start, cfg.start + cfg.cases):
            try:
                result = self.run_case(index)
            except Exception:  # a bug of this script, not of the library: keep going, report it
                self.harness_errors.append(f"case {index}: {traceback.format_exc()}")
                continue
            self.results.append(result)
            if cfg.verbose:
                _print_case(result, self.inputs.get(index, (b"",))[0] if result.failures else None)
            if cfg.progress and (index - cfg.start + 1) % cfg.progress == 0:
                failing = sum(1 for r in self.results if r.failures)
                print(f"  {index - cfg.start + 1}/{cfg.cases} cases, {failing} failing, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        report = summarize(self, time.perf_counter() - start, warm)
        if cfg.minimize:
            report["minimized"] = self.minimize_all(report)
        return report

    # shrinking failures

    def reproduce(self, raw: bytes, form: str, tree: Any, ctx: Context, index: int, phase: str) -> set[str]:
        result = CaseResult(index, ctx.spec, [], form, len(raw))
        cli = []
        if phase.startswith("cli"):
            words = phase.split()
            command = next(c for c in CLI_COMMANDS if c[0] == words[-1])
            cli = [(command, words[1] == "subprocess", 1)]
        self.check(raw, form, tree, ctx, result, cli=cli)
        return {f.signature for f in result.failures}

    def minimize_all(self, report: dict[str, Any]) -> dict[str, Any]:
        """For each failure signature, its smallest input shrunk by lines then by characters while
        it fails with the same signature (dict-form cases are shrunk as YAML text when that fails
        the same way)."""
        shrunk = {}
        for signature, info in report["failure_classes"].items():
            if signature.startswith(("hang", "slow")):
                continue
            index = info["smallest_case"]
            raw, form, tree, ctx = self.inputs[index]
            phase = info["phase"]
            if form == "dict":
                form, tree = "text", None
            if signature not in self.reproduce(raw, form, tree, ctx, index, phase):
                shrunk[signature] = {"case": index, "reproduced": False}
                continue
            small = _ddmin(raw, lambda data, f=form, c=ctx, i=index, p=phase, s=signature: s in self.reproduce(data, f, None, c, i, p))
            shrunk[signature] = {"case": index, "form": form, "params": repr(ctx.params), "in_channels": repr(ctx.in_channels), "image": repr(ctx.image), "reproduced": True, "input": small.decode("utf-8", "replace")}
        return shrunk


def _shares(tree: Any) -> bool:
    """Whether the loaded tree holds one list or mapping at two places (YAML aliases): mutating it
    in place would change both, and dumping it writes anchors the mutation did not make."""
    seen: set[int] = set()
    stack = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, (dict, list)):
            if id(value) in seen:
                return True
            seen.add(id(value))
            stack.extend(value.values() if isinstance(value, dict) else value)
    return False


def _ddmin(data: bytes, fails: Callable[[bytes], bool], budget: int = 400) -> bytes:
    """Delta debugging, lines first, then characters, within ``budget`` tries."""
    tries = 0
    for unit in ("lines", "chars"):
        parts: list[bytes] = data.splitlines(keepends=True) if unit == "lines" else [bytes([b]) for b in data]
        if unit == "chars" and len(parts) > 600:
            break
        n = 2
        while len(parts) >= 2 and tries < budget:
            chunk = max(1, len(parts) // n)
            reduced = False
            for start in range(0, len(parts), chunk):
                candidate = parts[:start] + parts[start + chunk :]
                tries += 1
                if candidate and fails(b"".join(candidate)):
                    parts, n, reduced = candidate, max(n - 1, 2), True
                    break
                if tries >= budget:
                    break
            if not reduced:
                if chunk == 1:
                    break
                n = min(len(parts), n * 2)
        data = b"".join(parts)
    return data


# -- the report ------------------------------------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(campaign: Campaign, total_s: float, warm_s: float) -> dict[str, Any]:
    cfg = campaign.cfg
    results = campaign.results
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    kinds: dict[str, int] = {}
    classes: dict[str, dict[str, Any]] = {}
    for r in results:
        for f in r.failures:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
            entry = classes.setdefault(f.signature, {"kind": f.kind, "phase": f.phase, "count": 0, "first_case": r.index, "smallest_case": r.index, "smallest_size": r.size, "message": f.message[:400], "specs": {}})
            entry["count"] += 1
            entry["specs"][r.spec] = entry["specs"].get(r.spec, 0) + 1
            if r.size < entry["smallest_size"]:
                entry.update(smallest_case=r.index, smallest_size=r.size, message=f.message[:400], phase=f.phase)
    per_mutator: dict[str, dict[str, int]] = {name: {"applied": 0, "cases": 0, "valid": 0, "spec_error": 0, "failing": 0} for name in MUTATORS}
    for r in results:
        for name in r.mutations:
            per_mutator[name]["applied"] += 1
        for name in set(r.mutations):
            row = per_mutator[name]
            row["cases"] += 1
            row["valid"] += r.outcome == "valid"
            row["spec_error"] += r.outcome in ("spec_error", "compile_spec_error")
            row["failing"] += bool(r.failures)
    times = [r.case_s for r in results]
    forward = [r.forward_s for r in results if r.forward]
    cli_in = [c for r in results for c in r.cli if not c["subprocess"]]
    cli_sub = [c for r in results for c in r.cli if c["subprocess"]]
    slowest = sorted(results, key=lambda r: r.case_s, reverse=True)[:10]
    failing = [r for r in results if r.failures]
    return {
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "torch_threads": cfg.threads,
        "cases": len(results),
        "specs": {name: sum(1 for r in results if r.spec == name) for name in campaign.names},
        "forms": {form: sum(1 for r in results if r.form == form) for form in ("text", "bytes", "path", "dict")},
        "outcomes": dict(sorted(outcomes.items())),
        "failing_cases": len(failing),
        "failures_by_kind": dict(sorted(kinds.items())),
        "non_spec_error_exceptions": sum(1 for r in results for f in r.failures if f.kind in ("other_exception", "memory") and f.phase == "api"),
        "cli_tracebacks": sum(1 for r in results for f in r.failures if f.kind == "cli_traceback"),
        "hangs": sum(1 for r in results for f in r.failures if f.kind == "hang"),
        "slow_cases": sum(1 for r in results if r.slow),
        "large_necks": {
            "cases": sum(1 for r in results if r.weights > cfg.large_params),
            "timed_out": sum(1 for r in results if r.weights > cfg.large_params and (r.outcome == "large_timeout" or any(c["error"] == "hang" for c in r.cli))),
            "max_case_s": max((r.case_s for r in results if r.weights > cfg.large_params), default=0.0),
            "max_estimated_parameters": max((r.weights for r in results if r.weights > cfg.large_params), default=0),
        },
        "over_hang_limit": sum(1 for r in results if r.case_s > cfg.hang),
        "forward": {
            "run": sum(1 for r in results if r.forward == "run"),
            "reduced": sum(1 for r in results if r.forward == "reduced"),
            "retried_at_example": sum(1 for r in results if r.forward == "retried-at-example"),
            "refused_reduced": sum(1 for r in results if r.forward == "refused-reduced"),
            "skipped_huge": sum(1 for r in results if r.forward == "skipped-huge"),
            "nonfinite_outputs": sum(1 for r in results if r.nonfinite),
            "median_s": statistics.median(forward) if forward else 0.0,
            "max_s": max(forward, default=0.0),
        },
        "cli": {"in_process": len(cli_in), "subprocess": len(cli_sub), "exit_codes": _count(str(c["rc"]) for c in cli_in + cli_sub), "subprocess_max_s": max((c["s"] for c in cli_sub), default=0.0)},
        "per_mutator": per_mutator,
        "case_time_s": {"median": statistics.median(times) if times else 0.0, "p99": _quantile(times, 0.99), "max": max(times, default=0.0)},
        "slowest": [_slow_row(r) for r in slowest],
        "failure_classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["count"])),
        "failing": [{"case": r.index, "spec": r.spec, "mutations": r.mutations, "form": r.form, "signatures": [f.signature for f in r.failures]} for r in failing[:500]],
        "harness_errors": campaign.harness_errors[:50],
        "total_s": total_s,
        "warm_up_s": warm_s,
        "save_dir": cfg.save_dir,
    }


def _slow_row(r: CaseResult) -> dict[str, Any]:
    cli = [(c["argv"][0], round(c["s"], 3)) for c in r.cli if not c["subprocess"]]
    return {"case": r.index, "spec": r.spec, "mutations": r.mutations, "outcome": r.outcome, "case_s": round(r.case_s, 3), "api_s": round(r.api_s, 3), "forward_s": round(r.forward_s, 3), "cli": cli}


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def print_summary(report: dict[str, Any], out: Any = sys.stdout) -> None:
    def say(*parts: Any) -> None:
        print(*parts, file=out)

    cfg = report["config"]
    say(f"pyramidgraph fuzz campaign: {report['cases']} cases, seed {cfg['seed']}, CLI every {cfg['cli_every']}, subprocess every {cfg['subprocess_every']}, timeout {cfg['timeout']} s, hang {cfg['hang']} s")
    say(f"  specs: {report['specs']}")
    say(f"  forms: {report['forms']}")
    say(f"  outcomes: {report['outcomes']}")
    say(
        f"  non-SpecError exceptions: {report['non_spec_error_exceptions']}   CLI tracebacks: {report['cli_tracebacks']}   hangs: {report['hangs']}   "
        f"slow (> {cfg['timeout']} s): {report['slow_cases']}   failing cases: {report['failing_cases']}"
    )
    large = report["large_necks"]
    say(
        f"  large necks (over {cfg['large_params'] / 1e6:g}M estimated parameters, exempt from the time limits): {large['cases']}, "
        f"{large['timed_out']} stopped at --hang, slowest {large['max_case_s']:.2f} s, largest {large['max_estimated_parameters'] / 1e6:.0f}M"
    )
    say(f"  failures by kind: {report['failures_by_kind']}")
    fwd = report["forward"]
    say(f"  forward: {fwd['run']} at the example image, {fwd['reduced']} reduced, {fwd['retried_at_example']} retried at the example, {fwd['skipped_huge']} skipped (huge)")
    say(f"           {fwd['nonfinite_outputs']} with non-finite outputs; median {fwd['median_s']:.3f} s, max {fwd['max_s']:.3f} s")
    cli = report["cli"]
    say(f"  CLI: {cli['in_process']} in-process, {cli['subprocess']} subprocess runs; exit codes {cli['exit_codes']}")
    t = report["case_time_s"]
    say(f"  case time (validate + compile + in-process CLI, forward excluded): median {t['median']:.4f} s, p99 {t['p99']:.3f} s, max {t['max']:.3f} s")
    say(f"  total {report['total_s']:.0f} s (warm-up {report['warm_up_s']:.1f} s)")
    say("  per mutator (applied / cases: valid, SpecError, failing):")
    for name, row in report["per_mutator"].items():
        say(f"    {MUTATORS[name].level:<9} {name:<20} {row['applied']:>6} / {row['cases']:>6}: {row['valid']:>5} {row['spec_error']:>6} {row['failing']:>5}")
    say("  slowest cases:")
    for s in report["slowest"]:
        say(f"    case {s['case']:>6} {s['spec']:<12} {s['case_s']:.3f} s (api {s['api_s']:.3f}, cli {s['cli']}) {s['outcome']} {s['mutations']}")
    if report["failure_classes"]:
        say(f"  failure classes ({len(report['failure_classes'])}; inputs under {report['save_dir']}):")
        for signature, info in report["failure_classes"].items():
            say(f"    {info['count']:>5}x {signature}  [{info['phase']}; smallest: case {info['smallest_case']}, {info['smallest_size']} bytes] {info['message'][:160]!r}")
    digest = report.get("library_digest", {})
    if digest and digest["start"] != digest["end"]:
        say(f"  NOTE: the library's sources changed during the run ({digest['start']} -> {digest['end']}): subprocess runs may have run other code")
    if report["harness_errors"]:
        say(f"  HARNESS ERRORS ({len(report['harness_errors'])}): first:\n{report['harness_errors'][0]}")


def _print_case(result: CaseResult, raw: bytes | None) -> None:
    print(f"case {result.index} {result.spec} {result.mutations} as {result.form}: {result.outcome} api {result.api_s:.3f} s forward {result.forward} {result.forward_s:.3f} s")
    for c in result.cli:
        print(f"  cli {'subprocess ' if c['subprocess'] else ''}{' '.join(c['argv'])} -> {c['rc']} in {c['s']:.3f} s{(' ' + repr(c['error'])) if c['error'] else ''}")
        if c["err"]:
            print("    " + c["err"][-1500:].replace("\n", "\n    "))
    for f in result.failures:
        print(f"  FAIL {f.signature}: {f.message}\n{f.detail}")


# -- setting the process up --------------------------------------------------------------------------


@contextlib.contextmanager
def bounded(cfg: Config):
    """The address-space limit, torch's thread count and the canary, restored afterwards (the test
    runs a sample inside pytest's own process)."""
    import torch

    old_limit = resource.getrlimit(resource.RLIMIT_AS)
    old_threads = torch.get_num_threads()
    old_canary = os.environ.get("PYRAMIDGRAPH_FUZZ_CANARY")
    if cfg.memory_gb:
        limit = int(cfg.memory_gb * (1 << 30))
        hard = old_limit[1]
        if hard == resource.RLIM_INFINITY or limit <= hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    torch.set_num_threads(cfg.threads)
    os.environ["PYRAMIDGRAPH_FUZZ_CANARY"] = CANARY
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old_limit)
        torch.set_num_threads(old_threads)
        if old_canary is None:
            os.environ.pop("PYRAMIDGRAPH_FUZZ_CANARY", None)
        else:
            os.environ["PYRAMIDGRAPH_FUZZ_CANARY"] = old_canary


def library_digest() -> str:
    """A hash of the library's sources: the report says whether they changed during the run (in a
    shared checkout, subprocess runs would then run other code than the in-process ones)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(Path(pyramidgraph.__file__).parent.rglob("*.py")):
        digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def run_campaign(cfg: Config) -> dict[str, Any]:
    """Run ``cfg.cases`` cases from ``cfg.start`` and return the report (see :func:`summarize`)."""
    campaign = Campaign(cfg)
    before = library_digest()
    try:
        with bounded(cfg):
            report = campaign.run()
    finally:
        campaign.close()
    report["library_digest"] = {"start": before, "end": library_digest()}
    return report


def replay(cfg: Config, index: int) -> CaseResult:
    """Run case ``index`` alone and print its input, what happened and every CLI command's output."""
    campaign = Campaign(cfg)
    try:
        with bounded(cfg):
            raw, form, tree, ctx, applied = campaign.make_case(index)
            print(f"case {index}: {ctx.spec}, mutations {applied}, as {form}, params={ctx.params!r} in_channels={ctx.in_channels!r} image={ctx.image!r}")
            print("---- input ----")
            print(raw.decode("utf-8", "replace")[:20000])
            print("---------------")
            result = CaseResult(index, ctx.spec, applied, form, len(raw))
            campaign.check(raw, form, tree, ctx, result, cli=[(c, index % max(cfg.subprocess_every, 1) == 0, 0) for c in CLI_COMMANDS])
            _slow_mark(result, cfg)
            _print_case(result, raw)
            return result
    finally:
        campaign.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first case (cases are independent: --start 5000 --cases 100 runs cases 5000-5099)")
    parser.add_argument("--case", type=int, help="replay this one case verbosely, every CLI command included")
    parser.add_argument("--cli-every", type=int, default=10, help="run one CLI command in-process every N cases (0: never)")
    parser.add_argument("--subprocess-every", type=int, default=100, help="and one as a real process every N cases (0: never)")
    parser.add_argument("--timeout", type=float, default=2.0, help="a case whose validate + compile, or one CLI command, takes longer is slow")
    parser.add_argument("--large-params", type=int, default=50_000_000, help="necks estimated at more parameters are exempt from --timeout (building weights is torch's work)")
    parser.add_argument("--hang", type=float, default=10.0, help="a phase that takes longer is aborted and counted as a hang")
    parser.add_argument("--no-forward", action="store_true", help="do not run compiled necks")
    parser.add_argument("--forward-elements", type=int, default=16_000_000, help="a neck that refuses the reduced image runs at the example's when its inputs hold at most this many values")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space limit of this process (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--save-dir", default="/tmp/pyramidgraph-fuzz")
    parser.add_argument("--minimize", action="store_true", help="shrink the smallest input of each failure class")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--progress", type=int, default=500, help="print progress every N cases (0: never)")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--warm-up", choices=["all", "light"], default="all", help="before the cases, run every bundled spec unmutated through every step (all) or one (light)")
    args = parser.parse_args(argv)
    cfg = Config(
        cases=args.cases, seed=args.seed, start=args.start, cli_every=args.cli_every, subprocess_every=args.subprocess_every, timeout=args.timeout, large_params=args.large_params, hang=args.hang,
        forward=not args.no_forward, forward_elements=args.forward_elements, memory_gb=args.memory_gb, save_dir=args.save_dir, threads=args.threads,
        progress=args.progress, minimize=args.minimize, verbose=args.verbose, warm_up=args.warm_up,
    )
    if args.case is not None:
        result = replay(cfg, args.case)
        return 1 if result.failures else 0
    report = run_campaign(cfg)
    print_summary(report)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return 1 if report["failing_cases"] or report["harness_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
