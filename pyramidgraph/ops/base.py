"""What an op is, and the registries that map spec names to op classes.

An op is one small dataclass. Its fields are its spec parameters (the JSON Schema fragment is
derived from their type hints), ``infer`` is its shape rule and ``emit`` adds its modules and
calls to the ``torch.fx`` graph. Registering the class is the only step needed for the spec
language, the schema, the docs and the CLI's ``list-ops`` to know it:

.. code-block:: python

    @POST.register("bn")
    @dataclass(frozen=True)
    class BatchNorm(PostOp):
        \"\"\"Batch normalisation over the node's channels.\"\"\"
        eps: float = 1e-5

        def infer(self, x, channels):
            return x

        def emit(self, e, args, shapes, out):  # declares the module; the materialise stage builds it
            return e.call_module("", declare(nn.BatchNorm2d, out.channels, eps=self.eps), args[0])

There are four kinds: ``resample`` ops sit on an edge and bring a source to its target's level
and width, ``fuse`` ops merge a node's resampled inputs, ``post`` ops run in order after fusion,
and ``apply`` ops take a node's inputs as they are, at their own levels (cross-level attention),
with one output or several.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Mapping

from ..errors import did_you_mean
from ..shape import FeatureShape

if TYPE_CHECKING:  # pragma: no cover
    import torch.fx

    from ..codegen import Emitter

__all__ = ["Op", "Site", "ResampleOp", "FuseOp", "PostOp", "ApplyOp", "Registry", "OpError", "RESAMPLE", "FUSE", "POST", "APPLY", "REGISTRIES", "internal", "one_call_when_traced"]


class OpError(ValueError):
    """An op spec that names no op or has bad parameters."""


def one_call_when_traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` to stay one call when ``torch.fx.symbolic_trace`` re-traces a compiled neck.

    Such a function decides on sizes in Python (``max`` of two shape arithmetics, ``if size ==``),
    which a tracer's proxies cannot go through. The emitter sets fx's ``is_wrapped`` flag on
    its calls, so the generated code declares the function with ``torch.fx.wrap`` and a re-trace
    records one call, as the compiled graph has it."""
    fn.fx_wrapped = True
    return fn


def internal(default: Any = None) -> Any:
    """A dataclass field the compiler fills in (not settable from a spec)."""
    return dataclasses.field(default=default, metadata={"internal": True})


@dataclass(frozen=True)
class Site:
    """Where an op is used, and what its place asks of it: the context :meth:`Op.at` and
    :meth:`Op.shape` get. ``role``: ``edge`` (a resample op: ``target`` is the level, width and
    size the edge must reach), ``fuse``, ``post`` or ``apply``; ``channels``: the node's declared
    width (None when it declares none)."""

    role: str
    target: FeatureShape | None = None
    channels: int | None = None


