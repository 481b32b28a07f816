"""pyramidgraph.expr: typed ``$name`` / ``${expr}`` values, interpolation and the safety limits."""

from __future__ import annotations

import pytest

from pyramidgraph.expr import MAX_ITEMS, ExprError, evaluate, has_expression, substitute

ENV = {"channels": 64, "l": 4, "levels": [3, 4, 5, 6, 7], "act": "silu", "fast": True}
FUNCTIONS = "abs, bool, float, int, len, list, log2, max, min, range, reversed, round, sorted, str, sum"


# -- typed results and interpolation ---------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$channels", 64),
        ("${channels}", 64),
        ("${channels*2}", 128),
        ("${ channels * 2 + 1 }", 129),
        ("${channels / 2}", 32.0),
        ("${channels // 3}", 21),
        ("${channels % 10}", 4),
        ("${-l}", -4),
        ("${2 ** 10}", 1024),
        ("$act", "silu"),
        ("$fast", True),
        ("${not fast}", False),
        ("${l > 3}", True),
        ("${3 < l < 4}", False),
        ("${l in levels}", True),
        ("${9 not in levels}", True),
        ("${1 if l > 3 else 2}", 1),
        ("${fast and channels}", 64),
        ("${0 or 'x'}", "x"),
        ("${None}", None),
        ("${'a' + act}", "asilu"),
    ],
)
def test_whole_string_expression_keeps_its_type(text, expected):
    result = substitute(text, ENV)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("P${l+1}_td", "P5_td"),
        ("P${l}_td", "P4_td"),
        ("P$l", "P4"),
        ("cell.P${l - 1}_out", "cell.P3_out"),
        ("$act-$channels", "silu-64"),
        ("$$", "$"),
        ("costs $$5", "costs $5"),
        ("$$channels", "$channels"),
        ("no dollars", "no dollars"),
        ("${channels / 2}x", "32.0x"),
    ],
)
def test_interpolation_inside_a_string_gives_a_string(text, expected):
    assert substitute(text, ENV) == expected


def test_has_expression_ignores_literal_dollars():
    assert has_expression("P$l")
    assert has_expression("${1}")
    assert not has_expression("$$")
    assert not has_expression("plain")


# -- lists, ranges, slices, functions -------------------------------------------------------


@pytest.mark.parametrize(
    "source, expected",
    [
        ("range(3)", [0, 1, 2]),
        ("range(3, 8)", [3, 4, 5, 6, 7]),
        ("range(7, 2, -2)", [7, 5, 3]),
        ("[1, 2] + [3]", [1, 2, 3]),
        ("[0] * 3", [0, 0, 0]),
        ("(1, 2)", [1, 2]),
        ("levels[0]", 3),
        ("levels[-1]", 7),
        ("levels[1:3]", [4, 5]),
        ("levels[::-1]", [7, 6, 5, 4, 3]),
        ("levels[::2]", [3, 5, 7]),
        ("act[1:3]", "il"),
        ("len(levels)", 5),
        ("min(levels)", 3),
        ("max(3, 9, 4)", 9),
        ("sum(levels)", 25),
        ("sorted([3, 1, 2])", [1, 2, 3]),
        ("reversed(levels)", [7, 6, 5, 4, 3]),
        ("list(range(2))", [0, 1]),
        ("abs(-3)", 3),
        ("int('12')", 12),
        ("float(2)", 2.0),
        ("round(2.567, 1)", 2.6),
        ("str(l)", "4"),
        ("bool(0)", False),
        ("log2(8)", 3),
        ("log2(1024)", 10),
    ],
)
def test_lists_ranges_slices_and_functions(source, expected):
    result = evaluate(source, ENV)
    assert result == expected
    assert type(result) is type(expected)


def test_range_result_is_a_plain_list_of_ints():
    result = substitute("${range(first, last + 1)}", {"first": 3, "last": 7})
    assert result == [3, 4, 5, 6, 7]
    assert type(result) is list


def test_log2_of_a_non_power_is_a_float():
    assert evaluate("log2(6)", {}) == pytest.approx(2.584962500721156)
    assert type(evaluate("log2(6)", {})) is float


def test_range_at_the_limit_is_allowed():
    assert len(evaluate("range(10000)", {})) == MAX_ITEMS == 10_000
    assert len(evaluate("'x' * 10000", {})) == 10_000


# -- safety limits: every one is an ExprError with an exact message ----------------------------


