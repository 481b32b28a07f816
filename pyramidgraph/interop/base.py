"""Reproducing a reference implementation's neck: which spec, which parameters, which keys.

A reference (torchvision's FPN, mmdetection's necks, efficientdet-pytorch's BiFpn,
ultralytics' YOLOv8 neck) is described by one small :class:`Reference` class that turns the
reference constructor's ``config`` into a :class:`Conversion`: the bundled spec to compile,
its parameters, the interface (input/output names, return type) and a declarative
:class:`KeyMap` from the reference's ``state_dict`` names to ours. No neck is hand-written in
Python here: the spec *is* the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Mapping

import torch

from ..errors import Issue, SpecError, did_you_mean

__all__ = ["Conversion", "KeyMap", "SharedKeyMap", "Reference", "REFERENCES", "register_reference", "reference_for", "ConversionError", "CheckpointError", "check_checkpoint", "refuse_unknown_keys", "doubling_strides"]


def ConversionError(source: str, message: str) -> SpecError:
    """A config or checkpoint that cannot be converted, as the API's one exception type."""
    return SpecError([Issue(source, 0, 0, "config", message)])


def refuse_unknown_keys(source: str, config: Mapping[Any, Any], known: Iterable[str], owner: str, noun: str = "config key", prefix: str = "", unlisted: Iterable[str] = ()) -> None:
    """Refuse a ``config`` key the reference does not take, as the reference's own ``TypeError``
    would: the first unknown key (sorted as strings), the closest known name, and the ``known``
    ones ``owner`` takes. ``unlisted`` keys are accepted and suggested but not listed (mmcv's
    registry ``type``); ``prefix`` opens the message (the neck's name, for a chain's converters)."""
    listed = set(known)
    accepted = listed | set(unlisted)
    unknown = sorted(set(config) - accepted, key=str)
    if unknown:
        first = unknown[0]
        raise ConversionError(source, f"{prefix}unknown {noun} '{first}'{did_you_mean(str(first), accepted)} ({owner} takes: {', '.join(sorted(listed))})")


def doubling_strides(source: str, key: str, strides: Any, count: int, what: str, why: str) -> int:
    """The finest input's level from ``strides``: ``count`` positive integers (``what`` says
    which, for the message), powers of two each twice the one before, as a reference that
    resamples between neighbouring inputs by exact factors of 2 needs (``why`` says so in its
    terms)."""
    if not (isinstance(strides, (list, tuple)) and len(strides) == count and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in strides)):
        raise ConversionError(source, f"{key} must be {what}, not {strides!r}")
    first = strides[0]
    if first & (first - 1) or list(strides) != [first * 2**i for i in range(count)]:
        raise ConversionError(source, f"{key} {list(strides)}: {why}")
    return first.bit_length() - 1


def CheckpointError(source: str, message: str) -> SpecError:
    """A checkpoint that cannot be loaded or does not hold a state_dict, labelled as the checkpoint's."""
    return SpecError([Issue(source, 0, 0, "checkpoint", message)])


