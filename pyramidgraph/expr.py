"""Parameter expressions: ``$name`` and ``${expr}``, evaluated without ``eval``.

Specs never run Python. An expression is parsed with :mod:`ast` and walked by a small
interpreter that knows arithmetic, comparisons, ``a if c else b``, lists, indexing, slicing
and a handful of pure functions (``range``, ``len``, ``min``...). Results are bounded in size,
so ``${range(10**9)}`` or ``${'x' * 10**9}`` is an error rather than an out-of-memory.

String forms:

* ``"$channels"`` or ``"${channels * 2}"`` (the whole string) yields the typed value;
* ``"P${l + 1}_td"`` interpolates into a string;
* ``"$$"`` is a literal dollar sign.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import warnings
from typing import Any, Callable, Mapping

from .errors import did_you_mean

__all__ = ["ExprError", "evaluate", "substitute", "has_expression", "MAX_ITEMS"]

MAX_ITEMS = 10_000
"""Largest list, range or string an expression may produce."""

MAX_EXPR_CHARS = 500

MAX_INT_BITS = 256
"""Largest integer an arithmetic step may produce, in bits. Parameters chained as
``a1: ${a0 * a0}``, ``a2: ${a1 * a1}``... double their size at each step: without a bound the
40th would need more memory than any machine has; with it the chain stops in microseconds."""

MAX_NESTING = 32
"""Deepest list an expression may produce (parameters chained as ``a1: ${[a0]}``,
``a2: ${[a1]}``... would otherwise nest without bound)."""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(r"\$\$|\$\{(?P<expr>[^{}]*)\}|\$(?P<name>" + _NAME + r")|(?P<stray>\$)")
_WHOLE = re.compile(r"^(?:\$\{(?P<expr>[^{}]*)\}|\$(?P<name>" + _NAME + r"))$")


class ExprError(ValueError):
    """An expression that cannot be evaluated; the message says why."""


def has_expression(text: str) -> bool:
    """Whether ``text`` contains ``$name`` or ``${...}`` (not just ``$$``)."""
    return any(m.group("expr") is not None or m.group("name") for m in _TOKEN.finditer(text))


def substitute(text: str, env: Mapping[str, Any]) -> Any:
    """Evaluate the expressions in ``text``: typed value if the whole string is one, else a string."""
    whole = _WHOLE.match(text)
    if whole:
        return evaluate(whole.group("expr") if whole.group("expr") is not None else whole.group("name"), env)

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("stray"):
            raise ExprError(f"'{text}': a '$' must start $name or ${{expression}}; write $$ for a literal dollar")
        source = match.group("expr") if match.group("expr") is not None else match.group("name")
        value = evaluate(source, env)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ExprError(f"'{match.group(0)}' gives {_describe(value)}, which cannot be placed inside a string")
        return str(value)

    return _TOKEN.sub(replace, text)


def evaluate(source: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression (without the ``${}``) against ``env``."""
    source = source.strip()
    if not source:
        raise ExprError("empty expression '${}'")
    if len(source) > MAX_EXPR_CHARS:
        raise ExprError(f"expression longer than {MAX_EXPR_CHARS} characters")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "invalid decimal literal" and the like: the error below says it
            tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"cannot parse expression '{source}': {exc.msg}") from None
    return _Evaluator(env).visit(tree.body)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"{type(value).__name__} {value!r}"


def _size(value: Any, depth: int = 0) -> int:
    """Items in a list or string, nested ones counted in full: ``[range(100)] * 100`` and
    ``['x' * 100] * 100`` are 10,000 (each would print as a string of 50,000+ characters).
    Lists nested deeper than :data:`MAX_NESTING` are refused here, before anything recurses
    into them."""
    if isinstance(value, str):
        return len(value)
    if depth >= MAX_NESTING:
        raise ExprError(f"the value nests lists deeper than {MAX_NESTING} levels")
    total = 0
    for item in value:
        total += max(_size(item, depth + 1), 1) if isinstance(item, (list, str)) else 1
        if total > MAX_ITEMS:
            break
    return total


def _check_size(value: Any) -> Any:
    if isinstance(value, (list, str)):
        size = _size(value)
        if size > MAX_ITEMS:
            count = len(value) if len(value) > MAX_ITEMS else f"more than {MAX_ITEMS}"
            raise ExprError(f"expression result has {count} items; the limit is {MAX_ITEMS}")
    return value