@dataclass(frozen=True)
class Op:
    """Base of every op. Subclasses are frozen dataclasses whose fields are spec parameters.

    The compiler knows an op through one contract: :meth:`at` fills in what the spec left to the
    compiler for this place (a stride from the level difference), :meth:`shape` gives the output
    shape from the input shapes, :meth:`emit` adds the calls. The kind bases below turn it into
    the form each kind is easiest to write in (``infer(x, target)`` on an edge, ``infer(xs)`` for a
    fusion, ``infer(x, channels)`` after it); an op that fits several places (``conv`` on an
    edge and after a fusion) names them in ``kinds`` and implements the contract itself."""

    kind: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    """The registries an op of several places is registered in (``("resample", "post")``)."""
    name: ClassVar[str] = ""
    shorthand: ClassVar[str | None] = None
    """The parameter a scalar sets: ``{conv: 3}`` means ``{conv: {kernel: 3}}``."""
    has_parameters: ClassVar[bool] = False
    """Whether the op owns learnable parameters or buffers (pure ops may be shared by CSE)."""
    stateful: ClassVar[bool] = False
    """Whether the op's module keeps state but no weights (DropBlock's call counter and random
    draws): it sets ``has_parameters`` too, so that it gets a module of its own and is never
    merged with another op, but it is not learnable (the op reference says so)."""
    changes_channels: ClassVar[bool] = False
    """On an edge: whether the op maps to the target width itself (then no separate projection is added)."""
    needs_size_ref: ClassVar[bool] = False
    """On an edge: whether the op reads the size of the target level's map (upsampling by size);
    lowering then passes that map as the op's last argument."""
    exact_ratio: ClassVar[bool] = False
    """Whether the op scales sizes by a fixed factor (``upsample`` by scale), so that its map lines
    up with the target level's only for exact ratios: the neck then needs image sides divisible
    by a power of two (a property where it depends on the op's parameters)."""
    projects_inputs: ClassVar[bool] = True
    """As a fusion: whether every input is first brought to the node's width (sum-like fusions)."""

    def at(self, inputs: list[FeatureShape], site: Site) -> Op:
        """This op with what the spec left open filled in for ``site`` (itself by default)."""
        return self

    def shape(self, inputs: list[FeatureShape], site: Site) -> FeatureShape | list[FeatureShape]:
        """The output's shape (or the shapes of several outputs) at ``site``; a
        :class:`~pyramidgraph.shape.ShapeError` when the inputs do not fit."""
        raise NotImplementedError

    def emit(self, e: Emitter, args: list[torch.fx.Node], shapes: list[FeatureShape], out: FeatureShape) -> torch.fx.Node:
        raise NotImplementedError

    def weight_estimate(self, shapes: list[FeatureShape], out: FeatureShape) -> int:
        """About how many parameters the op holds, from the widths alone (no torch): enough to
        refuse at validation a neck whose weights cannot be allocated, while ``info`` counts them
        exactly. The default is a convolution from all the inputs' widths to the output's with the
        op's ``kernel`` and ``groups``, once per ``blocks``, and nothing for an op without
        parameters; an op far from that shape overrides it."""
        if not self.has_parameters:
            return 0
        params = self.params()

        def count(key: str) -> int:
            value = params.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1

        in_channels = sum(shape.channels for shape in shapes)
        if params.get("depthwise") is True:  # a depthwise kxk conv, then a pointwise 1x1 one
            per_block = in_channels * count("kernel") ** 2 + in_channels * out.channels
        else:
            per_block = in_channels * out.channels * count("kernel") ** 2 // count("groups")
        return per_block * count("blocks") + 2 * out.channels

    def label(self) -> str:
        """Short text for diagrams and summaries, e.g. ``conv3x3``."""
        return self.name

    def params(self) -> dict[str, Any]:
        """The spec-visible parameters and their values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("internal")}

    @classmethod
    def param_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]

    @classmethod
    def param_hints(cls) -> dict[str, Any]:
        """The fields' type hints, resolved once per class: ``typing.get_type_hints`` evaluates
        every annotation string again on each call (0.5 ms), which was most of the cost of
        expanding a spec of thousands of nodes."""
        return _type_hints(cls)

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        """JSON Schema of the op's parameter mapping, derived from the field type hints."""
        hints = cls.param_hints()
        properties = {}
        for f in cls.param_fields():
            prop = _schema_of(hints[f.name])
            doc = f.metadata.get("doc")
            if doc:
                prop["description"] = doc
            if f.default is not dataclasses.MISSING:
                prop["default"] = f.default
            properties[f.name] = prop
        return {"type": "object", "properties": properties, "additionalProperties": False}


@dataclass(frozen=True)
class ResampleOp(Op):
    """Brings a feature map towards its target's level and/or width, on one edge."""

    kind: ClassVar[str] = "resample"

    def infer(self, x: FeatureShape, target: FeatureShape) -> FeatureShape:
        raise NotImplementedError

    def bind(self, x: FeatureShape, target: FeatureShape) -> ResampleOp:
        """Fill in what the spec left to the compiler (scale, stride) for this edge."""
        return self

    def at(self, inputs, site):
        return self.bind(inputs[0], site.target)

    def shape(self, inputs, site):
        return self.infer(inputs[0], site.target)


@dataclass(frozen=True)
class FuseOp(Op):
    """Merges the resampled inputs of a node into one feature map."""

    kind: ClassVar[str] = "fuse"

    def infer(self, xs: list[FeatureShape]) -> FeatureShape:
        raise NotImplementedError

    def shape(self, inputs, site):
        return self.infer(inputs)


@dataclass(frozen=True)
class PostOp(Op):
    """One step of the ordered list applied after fusion."""

    kind: ClassVar[str] = "post"

    def infer(self, x: FeatureShape, channels: int | None) -> FeatureShape:
        """``channels`` is the node's declared width (None when the node declares none)."""
        return x

    def shape(self, inputs, site):
        return self.infer(inputs[0], site.channels)