def check_checkpoint(state_dict: Any, source: str) -> None:
    """A state_dict is a mapping of string keys to dense tensors with data: anything else (a
    list, one tensor, None, integer keys, non-tensor values, sparse or meta tensors) is refused
    with every offending key named, before any of it is used."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(source, f"a checkpoint is a state_dict (a mapping of parameter names to tensors), not {type(state_dict).__name__}")
    problems = []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            problems.append(f"key {key!r} is a {type(key).__name__}, not a parameter name")
        elif not isinstance(value, torch.Tensor):
            problems.append(f"'{key}' holds a {type(value).__name__}, not a tensor")
        elif value.layout != torch.strided:
            problems.append(f"'{key}' is a {value.layout} tensor; a neck's weights are dense")
        elif value.is_meta:
            problems.append(f"'{key}' is a meta tensor: it has a shape but no values")
    if problems:
        raise SpecError([Issue(source, 0, 0, "checkpoint", p) for p in problems[:20]] + ([Issue(source, 0, 0, "checkpoint", f"... and {len(problems) - 20} more")] if len(problems) > 20 else []))


@dataclass
class KeyMap:
    """Reference module paths -> pyramidgraph module paths.

    ``prefixes`` maps a module path of the reference (``inner_blocks.0.0``) to ours
    (``L2.post0``); every key under it keeps its tail (``.weight``, ``.running_mean``).
    ``leaves`` renames a tail where the two differ (effdet's ``edge_weights`` is our
    ``weight``). The longest matching prefix wins. Loading is strict: every reference key
    must be mapped and every key of the neck filled, with equal shapes.
    """

    prefixes: dict[str, str] = field(default_factory=dict)
    leaves: dict[str, str] = field(default_factory=dict)

    def add(self, reference: str, ours: str) -> None:
        assert reference not in self.prefixes, f"key map maps {reference} twice"
        self.prefixes[reference] = ours

    def target(self, key: str) -> str | None:
        parts = key.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in self.prefixes:
                tail = parts[cut:]
                if tail and tail[-1] in self.leaves:
                    tail = tail[:-1] + [self.leaves[tail[-1]]]
                ours = self.prefixes[prefix]
                return ".".join([ours, *tail]) if ours else ".".join(tail)
        return None

    def convert(self, state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
        """Rename ``state_dict`` to our keys; raise SpecError naming every key that does not fit."""
        check_checkpoint(state_dict, source)
        out: dict[str, torch.Tensor] = {}
        problems: list[str] = []
        for key, value in state_dict.items():
            ours = self.target(key)
            if ours is None:
                problems.append(f"reference key '{key}' has no counterpart")
            elif ours not in expected:
                problems.append(f"reference key '{key}' maps to '{ours}', which the neck does not have{did_you_mean(ours, expected)}")
            elif ours in out:
                problems.append(f"reference key '{key}' maps to '{ours}' a second time")
            elif tuple(expected[ours].shape) != tuple(value.shape):
                problems.append(f"'{key}' has shape {tuple(value.shape)} but '{ours}' needs {tuple(expected[ours].shape)}")
            else:
                out[ours] = value
        for key in expected:
            if key not in out and not any(p.endswith(f"'{key}'") for p in problems):
                problems.append(f"neck key '{key}' gets no value from the reference")
        if problems:
            raise SpecError([Issue(source, 0, 0, "state_dict", p) for p in problems])
        return out


@dataclass
class Conversion:
    """What reproducing one reference configuration takes."""

    spec: str
    in_channels: list[int]
    params: dict[str, Any]
    key_map: KeyMap
    input_names: list[str] | None = None
    output_names: list[str] | None = None
    return_type: str = "tuple"
    image: tuple[int, int] | None = None


@dataclass
class SharedKeyMap(KeyMap):
    """A :class:`KeyMap` for a reference that repeats one module under several paths (a
    ``ModuleList([m] * n)``): ``repeats`` maps each repeated path to the one the map converts
    (``leach.1`` -> ``leach.0``). A repeat's tensors must equal that path's; they are then left
    out, so the neck holds them once."""

    repeats: dict[str, str] = field(default_factory=dict)

    def convert(self, state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
        check_checkpoint(state_dict, source)
        to_owner = KeyMap(dict(self.repeats))
        kept: dict[str, torch.Tensor] = {}
        problems: list[str] = []
        for key, value in state_dict.items():
            owner = to_owner.target(key)
            if owner is None:
                kept[key] = value
            elif owner not in state_dict:
                problems.append(f"reference key '{key}' repeats '{owner}', which the checkpoint does not have")
            elif state_dict[owner].shape != value.shape or not torch.equal(state_dict[owner], value):
                problems.append(f"reference key '{key}' differs from '{owner}'; the reference calls one module under both names, so they must be equal")
        if problems:
            raise SpecError([Issue(source, 0, 0, "state_dict", p) for p in problems])
        return super().convert(kept, expected, source)


class Reference:
    """One reference implementation: its ``source`` id and how a config converts."""

    source: ClassVar[str] = ""

    def convert(self, config: Mapping[str, Any]) -> Conversion:
        raise NotImplementedError


REFERENCES: dict[str, Reference] = {}


def register_reference(cls: type[Reference]) -> type[Reference]:
    assert cls.source and cls.source not in REFERENCES, f"reference {cls.source!r} registered twice"
    REFERENCES[cls.source] = cls()
    return cls


def reference_for(source: str) -> Reference:
    if source not in REFERENCES:
        hint = did_you_mean(source, REFERENCES) or f"; known: {', '.join(sorted(REFERENCES))}"
        raise ConversionError(source, f"unknown reference '{source}'{hint}")
    return REFERENCES[source]