@pytest.mark.parametrize(
    "source, message",
    [
        ("range(10001)", "range of 10001 items; the limit is 10000"),
        ("range(10**9)", "range of 1000000000 items; the limit is 10000"),
        ("'x' * 10001", "repetition would make 10001 items; the limit is 10000"),
        ("10001 * 'x'", "repetition would make 10001 items; the limit is 10000"),
        ("'x' * 10**9", "repetition would make 1000000000 items; the limit is 10000"),
        ("[1] * 10001", "repetition would make 10001 items; the limit is 10000"),
        ("[1, 2] * 6000", "repetition would make 12000 items; the limit is 10000"),
        ("range(10000) + [1]", "expression result has 10001 items; the limit is 10000"),
        ("'x' * 10000 + 'y'", "expression result has 10001 items; the limit is 10000"),
        ("2 ** 65", "exponent 65 is too large (limit 64)"),
        ("2 ** -65", "exponent -65 is too large (limit 64)"),
        ("65 ** 64 ** 2", "exponent 4096 is too large (limit 64)"),
        ("(10 ** 20) ** 2", "power base is too large"),
        ("range(1.5)", "range() takes one to three integers"),
        ("range()", "range() takes one to three integers"),
        ("range(True)", "range() takes one to three integers"),
    ],
)
def test_size_limits(source, message):
    with pytest.raises(ExprError) as info:
        evaluate(source, ENV)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "source",
    [
        "[range(10000)] * 10000",  # 10,000 references to a 10,000-item list: 10**8 items
        "str([range(10000)] * 10000)",  # would print a 600 MB string
        "sum([range(10000)] * 10000, [])",  # quadratic concatenation
        "['x' * 10000] * 10000",
    ],
)
def test_nested_repetition_is_bounded(source):
    with pytest.raises(ExprError) as info:
        evaluate(source, ENV)
    assert str(info.value) == "repetition would make 100000000 items; the limit is 10000"


def test_nested_lists_count_every_item():
    assert evaluate("[range(5000)] * 2", {}) == [list(range(5000))] * 2
    with pytest.raises(ExprError) as info:
        evaluate("[range(6000), range(6000)]", {})
    assert str(info.value) == "expression result has more than 10000 items; the limit is 10000"


@pytest.mark.parametrize(
    "source, message",
    [
        ("channels.bit_length()", f"unknown function 'channels.bit_length'; available: {FUNCTIONS}"),
        ("act.upper()", f"unknown function 'act.upper'; available: {FUNCTIONS}"),
        ("open('x')", f"unknown function 'open'; available: {FUNCTIONS}"),
        ("eval('1')", f"unknown function 'eval'; available: {FUNCTIONS}"),
        ("__import__('os')", f"unknown function '__import__'; available: {FUNCTIONS}"),
        ("lens(levels)", f"unknown function 'lens'; did you mean 'len'?; available: {FUNCTIONS}"),
        ("(lambda: 1)()", f"unknown function 'lambda: 1'; available: {FUNCTIONS}"),
        ("channels.real", "'channels.real' uses Attribute, which expressions do not support"),
        ("().__class__", "'().__class__' uses Attribute, which expressions do not support"),
        ("lambda x: x", "'lambda x: x' uses Lambda, which expressions do not support"),
        ("[x for x in levels]", "'[x for x in levels]' uses ListComp, which expressions do not support"),
        ("{x for x in levels}", "'{x for x in levels}' uses SetComp, which expressions do not support"),
        ("(x for x in levels)", "'(x for x in levels)' uses GeneratorExp, which expressions do not support"),
        ("{1: 2}", "'{1: 2}' uses Dict, which expressions do not support"),
        ("f'{l}'", "'f'{l}'' uses JoinedStr, which expressions do not support"),
        ("__builtins__", "unknown name '__builtins__'"),
        ("chanels", "unknown name 'chanels'; did you mean 'channels'?"),
        ("x := 3", "cannot parse expression 'x := 3': invalid syntax"),
        ("1 +", "cannot parse expression '1 +': invalid syntax"),
        ("min(1, key=2)", "'min(1, key=2)': functions take positional arguments only"),
        ("max(*levels)", "'max(*levels)': functions take positional arguments only"),
        ("1 << 2", "operator in '1 << 2' is not supported"),
        ("1 @ 2", "operator in '1 @ 2' is not supported"),
        ("~1", "operator in '~1' is not supported"),
        ("1 is 1", "operator in '1 is 1' is not supported"),
        ("1 / 0", "'1 / 0': division by zero"),
        ("levels[10]", "'levels[10]': list index out of range"),
        ("3[0]", "'3' is int 3; only lists and strings can be indexed"),
        ("b'x'", "constant b'x' is not allowed"),
        ("'a' - 1", "''a' - 1': unsupported operand type(s) for -: 'str' and 'int'"),
    ],
)
def test_forbidden_constructs_and_errors_have_exact_messages(source, message):
    with pytest.raises(ExprError) as info:
        evaluate(source, ENV)
    assert str(info.value) == message


def test_long_expressions_are_refused_before_parsing():
    with pytest.raises(ExprError) as info:
        evaluate("1 + " * 200 + "1", {})
    assert str(info.value) == "expression longer than 500 characters"


@pytest.mark.parametrize(
    "text, message",
    [
        ("$", "'$': a '$' must start $name or ${expression}; write $$ for a literal dollar"),
        ("a$", "'a$': a '$' must start $name or ${expression}; write $$ for a literal dollar"),
        ("P$1", "'P$1': a '$' must start $name or ${expression}; write $$ for a literal dollar"),
        ("${}", "empty expression '${}'"),
        ("${  }", "empty expression '${}'"),
        ("x${levels}y", "'${levels}' gives a list of 5, which cannot be placed inside a string"),
        ("x${fast}", "'${fast}' gives bool True, which cannot be placed inside a string"),
        ("x${None}", "'${None}' gives NoneType None, which cannot be placed inside a string"),
        ("P${nope}", "unknown name 'nope'"),
    ],
)
def test_substitute_errors(text, message):
    with pytest.raises(ExprError) as info:
        substitute(text, ENV)
    assert str(info.value) == message


def test_expression_errors_are_value_errors():
    # callers that catch ValueError keep working
    assert issubclass(ExprError, ValueError)