@dataclass(frozen=True)
class ApplyOp(Op):
    """An op a node applies to its inputs *as they are* (``apply:``): each at its own level, size
    and width, none resampled, so an op can read several resolutions at once (cross-level
    attention) and decide its output's level itself. ``infer`` gets every input's shape and the
    node's declared width; it returns the output's shape, or a list of shapes for an op with
    several outputs (read as ``node.0``, ``node.1``...), and ``emit`` returns a node, or a list
    of nodes in the same order."""

    kind: ClassVar[str] = "apply"
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = None

    def infer(self, xs: list[FeatureShape], channels: int | None) -> FeatureShape | list[FeatureShape]:
        raise NotImplementedError

    def shape(self, inputs, site):
        return self.infer(inputs, site.channels)

    def level_of(self, levels: list[int]) -> int | None:
        """The output's level from the inputs' levels alone, for the checks that run before
        shapes are inferred (an include's inputs must be at the levels it declares): the first
        input's by default; an op whose output is elsewhere overrides it (None: unknown)."""
        return levels[0] if levels else None


class Registry:
    """Maps spec names (and aliases with preset parameters) to op classes of one kind."""

    def __init__(self, kind: str, base: type[Op]):
        self.kind = kind
        self.base = base
        self.entries: dict[str, tuple[type[Op], dict[str, Any]]] = {}

    def register(self, name: str, **aliases: dict[str, Any]):
        """Class decorator: register ``cls`` as ``name``, plus ``alias=preset`` entries."""

        for taken in (name, *aliases):
            if taken in self.entries:
                raise ValueError(f"{self.kind} op '{taken}' is already registered (by {self.entries[taken][0].__module__}); choose another name")

        def decorate(cls: type[Op]) -> type[Op]:
            if not (isinstance(cls, type) and (issubclass(cls, self.base) or (issubclass(cls, Op) and self.kind in cls.kinds))):
                raise TypeError(f"a {self.kind} op is a subclass of {self.base.__name__} (or an Op listing {self.kind!r} in its kinds), not {cls!r}")
            for taken in (name, *aliases):
                if taken in self.entries:
                    raise ValueError(f"{self.kind} op '{taken}' is already registered (by {self.entries[taken][0].__module__}); choose another name")
            if cls.name and cls.name != name and any(entry[0] is cls for registry in REGISTRIES.values() for entry in registry.entries.values()):
                raise ValueError(f"{cls.__name__} is registered already as '{cls.name}'; an op class has one name (give aliases for others)")
            try:
                cls.params_schema()  # every parameter's type must have a schema, or no spec could be checked
            except TypeError as exc:
                raise TypeError(f"{self.kind} op '{name}': {exc}; parameters are int, float, bool, str, Literal, None, list[...] or dict[str, ...]") from None
            cls.name = name
            self.entries[name] = (cls, {})
            GENERATION[0] += 1  # the schema and everything derived from the registries are rebuilt
            for alias, preset in aliases.items():
                self.entries[alias] = (cls, dict(preset))
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self.entries)

    def lookup(self, name: str) -> tuple[type[Op], dict[str, Any]]:
        if name not in self.entries:
            raise OpError(
                f"unknown {self.kind} op '{name}'{did_you_mean(name, self.entries)} "
                f"(`pyramidgraph list-ops {self.kind}` lists them)"
            )
        return self.entries[name]

    def make(self, item: Any) -> Op:
        """Build an op from its spec form: ``name``, ``{name: params}`` or ``{op: name, ...params}``."""
        name, params = split_op_item(item)
        cls, preset = self.lookup(name)
        if params is None:
            params = {}
        elif not isinstance(params, Mapping):
            if cls.shorthand is None:
                raise OpError(f"{self.kind} op '{name}' takes a mapping of parameters, not {params!r}")
            params = {cls.shorthand: params}
        fields = {f.name: f for f in cls.param_fields()}
        hints = cls.param_hints()
        values = dict(preset)
        for key, value in params.items():
            if key in preset and value != preset[key]:
                raise OpError(f"{self.kind} op '{name}' fixes {key}={preset[key]!r}; use '{cls.name}' for another {key}")
            if key not in fields:
                raise OpError(f"{self.kind} op '{name}' has no parameter '{key}'{did_you_mean(str(key), fields)} (it takes: {', '.join(fields) or 'none'})")
            problem = _type_problem(value, hints[key])
            if problem:
                raise OpError(f"{self.kind} op '{name}': parameter '{key}' {problem}")
            values[key] = frozen(value)
        op = cls(**values)
        for key, value in op.params().items():
            if key in _POSITIVE and isinstance(value, int) and not 1 <= value <= _POSITIVE[key]:
                raise OpError(f"{self.kind} op '{name}': parameter '{key}' must be between 1 and {_POSITIVE[key]}, not {value}")
            if key == "padding" and isinstance(value, int) and not 0 <= value <= 64:
                raise OpError(f"{self.kind} op '{name}': parameter 'padding' must be between 0 and 64, not {value}")
            limits = _FLOAT_RANGES.get(key.rsplit("_", 1)[-1])
            if limits and isinstance(value, (int, float)) and not isinstance(value, bool) and not limits[0] <= value <= limits[1]:
                raise OpError(f"{self.kind} op '{name}': parameter '{key}' must be {limits[2]}, not {value}")
        return op