def _bounded(value: Any, node: ast.AST) -> Any:
    """``value`` if it is an arithmetic result of sane size: an int of at most
    :data:`MAX_INT_BITS` bits, a finite float (an overflow to inf, or a NaN, is refused)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise ExprError(f"'{ast.unparse(node)}' gives an integer of {value.bit_length()} bits; the limit is {MAX_INT_BITS}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError(f"'{ast.unparse(node)}' gives {value}, not a finite number")
    return value


def _safe_pow(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, (int, float)) and abs(exponent) > 64:
        raise ExprError(f"exponent {exponent} is too large (limit 64)")
    if isinstance(base, (int, float)) and abs(base) > 2**64:
        raise ExprError("power base is too large")
    return operator.pow(base, exponent)


def _safe_mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        if isinstance(seq, (list, str)) and isinstance(count, int):
            if _size(seq) * max(count, 0) > MAX_ITEMS:
                raise ExprError(f"repetition would make {_size(seq) * count} items; the limit is {MAX_ITEMS}")
    return operator.mul(left, right)


def _safe_range(*args: Any) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise ExprError("range() takes one to three integers")
    r = range(*args)
    if len(r) > MAX_ITEMS:
        raise ExprError(f"range of {len(r)} items; the limit is {MAX_ITEMS}")
    return list(r)


def _safe_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExprError("string formatting with % is not supported; build strings with + and str()")
    return operator.mod(left, right)


def _div(left: Any, right: Any) -> Any:
    return operator.truediv(left, right)


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _safe_mul,
    ast.Div: _div,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: lambda a, b: _safe_mod(a, b),
    ast.Pow: _safe_pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "range": _safe_range,
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
    "round": round,
    "str": str,
    "bool": bool,
    "sum": sum,
    "list": list,
    "sorted": sorted,
    "reversed": lambda seq: list(reversed(seq)),
    "log2": lambda x: int(math.log2(x)) if float(x).is_integer() and math.log2(x).is_integer() else math.log2(x),
}
"""Functions available in expressions; all pure, none can reach the file system or Python."""


class _Evaluator:
    def __init__(self, env: Mapping[str, Any]):
        self.env = env

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            raise ExprError(f"'{ast.unparse(node)}' uses {type(node).__name__}, which expressions do not support")
        try:
            return _check_size(method(node))
        except ExprError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, IndexError, KeyError, OverflowError) as exc:
            raise ExprError(f"'{ast.unparse(node)}': {exc}") from None

    def visit_Constant(self, node: ast.Constant) -> Any:
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ExprError(f"constant {node.value!r} is not allowed")
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.env:
            return self.env[node.id]
        if node.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[node.id]
        known = list(self.env) + list(FUNCTIONS)
        error = ExprError(f"unknown name '{node.id}'{did_you_mean(node.id, known)}")
        error.unknown = node.id
        raise error

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ExprError(f"operator in '{ast.unparse(node)}' is not supported")
        return _bounded(op(self.visit(node.left), self.visit(node.right)), node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ExprError(f"operator in '{ast.unparse(node)}' is not supported")
        return op(self.visit(node.operand))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        result: Any = None
        for value in node.values:
            result = self.visit(value)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            compare = _COMPARE.get(type(op))
            if compare is None:
                raise ExprError(f"operator in '{ast.unparse(node)}' is not supported")
            right = self.visit(right_node)
            if not compare(left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node: ast.List) -> list:
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        value = self.visit(node.value)
        if not isinstance(value, (list, str)):
            raise ExprError(f"'{ast.unparse(node.value)}' is {_describe(value)}; only lists and strings can be indexed")
        if isinstance(node.slice, ast.Slice):
            parts = [None if p is None else self.visit(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]
            return value[slice(*parts)]
        return value[self.visit(node.slice)]

    def visit_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = ast.unparse(node.func)
            raise ExprError(f"unknown function '{name}'{did_you_mean(name, FUNCTIONS)}; available: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            raise ExprError(f"'{ast.unparse(node)}': functions take positional arguments only")
        return FUNCTIONS[node.func.id](*[self.visit(a) for a in node.args])
