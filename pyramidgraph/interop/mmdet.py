"""mmdetection's necks (``mmdet/models/necks``), one converter per neck ``type``.

The fixtures' ``config`` for ``source == "mmdet"`` is ``{"strides": [...], "necks": [cfg, ...]}``:
necks run in sequence (Libra R-CNN is ``[FPN, BFP]``). One neck converts to its spec directly;
a chain converts to a small generated spec that ``include``s each neck's spec, feeding each the
previous one's outputs, and the key map puts neck ``i``'s keys (``i.lateral_convs...`` in the
reference's ``nn.Sequential``) under ``n{i}``.

A converter for a neck type is a function ``(neck_config, strides) -> Conversion`` registered
in :data:`NECKS` with :func:`register_neck`; each lives in its own module.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..compiler import Analysis, analyze
from .base import Conversion, ConversionError, KeyMap, Reference, register_reference

__all__ = ["MMDetNecks", "NECKS", "register_neck"]

NeckConverter = Callable[[Mapping[str, Any], list[int]], Conversion]
NECKS: dict[str, NeckConverter] = {}


def register_neck(neck_type: str):
    def decorate(fn: NeckConverter) -> NeckConverter:
        assert neck_type not in NECKS, f"mmdet neck {neck_type} registered twice"
        NECKS[neck_type] = fn
        return fn

    return decorate


def used_inputs(kind: str, cfg: Mapping[str, Any], num_ins: int) -> tuple[int, int, int]:
    """``(start, used, num_outs)`` from ``start_level``/``end_level``/``num_outs``, as every
    mmdetection neck with those arguments reads them: ``end_level`` is an inclusive input index
    (``-1``: the last input), and with an explicit ``end_level`` no extra levels are added."""
    num_outs = int(cfg["num_outs"])
    start = int(cfg.get("start_level", 0))
    end = int(cfg.get("end_level", -1))
    if not 0 <= start < num_ins:
        raise ConversionError(MMDetNecks.source, f"{kind}: start_level {start} is not an input index (0..{num_ins - 1})")
    if end in (-1, num_ins - 1):
        backbone_end = num_ins
        if num_outs < num_ins - start:
            raise ConversionError(MMDetNecks.source, f"{kind}: num_outs {num_outs} is less than the {num_ins - start} inputs used")
    else:
        if not start <= end < num_ins:
            raise ConversionError(MMDetNecks.source, f"{kind}: end_level {end} must be -1 or an input index from start_level {start} to {num_ins - 1}")
        backbone_end = end + 1
        if num_outs != end - start + 1:
            raise ConversionError(MMDetNecks.source, f"{kind}: with end_level {end}, num_outs must be {end - start + 1}, got {num_outs}")
    return start, backbone_end - start, num_outs


def _levels(strides: list[int]) -> list[int]:
    levels = [s.bit_length() - 1 for s in strides]
    if any(2**level != s for level, s in zip(levels, strides)):
        raise ConversionError(MMDetNecks.source, f"strides must be powers of two, got {strides}")
    return levels


@register_reference
class MMDetNecks(Reference):
    source = "mmdet"

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        necks = list(config["necks"])
        strides = list(config.get("strides") or [])
        plans = []
        analyses = []
        for neck in necks:
            kind = neck.get("type")
            if kind not in NECKS:
                raise ConversionError(self.source, f"no converter for mmdet neck '{kind}'; known: {', '.join(sorted(NECKS))}")
            plan = NECKS[kind](neck, strides)
            plans.append(plan)
            analyses.append(analyze(plan.spec, plan.in_channels, params=plan.params))  # once per neck
            strides = _output_strides(analyses[-1])  # the next neck's input strides
        if len(plans) == 1:
            return plans[0]
        return _chain(plans, analyses, list(config.get("strides") or []))


def _output_strides(analysis: Analysis) -> list[int]:
    shapes = analysis.ir.values()
    return [shapes[value].stride for _, value in analysis.ir.outputs]


def _chain(plans: list[Conversion], analyses: list[Analysis], strides: list[int]) -> Conversion:
    """One spec running the necks in sequence, each included with its parameters (``analyses``:
    each neck's, made once while converting)."""
    levels = _levels(strides)
    spec: dict[str, Any] = {
        "pyramidgraph": 1,
        "name": "chain",
        "doc": "mmdetection necks run in sequence.",
        "inputs": {f"C{level}": {"level": level} for level in levels},
        "nodes": {},
    }
    previous = [f"C{level}" for level in levels]
    key_map = KeyMap()
    for i, plan in enumerate(plans):
        name = f"n{i}"
        spec["nodes"][name] = {"include": plan.spec, "params": dict(plan.params), "inputs": previous}
        for reference, ours in plan.key_map.prefixes.items():
            key_map.add(f"{i}.{reference}", f"{name}.{ours}" if ours else name)
        key_map.leaves.update(plan.key_map.leaves)
        analysis = analyses[i]
        if i == 0:  # inputs the first neck ignores (mmdet's start_level, end_level) are optional in the chain too
            for level, decl in zip(levels, analysis.flat.inputs):
                if decl.optional:
                    spec["inputs"][f"C{level}"]["optional"] = True
        previous = [f"{name}.{output}" for output, _ in analysis.ir.outputs]
    spec["outputs"] = previous
    return Conversion(spec, plans[0].in_channels, {}, key_map, return_type="tuple")
