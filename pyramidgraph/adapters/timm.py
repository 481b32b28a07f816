"""timm ``features_only`` backbones: a neck's input widths and levels from ``feature_info``.

timm describes a feature backbone's outputs next to its modules: ``backbone.feature_info``
is a ``FeatureInfo`` whose ``channels()`` and ``reduction()`` list each returned map's width
and stride, finest first (a model built without ``features_only`` has a plain list of dicts
with ``num_chs`` and ``reduction`` instead). ``compile(spec, feature_info=...)`` reads either
form, so the widths and the pyramid levels come from the backbone instead of being copied by
hand::

    backbone = timm.create_model("efficientnet_b0", features_only=True, out_indices=(2, 3, 4))
    neck = pyramidgraph.compile("bifpn", feature_info=backbone.feature_info)
    outs = neck(backbone(images))

Levels are ``log2(reduction)``. The first one becomes the spec's ``first_level`` parameter
when the spec declares one (every bundled pyramid spec does); either way the levels of the
spec's inputs must then equal the backbone's, or :class:`SpecError` says how they differ.
Nothing here imports timm: any object with those two methods, or any such list, will do.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import Issue, SpecError

__all__ = ["FeaturePyramid", "read_feature_info", "feature_info_arguments", "check_feature_levels"]

FIRST_LEVEL_PARAM = "first_level"
"""The spec parameter that places a spec's finest input (``C$l`` for ``l`` from it)."""


@dataclass(frozen=True)
class FeaturePyramid:
    """Widths and strides of a backbone's feature maps, finest first."""

    channels: tuple[int, ...]
    reductions: tuple[int, ...]

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(r.bit_length() - 1 for r in self.reductions)


def read_feature_info(feature_info: Any, file: str = "<feature_info>") -> FeaturePyramid:
    """Read timm's ``FeatureInfo`` (``.channels()``, ``.reduction()``) or a list of dicts with
    ``num_chs`` and ``reduction``; :class:`SpecError` unless the reductions are consecutive
    powers of two (one pyramid level apart), finest first."""
    if callable(getattr(feature_info, "channels", None)) and callable(getattr(feature_info, "reduction", None)):
        channels, reductions = list(feature_info.channels()), list(feature_info.reduction())
    elif isinstance(feature_info, Sequence) and not isinstance(feature_info, (str, bytes)) and all(isinstance(f, Mapping) and "num_chs" in f and "reduction" in f for f in feature_info):
        channels = [f["num_chs"] for f in feature_info]
        reductions = [f["reduction"] for f in feature_info]
    else:
        raise _error(file, f"expected timm's FeatureInfo (with channels() and reduction()) or a list of dicts with 'num_chs' and 'reduction', got {type(feature_info).__name__}")
    if not channels or len(channels) != len(reductions):
        raise _error(file, f"feature_info lists {len(channels)} widths and {len(reductions)} reductions; expected the same, non-zero number")
    widths, strides = _positive_ints(channels), _positive_ints(reductions)
    if widths is None or strides is None:
        raise _error(file, f"feature_info widths and reductions must be positive integers, got channels {channels} and reductions {reductions}")
    if any(r & (r - 1) for r in strides):
        raise _error(file, f"feature_info reductions {strides} are not all powers of two, so they are not pyramid levels")
    pyramid = FeaturePyramid(tuple(widths), tuple(strides))
    levels = pyramid.levels
    if any(b != a + 1 for a, b in zip(levels, levels[1:])):
        raise _error(file, f"feature_info reductions {strides} are not consecutive pyramid levels (each twice the one before, finest first); choose the backbone's out_indices so that they are")
    return pyramid


def feature_info_arguments(doc: Any, feature_info: Any, in_channels: Any, params: Mapping[str, Any]) -> tuple[list[int], dict[str, Any]]:
    """``in_channels`` and spec parameters for compiling ``doc`` against ``feature_info``.

    Sets ``first_level`` to the finest map's level when the spec declares that parameter; a
    ``first_level`` or ``in_channels`` given as well must agree with the backbone.
    """
    pyramid = read_feature_info(feature_info, doc.file)
    given_channels = list(in_channels.values()) if isinstance(in_channels, Mapping) else in_channels
    if given_channels is not None and list(given_channels) != list(pyramid.channels):
        raise _error(doc.file, f"in_channels {list(given_channels)} disagrees with feature_info's widths {list(pyramid.channels)}; pass one of them")
    params = dict(params)
    if FIRST_LEVEL_PARAM in _declared_params(doc):
        first = pyramid.levels[0]
        given = params.get(FIRST_LEVEL_PARAM, first)
        if given != first:
            raise _error(doc.file, f"{FIRST_LEVEL_PARAM}={given!r} was given, but feature_info's finest map has reduction {pyramid.reductions[0]}, which is level {first}")
        params[FIRST_LEVEL_PARAM] = first
    return list(pyramid.channels), params


def check_feature_levels(analysis: Any, feature_info: Any) -> None:
    """:class:`SpecError` unless the expanded spec's inputs sit at the backbone's levels."""
    pyramid = read_feature_info(feature_info, analysis.doc.file)
    inputs = analysis.flat.inputs
    spec_levels = [decl.level for decl in inputs]
    if spec_levels != list(pyramid.levels):
        listing = ", ".join(f"{decl.name} (level {decl.level})" for decl in inputs)
        backbone = ", ".join(f"reduction {r} (level {lv})" for r, lv in zip(pyramid.reductions, pyramid.levels))
        hint = "" if FIRST_LEVEL_PARAM in _declared_params(analysis.doc) else f"; the spec has no '{FIRST_LEVEL_PARAM}' parameter to move its inputs"
        raise _error(analysis.doc.file, f"feature_info gives {backbone}, but the spec's inputs are {listing}{hint}")


def _declared_params(doc: Any) -> Mapping[str, Any]:
    """The spec's ``params`` mapping (empty for a spec without one; the schema stage reports a malformed one)."""
    params = doc.data.get("params") if isinstance(doc.data, Mapping) else None
    return params if isinstance(params, Mapping) else {}


def _positive_ints(values: Sequence[Any]) -> list[int] | None:
    """The values as ints (numpy integers included), or None unless all are integers >= 1."""
    try:
        ints = [operator.index(v) for v in values]
    except TypeError:
        return None
    return ints if all(v >= 1 for v in ints) and not any(isinstance(v, bool) for v in values) else None


def _error(file: str, message: str) -> SpecError:
    return SpecError([Issue(file, 0, 0, "feature_info", message)])