class FrozenDict(dict):
    """A mapping parameter's value: a dict that cannot change and hashes, so that an op holding
    one stays a frozen, hashable dataclass (ops are compared and hashed by the passes)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda item: item[0])))

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("an op's parameters cannot change")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _immutable  # type: ignore[assignment]

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def frozen(value: Any) -> Any:
    """``value`` with lists as tuples and mappings as :class:`FrozenDict`, all the way down."""
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    if isinstance(value, Mapping):
        return FrozenDict({k: frozen(v) for k, v in value.items()})
    return value


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_POSITIVE = {"kernel": 31, "stride": 64, "scale": 64, "groups": 65536, "dilation": 16, "out": 65536, "compress": 65536, "norm_groups": 65536, "parts": 65536, "inner": 65536}
"""Integer parameters that must be positive, with an upper bound that catches typos."""

_FLOAT_RANGES = {
    "eps": (1e-30, 1.0, "between 1e-30 and 1 (smaller underflows in float32 and a zero variance gives NaN)"),
    "momentum": (0.0, 1.0, "between 0 and 1"),
    "slope": (0.0, 1.0, "between 0 and 1 (a leaky ReLU's negative slope)"),
}
"""Float parameters by the last part of their name (``eps``, ``norm_eps``, ``bn_momentum``):
values outside these ranges compute NaN, infinities or nonsense silently. NaN fails every range."""


def split_op_item(item: Any) -> tuple[str, Any]:
    """Split an op item into its name and raw parameters (without checking the name)."""
    if isinstance(item, str):
        return item, None
    if isinstance(item, Mapping):
        if "op" in item:
            rest = {k: v for k, v in item.items() if k != "op"}
            if not isinstance(item["op"], str):
                raise OpError(f"'op' must name an op, not {item['op']!r}")
            return item["op"], rest
        if len(item) == 1:
            (name, params), = item.items()
            return str(name), params
    raise OpError(f"an op is a name, {{name: parameters}} or {{op: name, ...}}, not {item!r}")


GENERATION = [0]
"""Counts registrations, so that what is derived from the registries (the JSON Schema) is
cached per set of registered ops and rebuilt when a plugin adds one."""

RESAMPLE = Registry("resample", ResampleOp)
FUSE = Registry("fuse", FuseOp)
POST = Registry("post", PostOp)
APPLY = Registry("apply", ApplyOp)
REGISTRIES: dict[str, Registry] = {r.kind: r for r in (RESAMPLE, FUSE, POST, APPLY)}


def _schema_of(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (list, tuple):  # list[int], tuple[int, ...]: a YAML list
        (item, *_rest) = typing.get_args(hint) or (Any,)
        return {"type": "array", "items": _schema_of(item)} if item is not Any else {"type": "array"}
    if origin is dict:  # dict[str, int]: a YAML mapping
        _key, value = typing.get_args(hint) or (str, Any)
        return {"type": "object", "additionalProperties": _schema_of(value)} if value is not Any else {"type": "object"}
    if origin is Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        options = [_schema_of(a) for a in typing.get_args(hint)]
        return {"anyOf": options}
    if hint is type(None):
        return {"type": "null"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    raise TypeError(f"no JSON Schema for parameter type {hint!r}")


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit ``hint``, or None when it does."""
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return f"must be a list, not {value!r}"
        (item, *_rest) = typing.get_args(hint) or (Any,)
        for index, entry in enumerate(value):
            problem = None if item is Any else _type_problem(entry, item)
            if problem:
                return f"[{index}] {problem}"
        return None
    if origin is dict:
        if not isinstance(value, Mapping):
            return f"must be a mapping, not {value!r}"
        _key, item = typing.get_args(hint) or (str, Any)
        for key, entry in value.items():
            problem = None if item is Any else _type_problem(entry, item)
            if not isinstance(key, str):
                return f"keys must be names, not {key!r}"
            if problem:
                return f"[{key!r}] {problem}"
        return None
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value in allowed and type(value) is type(allowed[allowed.index(value)]):
            return None
        names = [str(a) for a in allowed]
        return f"must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}{did_you_mean(str(value), names)}"
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, a) for a in typing.get_args(hint)]
        if any(p is None for p in problems):
            return None
        return "; or ".join(p for p in problems if p)
    if hint is type(None):
        return None if value is None else f"must be null, not {value!r}"
    if hint is bool:
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"must be an integer, not {value!r}"
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else f"must be a number, not {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"must be a string, not {value!r}"
    return None
