"""Building a sweep's configurations: every option's every value, and a spread of combinations.

A constructor with a dozen arguments has thousands of combinations; a sweep takes the base
configuration with each option set to each of its values in turn (``one_at_a_time``), plus a
fixed spread of the full product (``spread``: the combinations whose CRC falls in one bucket,
the same in every environment and Python version), so pairs of options meet too.
"""

from __future__ import annotations

import itertools
import json
import zlib
from typing import Any, Iterator, Mapping, Sequence

__all__ = ["one_at_a_time", "spread", "case_id", "changed", "standard_cases"]


def one_at_a_time(base: Mapping[str, Any], options: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """``base``, then ``base`` with each option set to each of its values that differs from base's."""
    yield dict(base)
    for name, values in options.items():
        for value in values:
            if base.get(name, _MISSING) != value:
                yield {**base, name: value}


def spread(options: Mapping[str, Sequence[Any]], count: int, salt: str = "") -> list[dict[str, Any]]:
    """About ``count`` combinations of the full product of ``options``, chosen by CRC."""
    names = list(options)
    combos = [dict(zip(names, values)) for values in itertools.product(*(options[n] for n in names))]
    if len(combos) <= count:
        return combos
    ranked = sorted(combos, key=lambda c: zlib.crc32((salt + json.dumps(c, sort_keys=True, default=str)).encode()))
    return ranked[:count]


def case_id(prefix: str, values: Mapping[str, Any]) -> str:
    """A readable, stable id: ``prefix-key=value-...`` (lists joined by ``_``)."""
    def text(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "_".join(text(x) for x in v)
        if isinstance(v, dict):
            return "_".join(f"{k}{text(x)}" for k, x in v.items())
        return str(v)

    parts = [prefix] + [f"{k}={text(v)}" for k, v in values.items()]
    return "-".join(parts).replace(" ", "")


def changed(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """What ``values`` sets differently from ``base`` (``{"base": 1}`` when nothing): a case's id."""
    return {k: x for k, x in values.items() if k not in base or base[k] != x} or {"base": 1}


def standard_cases(prefix: str, base: dict, options: Mapping, combined: Mapping, mixes: int, salt: str, refused: list, config, images, refused_stride: int) -> list[dict]:
    """The usual sweep: ``base`` with each option's values in turn, ``mixes`` combinations of
    ``combined`` (``prefix-mixNN``), then the ``(values, reason)`` the reference rejects.
    ``config(values)`` and ``images(inputs, first_stride)`` build a case's config and images."""
    cases = [{"id": case_id(prefix, changed(base, v)), "config": config(v), "images": images(v["inputs"], v["first_stride"])} for v in one_at_a_time(base, options)]
    combos = [{**base, **c} for c in spread(combined, mixes, salt)]
    cases += [{"id": f"{prefix}-mix{k:02d}", "config": config(v), "images": images(v["inputs"], v["first_stride"])} for k, v in enumerate(combos)]
    for v, reason in refused:
        cases.append({"id": case_id(f"{prefix}-refused", v), "config": config({**base, **v}), "images": images(base["inputs"], refused_stride), "reason": reason})
    assert len({c["id"] for c in cases}) == len(cases)
    return cases


_MISSING = object()
