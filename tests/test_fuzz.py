"""Random mutations of the bundled specs: validation either succeeds or raises SpecError.

Whatever a user writes, the only exception the public API may raise for it is ``SpecError``
(a traceback from deep inside the pipeline is a bug). Mutations: drop, rename or duplicate
keys, replace values with random ints, strings, lists or None, random text and bytes.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyramidgraph
from pyramidgraph import SpecError

SPECS = {name: yaml.safe_load(path.read_text(encoding="utf-8")) for name, path in pyramidgraph.bundled_specs().items()}
# the widths a mutated spec is validated with when its own example was mutated away
SMALL = {name: spec["example"]["in_channels"] for name, spec in SPECS.items()}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a mutation may put anywhere: the kinds of thing a user gets wrong.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["$channels", "${channels * 2}", "${range(3)}", "P$l", "${", "$", "$$", "${1/0}", "${10**100}", "${x}", "sum", "conv3x3", "cell.P3_out", "P4.pre", "nearest"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path inside ``value`` (mapping keys and list indices), the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, prefix + (i,))
    return out


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_specs(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(SPECS)))
    spec = copy.deepcopy(SPECS[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(spec)
        path = draw(st.sampled_from(paths))
        parent_path, key = (path[:-1], path[-1]) if path else ((), None)
        parent = _get(spec, parent_path) if path else None
        action = draw(st.sampled_from(["replace", "drop", "rename", "duplicate"]))
        if key is None:
            if action == "replace":
                spec = draw(values)
            continue
        if action == "replace":
            parent[key] = draw(values)
        elif action == "drop":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.one_of(st.text(max_size=8), st.sampled_from(["P$l", "P${l}_x", "cell", "nodes", "from", "level", "pre", "C3", "1x"])))
            parent[new] = parent.pop(key)
        elif action == "duplicate":
            if isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = copy.deepcopy(parent[key])
            else:
                parent.insert(key, copy.deepcopy(parent[key]))
    return name, spec


def _validate(source: Any, in_channels: Any = None) -> None:
    try:
        pyramidgraph.validate(source, in_channels)
    except SpecError as exc:
        assert exc.issues and all(issue.message for issue in exc.issues)
        str(exc)  # formatting never fails


@FUZZ
@given(mutated_specs())
def test_mutated_dict_specs_validate_or_raise_spec_error(case):
    name, spec = case
    _validate(spec if isinstance(spec, dict) else {"spec": spec}, SMALL[name] if isinstance(spec, dict) and "example" not in spec else None)


@FUZZ
@given(mutated_specs())
def test_mutated_specs_as_yaml_text_validate_or_raise_spec_error(case):
    _name, spec = case
    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    if "\n" not in text:
        text += "\n"
    _validate(text)


@FUZZ
@given(st.sampled_from(sorted(SPECS)), st.data())
def test_text_edits_of_bundled_specs_validate_or_raise_spec_error(name, data):
    text = pyramidgraph.bundled_specs()[name].read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 4))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 20)))
        text = text[:start] + data.draw(st.text(max_size=10)) + text[end:]
    _validate(text + "\n")


@FUZZ
@given(st.text(max_size=200))
def test_random_text_validates_or_raises_spec_error(text):
    _validate(text + "\n")


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_validate_or_raise_spec_error(raw):
    _validate(raw + b"\n")


@FUZZ
@given(st.sampled_from(sorted(SPECS)), st.data())
def test_byte_edits_of_bundled_specs_validate_or_raise_spec_error(name, data):
    raw = pyramidgraph.bundled_specs()[name].read_bytes()
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(raw)))
        raw = raw[:start] + data.draw(st.binary(min_size=1, max_size=4)) + raw[start + data.draw(st.integers(0, 4)) :]
    _validate(raw + b"\n")


PARAM_NAMES = sorted({name for spec in SPECS.values() for name in spec.get("params") or {}} | {"nope", "num_inputs", "in_channels"})
widths = st.one_of(st.none(), values, st.lists(st.integers(-3, 70000), max_size=7), st.dictionaries(st.sampled_from(["C2", "C3", "P3", "x"]), st.integers(-1, 64), max_size=4))
images = st.one_of(st.none(), st.integers(-2, 2000), st.tuples(st.integers(0, 700), st.integers(0, 700)), st.lists(st.integers(1, 99), max_size=3), st.text(max_size=3))


@FUZZ
@given(st.sampled_from(sorted(SPECS)), widths, images, st.dictionaries(st.sampled_from(PARAM_NAMES), values, max_size=3))
def test_random_compile_arguments_validate_or_raise_spec_error(name, in_channels, image, params):
    try:
        pyramidgraph.analyze(name, in_channels, image=image, params=params)
    except SpecError as exc:
        assert exc.issues


def test_mutation_strategy_reaches_every_bundled_spec():
    # guard against the fuzzing silently testing nothing: every spec is valid unmutated
    for name, spec in SPECS.items():
        analysis = pyramidgraph.validate(spec, SMALL[name])
        assert analysis.flat.name == name


@pytest.mark.parametrize("name", sorted(SPECS))
def test_unmutated_yaml_round_trip_validates(name):
    text = yaml.safe_dump(SPECS[name], sort_keys=False)
    assert pyramidgraph.validate(text).flat.name == name
