"""Stage 2b: expand a schema-valid document into a flat list of inputs, nodes and outputs.

This is where the spec language's conveniences disappear: parameters are evaluated
(``$channels``, ``${channels * 2}``), ``foreach`` makes one node per value, ``when`` drops
nodes, ``defaults`` fill in what a node leaves out, and blocks with ``repeat`` are unrolled
into uniquely named nodes (``cell.0.P4_td``) whose module names are shared or not. References
between nodes are resolved once everything is expanded, so a node may name a node defined
below it, and a block output is ``block.name``.

The result, :class:`FlatSpec`, contains only concrete values and op objects; every piece
remembers the spec path it came from, for error messages.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from . import errors
from .errors import Issue, did_you_mean, format_path
from .expr import ExprError, substitute
from .loader import Document
from .ops import APPLY, FUSE, POST, RESAMPLE, ApplyOp, FuseOp, OpError, PostOp, ResampleOp
from .params import declarations
from .reserved import reserved_reason
from .schema import NAME_PATTERN

__all__ = ["FlatSpec", "InputDecl", "NodeDecl", "EdgeDecl", "OutputDecl", "Where", "expand", "MAX_NODES", "MAX_REPEAT", "MAX_LEVEL", "MAX_CHANNELS"]

MAX_NODES = 5_000
"""Largest number of nodes a spec may expand to."""
MAX_REPEAT = 1_000
MAX_LEVEL = 16
MAX_INCLUDE_DEPTH = 8
MAX_CHANNELS = 65_536

BUILTIN_PARAMS = ("num_inputs", "in_channels")
DEFAULT_POLICY = {"up": "nearest", "down": "maxpool", "project": "project", "order": "project_first"}
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Where:
    """A place in the spec: ``raw`` finds the line (template keys), ``shown`` is printed.

    ``doc`` is the file the place is in when that is not the spec being compiled (a node of an
    included spec): later stages report on the top document, and the place must not be looked
    up there."""

    raw: tuple
    shown: tuple
    doc: Document | None = field(default=None, compare=False, repr=False)

    def __add__(self, part: tuple) -> Where:
        return Where(self.raw + part, self.shown + part, self.doc)

    def child(self, raw_key: Any, shown_key: Any) -> Where:
        return Where(self.raw + (raw_key,), self.shown + (shown_key,), self.doc)

    def issue(self, doc: Document, message: str, key: bool = False) -> Issue:
        return (self.doc or doc).issue(self.raw, message, key=key, shown=format_path(self.shown))


@dataclass
class InputDecl:
    name: str
    level: int
    channels: int | None
    where: Where
    optional: bool = False  # the neck accepts it but need not use it (mmdet's start_level)


@dataclass
class EdgeDecl:
    """One entry of a node's ``from``: its source and how to resample it."""

    ref: str
    where: Where
    up: ResampleOp
    down: ResampleOp
    project: ResampleOp | None  # None: never project (``project: none``)
    order: str = "project_first"
    via: list[ResampleOp] | None = None
    channels: int | None = None  # the width this edge brings its source to, instead of the node's (a concat's input)
    source: str | None = None  # the resolved node or input id, with ``.pre`` for a tap
    scope: Scope | None = field(default=None, repr=False)


@dataclass
class NodeDecl:
    id: str
    module: str  # where the node's modules live in the state_dict (shared blocks reuse it)
    level: int | None
    channels: int | None
    fuse: FuseOp
    post: list[PostOp]
    edges: list[EdgeDecl]
    where: Where
    block: str | None = None  # the shared block (or the node or include named by ``share:``) whose weights the node uses
    apply: ApplyOp | None = None  # ``apply:``: one op over the inputs as they are (then ``fuse`` is unused)
    share_of: str | None = None  # ``share:``: the node or include (by id) whose weights the node uses
    share_group: str | None = None  # the node, or the include (by id), that wrote ``share:``
    share_kind: str = "node"  # what ``share:`` was written on: ``node`` or ``include``
    share_where: Where | None = None  # where that ``share:`` is written (an include's, for its nodes' problems)


@dataclass
class OutputDecl:
    name: str
    ref: str
    where: Where
    source: str | None = None
    scope: Scope | None = field(default=None, repr=False)


@dataclass
class IncludeInput:
    """An input of an included spec and what the including spec feeds it (``include: ..., inputs:``)."""

    name: str  # the input's name inside the included spec
    level: int  # the level the included spec declares for it
    ref: str  # what the including spec passes
    where: Where  # the entry of the include's ``inputs`` list
    scope: Scope = field(repr=False)
    source: str | None = None  # ``ref`` resolved: a node or input id


@dataclass
class FlatSpec:
    """A spec with everything evaluated: what validation and lowering work on."""

    name: str
    doc: str
    file: str
    params: dict[str, Any]
    inputs: list[InputDecl]
    nodes: dict[str, NodeDecl]
    outputs: list[OutputDecl]
    return_type: str
    image: tuple[int, int] | None
    """The image the compile-time size checks use: the caller's (``image=``), or the example's
    when the caller compiles the example (gives no widths); None otherwise, and then the
    compiled neck checks the sizes it is called with (:mod:`pyramidgraph.contract`)."""
    example: dict[str, Any]
    include_inputs: list[IncludeInput] = field(default_factory=list)


class _Bad(Exception):
    """Raised inside expansion after an issue was recorded, to skip the broken piece."""


class _TooMany(Exception):
    """Raised when more than ``errors.MAX_ISSUES`` issues are recorded: expansion stops."""


class Scope:
    """Names visible at one place: local nodes, block input aliases, then the outer scope."""

    def __init__(self, parent: Scope | None, prefix: str):
        self.parent = parent
        self.prefix = prefix
        self.names: dict[str, Any] = {}  # name -> id (str), _Alias or _BlockOutputs
        self.broken: list[NameTemplate] = []  # keys (templates too) whose foreach/when/name failed

    def visible(self) -> list[str]:
        names = list(self.names)
        return names + (self.parent.visible() if self.parent else [])


@dataclass
class _Alias:
    """A block input: in repetition 0 the outer ref, later the previous repetition's output."""

    scope: Scope
    ref: str


class _IncludeAlias(_Alias):
    """An included spec's input: an outer ref that does not resolve is reported where the
    include lists it, not at every node of the included spec that reads the input."""


class _Broken:
    """A node or block that could not be expanded: its problem is reported already, so
    references to it resolve to nothing without a second message."""


@dataclass
class _BlockOutputs:
    """``block.name`` outside a block: the last repetition's outputs."""

    last: Scope | None
    outputs: list[str]
    refs: dict[str, str] = field(default_factory=dict)
    """Output name -> reference inside ``last`` (an included spec's outputs), if different."""
    what: str = "block"


class _Expander:
    def __init__(self, doc: Document, in_channels: Any, params: Mapping[str, Any], image: Any, param_origins: Mapping[str, Where] | None = None, include_dirs: Sequence[Any] = ()):
        self.doc = doc
        self.include_dirs = tuple(include_dirs)  # folders includes may read besides the spec's own
        self.param_origins = dict(param_origins or {})  # where overrides were written (an include's params), if not in this spec
        self.issues: list[Issue] = []
        self.user_in_channels = in_channels
        self.user_params = dict(params)
        self.user_image = image
        self.node_count = 0
        self.nodes: dict[str, NodeDecl] = {}
        self.edges: list[EdgeDecl] = []
        self.include_stack: list[str] = [doc.file]
        self.failed_params: set[str] = set()  # parameters whose value failed (reported once)
        self.pending_outputs: list[tuple[_Expander, OutputDecl, Scope]] = []  # included specs' outputs, checked at the end
        self.broken_inputs: list[NameTemplate] = []  # input keys whose expansion failed (reported)
        self.input_names: set[str] = set()
        self.include_inputs: list[IncludeInput] = []  # every include's inputs, checked at the end
        self.included: dict[str, Document | None] = {}  # included specs read so far (None: refused, reported)
        self.share_of: str | None = None  # in an include with ``share:``: the include whose weights its nodes use
        self.share_group: str | None = None  # ... and that include's own id
        self.share_where: Where | None = None  # ... and where its ``share:`` is written

    # -- helpers ---------------------------------------------------------------------------

    def fail(self, where: Where, message: str, key: bool = False) -> _Bad:
        self.issues.append(where.issue(self.doc, message, key=key))
        if len(self.issues) > errors.MAX_ISSUES:
            raise _TooMany()
        return _Bad()

    def ev(self, value: Any, env: Mapping[str, Any], where: Where) -> Any:
        """Evaluate every expression string inside ``value``."""
        if isinstance(value, str):
            try:
                return substitute(value, env)
            except ExprError as exc:
                if getattr(exc, "unknown", None) in self.failed_params:
                    raise _Bad() from None  # the parameter's own problem is reported already
                raise self.fail(where, str(exc)) from None
        if isinstance(value, list):
            return [self.ev(v, env, where + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.ev(v, env, where + (k,)) for k, v in value.items()}
        return value

    def ev_int(self, value: Any, env: Mapping[str, Any], where: Where, what: str, low: int, high: int) -> int:
        result = self.ev(value, env, where)
        if isinstance(result, bool) or not isinstance(result, int):
            raise self.fail(where, f"{what} must be an integer, got {result!r}")
        if not low <= result <= high:
            raise self.fail(where, f"{what} must be between {low} and {high}, got {result}")
        return result

    def ev_bool(self, value: Any, env: Mapping[str, Any], where: Where, what: str) -> bool:
        result = self.ev(value, env, where)
        if not isinstance(result, bool):
            raise self.fail(where, f"{what} must be true or false, got {result!r}")
        return result

    def ev_name(self, key: str, env: Mapping[str, Any], where: Where, attribute: bool = True) -> str:
        """A node, block or input name (``attribute``: it becomes a module attribute and a
        variable of the generated code), or an output name (a key of the returned dict)."""
        name = self.ev(key, env, where)
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail(where, f"name {name!r} is not valid: use letters, digits and _, not starting with a digit", key=True)
        if name == "pre":
            raise self.fail(where, "'pre' is reserved for the .pre tap; choose another name", key=True)
        reason = reserved_reason(name) if attribute else None
        if reason:
            raise self.fail(where, reason, key=True)
        return name

    def make_op(self, registry, item: Any, env: Mapping[str, Any], where: Where):
        try:
            return registry.make(self.ev(item, env, where))
        except OpError as exc:
            raise self.fail(where, str(exc)) from None

    def bindings(self, body: Any, env: Mapping[str, Any], where: Where) -> Iterator[dict[str, Any]]:
        """The environments a ``foreach`` (if any) iterates over, with ``when`` applied."""
        spec = body.get("foreach") if isinstance(body, dict) else None
        if spec is None:
            envs: list[dict[str, Any]] = [dict(env)]
        else:
            names, lists = [], []
            for var, values in spec.items():
                values = self.ev(values, env, where + ("foreach", var))
                if not isinstance(values, list):
                    raise self.fail(where + ("foreach", var), f"foreach '{var}' needs a list, got {values!r}")
                names.append(var)
                lists.append(values)
            count = 1
            for values in lists:
                count *= len(values)
            if count > MAX_NODES:
                raise self.fail(where + ("foreach",), f"foreach makes {count} copies; the limit is {MAX_NODES}")
            envs = [dict(env, **dict(zip(names, combo))) for combo in itertools.product(*lists)]
        for sub_env in envs:
            if isinstance(body, dict) and "when" in body and not self.ev_bool(body["when"], sub_env, where + ("when",), "when"):
                continue
            yield sub_env

    def expand_list(self, items: Any, env: Mapping[str, Any], where: Where) -> list[tuple[Any, Where]]:
        """Expand ``{foreach: ..., each: ...}`` and ``{when: ..., each: ...}`` items; evaluate a whole-list expression."""
        if isinstance(items, str):
            items = self.ev(items, env, where)
            if not isinstance(items, list):
                raise self.fail(where, f"expected a list, got {items!r}")
            return [(item, where + (i,)) for i, item in enumerate(items)]
        if not isinstance(items, list):  # a value an enclosing `each` already evaluated
            raise self.fail(where, f"expected a list, got {items!r}")
        out: list[tuple[Any, Where]] = []
        for i, item in enumerate(items):
            if isinstance(item, dict) and "each" in item and ("foreach" in item or "when" in item):
                for sub_env in self.bindings(item, env, where + (i,)):
                    out.append((self.ev(item["each"], sub_env, where + (i, "each")), where + (i,)))
            else:
                out.append((self.ev(item, env, where + (i,)), where + (i,)))
        return out

    # -- stages ----------------------------------------------------------------------------

    def params(self, data: dict) -> dict[str, Any]:
        where = Where(("params",), ("params",))
        declared: dict = data.get("params") or {}
        example = data.get("example") or {}
        in_channels = self.user_in_channels
        if in_channels is None:
            in_channels = example.get("in_channels")
        env: dict[str, Any] = {}
        if isinstance(in_channels, Mapping):
            env["in_channels"] = list(in_channels.values())
        elif in_channels is not None:
            env["in_channels"] = list(in_channels)
        if "in_channels" in env:
            env["num_inputs"] = len(env["in_channels"])
        overrides = dict(example.get("params") or {}) if self.user_in_channels is None else {}
        # where each override was written: the example's own key, or (for compile arguments,
        # which have no place in the file) the spec's parameter list
        origin = {name: Where(("example", "params", name), ("example", "params", name)) for name in overrides}
        overrides.update(self.user_params)
        origin.update({name: self.param_origins.get(name, where) for name in self.user_params})
        for name in overrides:
            if name in BUILTIN_PARAMS:
                self.fail(origin[name], f"parameter '{name}' is derived from in_channels and cannot be set", key=origin[name] is not where)
            elif name not in declared:
                hint = did_you_mean(name, declared) or (f"; the spec's parameters are {', '.join(declared)}" if declared else "; the spec declares none")
                self.fail(origin[name], f"unknown parameter '{name}'{hint}", key=origin[name] is not where)
        for name, decl in declarations(declared).items():
            if name in BUILTIN_PARAMS:
                self.fail(where + (name,), f"'{name}' is a built-in parameter (from in_channels); choose another name", key=True)
                continue
            at = where + (name,)  # a compile argument's problem is shown at the declaration
            if name in overrides and origin[name] is not where:
                at = origin[name]  # written in the example or at an include
            elif name not in overrides and isinstance(declared[name], dict):
                at = at + ("default",)
            try:
                value = self.ev(overrides[name] if name in overrides else decl.default, env, at)
                problem = decl.problem(value)
                if problem:
                    raise self.fail(at, problem)
                env[name] = value
            except _Bad:
                self.failed_params.add(name)
                continue
        return env

    def inputs(self, data: dict, env: dict[str, Any]) -> list[InputDecl]:
        decls: list[InputDecl] = []
        for key, body in data["inputs"].items():
            where = Where(("inputs", key), ("inputs", key))
            try:
                for sub_env in self.bindings(body, env, where):
                    name = self.ev_name(key, sub_env, where)
                    here = Where(("inputs",), ("inputs",)).child(key, name)
                    level = self.ev_int(body["level"], sub_env, here + ("level",), "level", 0, MAX_LEVEL)
                    channels = None
                    if body.get("channels") is not None:
                        channels = self.ev_int(body["channels"], sub_env, here + ("channels",), "channels", 1, MAX_CHANNELS)
                    optional = self.ev_bool(body["optional"], sub_env, here + ("optional",), "optional") if "optional" in body else False
                    decls.append(InputDecl(name, level, channels, here, optional))
                    self.input_names.add(name)
            except _Bad:
                self.broken_inputs.append(NameTemplate(key))
                continue
        self.check_input_levels(decls)
        self.bind_in_channels(decls, env)
        return decls

    def check_input_levels(self, decls: list[InputDecl]) -> None:
        """One input per level, finest first: ``in_channels`` and a list of feature maps are
        matched to the inputs by position, and size references are taken per level, so a
        repeated or out-of-order level would otherwise fail later as a raw size error."""
        seen: dict[int, InputDecl] = {}
        for previous, decl in zip([None, *decls], decls):
            where = decl.where + ("level",)
            if decl.level in seen:
                self.fail(where, f"input '{decl.name}' is at level {decl.level}, as '{seen[decl.level].name}' is: each input needs a level of its own")
            elif previous is not None and decl.level < previous.level:
                self.fail(where, f"inputs go finest first: '{decl.name}' (level {decl.level}) is listed after '{previous.name}' (level {previous.level})")
            seen.setdefault(decl.level, decl)

    def bind_in_channels(self, decls: list[InputDecl], env: dict[str, Any]) -> None:
        where, key = Where(("inputs",), ("inputs",)), True
        given = self.user_in_channels
        if given is None:
            example = self.doc.data.get("example") or {}
            given = example.get("in_channels")
            where, key = Where(("example", "in_channels"), ("example", "in_channels")), False
        if given is None:
            for decl in decls:
                if decl.channels is None:
                    self.fail(decl.where, f"input '{decl.name}' has no channels: pass in_channels (or --in-channels), or give the spec an example", key=True)
            return
        if isinstance(given, Mapping):
            names = [d.name for d in decls]
            for name in given:
                if name not in names:
                    self.fail(where, f"in_channels names '{name}', which is not an input{did_you_mean(str(name), names)}", key=key)
            listed = [name for name in given if name in names]
            if listed != [name for name in names if name in given]:
                self.fail(where, f"in_channels lists the inputs as {', '.join(listed)}; list them in the spec's order ({', '.join(names)}), finest first", key=key)
            values = [given.get(d.name) for d in decls]
        else:
            values = list(given)
            if self.broken_inputs:
                return  # which width goes with which input is unknown; the broken input is reported
            if len(values) != len(decls):
                listing = ", ".join(f"{d.name} (level {d.level})" for d in decls)
                self.fail(where, f"in_channels has {len(values)} entries but the spec declares {len(decls)} inputs: {listing}", key=key)
                return
        for decl, value in zip(decls, values):
            if value is None:
                if decl.channels is None:
                    self.fail(decl.where, f"in_channels gives no width for input '{decl.name}'", key=True)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHANNELS:
                self.fail(where, f"in_channels for '{decl.name}' must be an integer between 1 and {MAX_CHANNELS}, got {value!r}", key=key)
            elif decl.channels is not None and decl.channels != value:
                self.fail(decl.where + ("channels",), f"input '{decl.name}' is declared with {decl.channels} channels but in_channels gives {value}")
            else:
                decl.channels = value

    def defaults(self, data: dict, env: dict[str, Any]) -> dict[str, Any]:
        raw = data.get("defaults") or {}
        where = Where(("defaults",), ("defaults",))
        out: dict[str, Any] = {"channels": None, "fuse": FUSE.make("sum"), "post": [], "resample": {}}
        try:
            if raw.get("channels") is not None:
                out["channels"] = self.ev_int(raw["channels"], env, where + ("channels",), "channels", 1, MAX_CHANNELS)
        except _Bad:
            pass
        try:
            if "fuse" in raw:
                out["fuse"] = self.make_op(FUSE, raw["fuse"], env, where + ("fuse",))
        except _Bad:
            pass
        try:
            if "post" in raw:
                out["post"] = [self.make_op(POST, item, env, w) for item, w in self.expand_list(raw["post"], env, where + ("post",))]
        except _Bad:
            pass
        policy = dict(DEFAULT_POLICY)
        policy.update(raw.get("resample") or {})
        out["resample"] = self.policy(policy, env, where + ("resample",))
        return out

    def policy(self, raw: dict, env: dict[str, Any], where: Where) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                if key == "order":
                    out[key] = self.ev(value, env, where + (key,))
                elif key == "project" and self.ev(value, env, where + (key,)) in (None, "none"):
                    out[key] = None  # never project: widths must already agree
                else:
                    out[key] = self.make_op(RESAMPLE, value, env, where + (key,))
            except _Bad:
                out[key] = RESAMPLE.make(DEFAULT_POLICY[key]) if key != "order" else DEFAULT_POLICY["order"]
        return out

    # -- nodes and blocks ------------------------------------------------------------------

    def scope_entries(self, nodes: dict, env: dict[str, Any], where: Where, scope: Scope) -> list[tuple[str, dict, dict, Where]]:
        entries = []
        for key, body in nodes.items():
            entry_where = where.child(key, key)
            try:
                for sub_env in self.bindings(body, env, entry_where):
                    name = self.ev_name(key, sub_env, entry_where)
                    here = where.child(key, name)
                    if name in scope.names:
                        if scope.parent is None and name in self.input_names:
                            self.fail(here, f"node '{name}' has the same name as an input; rename one of them", key=True)
                        else:
                            self.fail(here, f"duplicate name '{name}'" + ("" if "$" not in key else " (made by foreach)"), key=True)
                        continue
                    scope.names[name] = None
                    entries.append((name, body, sub_env, here))
            except _Bad:
                scope.broken.append(NameTemplate(key))
                continue
        return entries

    def expand_scope(self, nodes: dict, env: dict[str, Any], where: Where, scope: Scope, module_prefix: str, defaults: dict, shared_block: str | None) -> None:
        for name, body, sub_env, here in self.scope_entries(nodes, env, where, scope):
            try:
                if "nodes" in body:
                    self.expand_block(name, body, sub_env, here, scope, module_prefix, defaults, shared_block)
                elif "include" in body:
                    self.expand_include(name, body, sub_env, here, scope, module_prefix, shared_block)
                else:
                    scope.names[name] = scope.prefix + name
                    self.expand_node(name, body, sub_env, here, scope, module_prefix, defaults, shared_block)
            except _Bad:
                scope.names[name] = _Broken()
                continue

    def expand_include(self, name: str, body: dict, env: dict[str, Any], where: Where, scope: Scope, module_prefix: str, shared_block: str | None) -> None:
        """Inline another spec: its inputs read ``inputs``, its outputs are ``name.OUTPUT``.

        The included spec keeps its own parameters (overridden by ``params``), defaults and
        positions: problems inside it are reported in its own file.
        """
        from .library import IncludeRefused, resolve_include

        if self.node_count > MAX_NODES:
            raise _Bad()  # the node limit was reported: expanding more includes would only cost time
        ref = self.ev(body["include"], env, where + ("include",))
        try:
            path = resolve_include(str(ref), self.doc.file, self.include_dirs)
        except IncludeRefused as exc:
            raise self.fail(where + ("include",), str(exc)) from None
        if path is None:
            raise self.fail(where + ("include",), f"cannot include '{ref}': no such file or bundled spec")
        if str(path) in self.include_stack or len(self.include_stack) >= MAX_INCLUDE_DEPTH:
            raise self.fail(where + ("include",), f"include cycle or depth over {MAX_INCLUDE_DEPTH}: {' -> '.join(self.include_stack + [str(path)])}")
        doc = self.read_included(str(path))
        refs = self.expand_list(body.get("inputs", []), env, where + ("inputs",))
        params = self.ev(body.get("params") or {}, env, where + ("params",))
        declared = doc.data.get("params") or {}
        unknown = [key for key in params if key not in declared or key in BUILTIN_PARAMS]
        for key in unknown:
            hint = " (it is derived from the inputs)" if key in BUILTIN_PARAMS else did_you_mean(key, declared) or (f"; its parameters are {', '.join(declared)}" if declared else "; it declares none")
            self.fail(where + ("params", key), f"'{ref}' has no parameter '{key}' to set{hint}", key=True)
        if unknown:
            raise _Bad()
        outer = where.doc or self.doc  # an override's problem is reported at the include's params entry
        origins = {key: Where((where + ("params", key)).raw, (where + ("params", key)).shown, outer) for key in params}
        sub = _Expander(doc, [None] * len(refs), params, None, origins, self.include_dirs)
        sub.issues, sub.nodes, sub.edges = self.issues, self.nodes, self.edges
        sub.include_stack = self.include_stack + [str(path)]
        sub.pending_outputs = self.pending_outputs
        sub.include_inputs = self.include_inputs
        sub.included = self.included
        sub.node_count = self.node_count
        sub_env = sub.params(doc.data)
        if sub.failed_params:
            raise _Bad()  # reported; expanding the included spec would only add follow-on errors
        inputs: list[InputDecl] = []
        for key, input_body in doc.data["inputs"].items():
            input_where = Where(("inputs", key), ("inputs", key))
            for input_env in sub.bindings(input_body, sub_env, input_where):
                level = sub.ev_int(input_body["level"], input_env, input_where + ("level",), "level", 0, MAX_LEVEL)
                inputs.append(InputDecl(sub.ev_name(key, input_env, input_where), level, None, input_where))
        if len(refs) != len(inputs):
            raise self.fail(where + ("inputs",), f"'{ref}' takes {len(inputs)} inputs ({', '.join(d.name for d in inputs)}), got {len(refs)}")
        inner = Scope(scope, f"{scope.prefix}{name}.")
        for decl, (outer_ref, w) in zip(inputs, refs):
            if not isinstance(outer_ref, str):
                raise self.fail(w, f"expected a name, got {outer_ref!r}")
            inner.names[decl.name] = _IncludeAlias(scope, outer_ref)
            self.include_inputs.append(IncludeInput(decl.name, decl.level, outer_ref, w, scope))
        defaults = sub.defaults(doc.data, sub_env)
        prefix, block = f"{module_prefix}{name}.", shared_block
        if body.get("share") is not None:  # the weights of another include: its module paths, one owner
            other = self.ev(body["share"], env, where + ("share",))
            if not isinstance(other, str) or not _NAME.match(other):
                raise self.fail(where + ("share",), f"share names an include whose weights this one uses, not {other!r}")
            prefix, block = f"{module_prefix}{other}.", shared_block or f"{scope.prefix}{other}"
        sub.share_of = f"{scope.prefix}{other}" if body.get("share") is not None else self.share_of
        sub.share_group = f"{scope.prefix}{name}" if body.get("share") is not None else self.share_group
        sub.share_where = where + ("share",) if body.get("share") is not None else self.share_where
        sub.expand_scope(doc.data["nodes"], sub_env, Where(("nodes",), ("nodes",), doc), inner, prefix, defaults, block)
        self.node_count = sub.node_count
        outputs = outputs_of(sub, doc.data, sub_env, inner, resolve=False)
        self.pending_outputs.extend((sub, o, inner) for o in outputs)
        scope.names[name] = _BlockOutputs(inner, [o.name for o in outputs], {o.name: o.ref for o in outputs}, "included spec")

    def read_included(self, path: str) -> Document:
        """The included spec at ``path``, read and schema-checked once per expansion however
        often it is included (under many names, or at every level of nested includes), so the
        cost of an include is that of its nodes; its problems are reported the first time."""
        from .errors import SpecError
        from .loader import load_document
        from .schema import check_schema

        if path not in self.included:
            try:
                doc: Document | None = load_document(path)
                problems = check_schema(doc)
            except SpecError as exc:
                problems = exc.issues
            self.issues.extend(problems)
            self.included[path] = None if problems else doc
        doc = self.included[path]
        if doc is None:
            raise _Bad()
        return doc

    def expand_node(self, name: str, body: dict, env: dict[str, Any], where: Where, scope: Scope, module_prefix: str, defaults: dict, shared_block: str | None) -> None:
        self.node_count += 1
        if self.node_count > MAX_NODES:
            if self.node_count == MAX_NODES + 1:
                self.fail(where, f"spec expands to more than {MAX_NODES} nodes; check repeat counts and foreach ranges")
            raise _Bad()
        level = None
        if body.get("level") is not None:
            level = self.ev_int(body["level"], env, where + ("level",), "level", 0, MAX_LEVEL)
        channels = defaults["channels"]
        if body.get("channels") is not None:
            channels = self.ev_int(body["channels"], env, where + ("channels",), "channels", 1, MAX_CHANNELS)
        fuse = self.make_op(FUSE, body["fuse"], env, where + ("fuse",)) if "fuse" in body else defaults["fuse"]
        apply = None
        if "apply" in body:
            if "fuse" in body:
                raise self.fail(where + ("apply",), f"node '{name}' has both apply and fuse; apply reads the inputs as they are and replaces the fuse: keep one", key=True)
            apply = self.make_op(APPLY, body["apply"], env, where + ("apply",))
        post = defaults["post"] if apply is None else []  # defaults.post is for template nodes; an apply node's post is its own
        if "post" in body:
            post = [self.make_op(POST, item, env, w) for item, w in self.expand_list(body["post"], env, where + ("post",))]
        policy = dict(defaults["resample"])
        if body.get("resample"):
            policy.update(self.policy(body["resample"], env, where + ("resample",)))
        edges = []
        for item, w in self.expand_list(body["from"], env, where + ("from",)):
            edges.append(self.edge(item, env, w, policy, scope))
        if not edges:
            raise self.fail(where + ("from",), f"node '{name}' has no inputs")
        node_id = scope.prefix + name
        module, block = module_prefix + name, shared_block
        if body.get("share") is not None:
            other = self.ev(body["share"], env, where + ("share",))
            if not isinstance(other, str) or not _NAME.match(other):
                raise self.fail(where + ("share",), f"share names a node whose weights this one uses, not {other!r}")
            module, block = module_prefix + other, shared_block or scope.prefix + other  # in a shared block the block stays the owner
        shares = body.get("share") is not None
        decl = NodeDecl(
            node_id, module, level, channels, fuse, post, edges, where, block, apply,
            share_of=scope.prefix + other if shares else self.share_of,
            share_group=node_id if shares else self.share_group,
            share_kind="node" if shares else "include",
            share_where=where + ("share",) if shares else self.share_where,
        )
        self.nodes[node_id] = decl

    def edge(self, item: Any, env: dict[str, Any], where: Where, policy: dict[str, Any], scope: Scope) -> EdgeDecl:
        if isinstance(item, str):
            ref, overrides = item, {}
        elif isinstance(item, dict) and isinstance(item.get("from"), str):
            ref, overrides = item["from"], item
        else:
            raise self.fail(where, f"an input is a name or {{from: name, ...}}, got {item!r}")
        edge_policy = dict(policy)
        via, channels = None, None
        for key, value in overrides.items():
            if key == "project" and self.ev(value, env, where + (key,)) in (None, "none"):
                edge_policy[key] = None
            elif key in ("up", "down", "project"):
                edge_policy[key] = self.make_op(RESAMPLE, value, env, where + (key,))
            elif key == "order":
                edge_policy[key] = value
            elif key == "via":
                via = [self.make_op(RESAMPLE, op, env, w) for op, w in self.expand_list(value, env, where + ("via",))]
            elif key == "channels":
                channels = self.ev_int(value, env, where + (key,), "channels", 1, MAX_CHANNELS)
        if edge_policy["order"] not in ("project_first", "resample_first"):
            raise self.fail(where + ("order",), f"order must be project_first or resample_first, got {edge_policy['order']!r}")
        decl = EdgeDecl(ref, where, edge_policy["up"], edge_policy["down"], edge_policy["project"], edge_policy["order"], via, channels, scope=scope)
        self.edges.append(decl)
        return decl

    def expand_block(self, name: str, body: dict, env: dict[str, Any], where: Where, scope: Scope, module_prefix: str, defaults: dict, shared_block: str | None) -> None:
        times = self.ev_int(body.get("repeat", 1), env, where + ("repeat",), "repeat", 1, MAX_REPEAT)
        share = self.ev_bool(body.get("share", False), env, where + ("share",), "share") if "share" in body else False
        inputs = self.expand_list(body["inputs"], env, where + ("inputs",))
        outputs = self.expand_list(body["outputs"], env, where + ("outputs",))
        for value, w in inputs + outputs:
            if not isinstance(value, str):
                raise self.fail(w, f"expected a name, got {value!r}")
        if len(inputs) != len(outputs):
            raise self.fail(where + ("outputs",), f"block '{name}' has {len(inputs)} inputs but {len(outputs)} outputs; repetition k+1 reads repetition k's outputs in place of the inputs, so they must pair up")
        block_outputs = _BlockOutputs(None, [o for o, _ in outputs])
        scope.names[name] = block_outputs
        previous: Scope | None = None
        for k in range(times):
            inner = Scope(scope, f"{scope.prefix}{name}.{k}.")
            for i, (alias, w) in enumerate(inputs):
                if not _NAME.match(alias):
                    raise self.fail(w, f"block input '{alias}' must be a plain name (it is the name the block's nodes use)")
                inner.names[alias] = _Alias(scope, alias) if previous is None else _Alias(previous, outputs[i][0])
            inner_env = dict(env, rep=k)
            inner_prefix = f"{module_prefix}{name}." if share else f"{module_prefix}{name}{k}."
            block_id = shared_block or (f"{scope.prefix}{name}" if share else None)
            self.expand_scope(body["nodes"], inner_env, where + ("nodes",), inner, inner_prefix, defaults, block_id)
            previous = inner
        block_outputs.last = previous

    # -- references ------------------------------------------------------------------------

    def resolve(self, ref: str, scope: Scope, depth: int = 0) -> str | None:
        """The node/input id ``ref`` names from ``scope`` (``X.pre`` keeps its tap)."""
        if depth > 64:
            return None
        tap = ""
        if ref.endswith(".pre") and ref != ".pre":
            ref, tap = ref[: -len(".pre")], ".pre"
        base, _, last = ref.rpartition(".")
        if base and last.isdigit() and not tap:  # ``X.1``: output 1 of an op with several outputs
            whole = self._resolve_name(ref, "", scope, depth)  # unless ``X.1`` is itself an output's name (an include's or block's ``halves.1``)
            if whole is not None:
                return whole
            resolved = self.resolve(base, scope, depth + 1)
            return None if resolved is None else f"{resolved}.{int(last)}"
        return self._resolve_name(ref, tap, scope, depth)

    def _resolve_name(self, ref: str, tap: str, scope: Scope, depth: int) -> str | None:
        head, *rest = ref.split(".")
        current: Scope | None = scope
        while current is not None and head not in current.names:
            current = current.parent
        if current is None:
            return None
        target = current.names[head]
        if isinstance(target, _Broken):
            return None
        if isinstance(target, _Alias):
            resolved = self.resolve(target.ref, target.scope, depth + 1)
            return None if resolved is None or rest else resolved + tap
        if isinstance(target, _BlockOutputs):
            output = ".".join(rest)  # an output's name may hold an index: an include's ``halves.1``
            if output not in target.outputs or target.last is None:
                return None
            resolved = self.resolve(target.refs.get(output, output), target.last, depth + 1)
            return None if resolved is None else resolved + tap
        if rest or target is None:
            return None
        return target + tap

    def _reads_broken(self, ref: str, scope: Scope, depth: int = 0) -> bool:
        """Whether ``ref`` fails only because something it goes through is broken."""
        head = ref.split(".")[0]
        current: Scope | None = scope
        while current is not None and head not in current.names:
            current = current.parent
        if current is None or depth > 64:
            return False
        target = current.names[head]
        if isinstance(target, _Broken):
            return True
        if isinstance(target, _IncludeAlias) and self.resolve(target.ref, target.scope) is None:
            return True  # reported at the include's inputs
        if isinstance(target, _Alias):
            return self._reads_broken(target.ref, target.scope, depth + 1)
        if isinstance(target, _BlockOutputs):
            rest = ref.split(".")[1:2]
            return target.last is None or (bool(rest) and rest[0] in target.outputs and self._reads_broken(target.refs.get(rest[0], rest[0]), target.last, depth + 1))
        return False

    def visible_names(self, scope: Scope) -> Iterator[str]:
        """The names a reference in ``scope`` can use, produced as they are read: a suggestion
        for an unknown name reads them only while the suggestion budget lasts."""
        current: Scope | None = scope
        while current is not None:
            for name, target in current.names.items():
                if isinstance(target, _BlockOutputs):
                    yield from (f"{name}.{o}" for o in target.outputs)
                elif not isinstance(target, _Broken):
                    yield name
            current = current.parent

    def unknown(self, ref: str, scope: Scope, where: Where, what: str) -> None:
        base = ref[: -len(".pre")] if ref.endswith(".pre") else ref
        head = base.split(".")[0]
        current: Scope | None = scope
        while current is not None and head not in current.names:
            current = current.parent
        target = current.names[head] if current else None
        if isinstance(target, _Broken) or self._reads_broken(ref, scope):
            return  # the broken piece was reported where it is defined
        if target is None and _may_be_broken(head, scope):
            return  # a key that failed to expand (reported) may have been meant to make it
        if isinstance(target, _BlockOutputs):
            rest = base[len(head) + 1 :]
            message = f"{target.what} '{head}' has no output '{rest}'{did_you_mean(rest, target.outputs)} (its outputs: {', '.join(target.outputs)})"
        elif target is not None and "." in base:
            message = f"'{ref}': only '.pre' taps a node, and '{head}' is not a block"
        else:
            message = f"unknown {what} '{ref}'{did_you_mean(base, self.visible_names(scope))}"
        self.fail(where, message)


class NameTemplate:
    """The names a node or input key can make: ``P${l}_td`` makes ``P4_td``.

    Each ``$`` part stands for one or more characters. A name is matched by finding the fixed
    parts left to right, each at the earliest place it fits, which is always a match when one
    exists for patterns of this kind, in time linear in the name for each part. (The regular
    expression ``P.+_.+_...`` that this replaces backtracks: a key of twenty ``${x}a`` against
    a 40-letter near-miss took seconds.)"""

    def __init__(self, key: Any):
        self.parts = re.split(r"\$\{[^{}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", str(key))

    def fullmatch(self, name: str) -> bool:
        if len(self.parts) == 1:  # no `$` part: the key is a plain name
            return name == self.parts[0]
        first, *middle, last = self.parts
        end = len(name) - len(last)  # where the last fixed part starts
        if not (name.startswith(first) and name.endswith(last)):
            return False
        position = len(first)
        for part in middle:  # after each wildcard (one character at least), the next fixed part
            found = name.find(part, position + 1, end - 1)
            if found < 0:
                return False
            position = found + len(part)
        return end - position >= 1


def _may_be_broken(name: str, scope: Scope | None) -> bool:
    while scope is not None:
        if any(pattern.fullmatch(name) for pattern in scope.broken):
            return True
        scope = scope.parent
    return False


def expand(
    doc: Document, in_channels: Any = None, params: Mapping[str, Any] | None = None, image: Any = None, include_dirs: Sequence[Any] = ()
) -> tuple[FlatSpec | None, list[Issue]]:
    """Expand a schema-valid document. Returns the flat spec (None if unusable) and the issues.
    ``include_dirs`` are folders ``include:`` may read besides the spec's own."""
    ex = _Expander(doc, in_channels, params or {}, image, include_dirs=include_dirs)
    try:
        return _expand(ex, doc, image)
    except _TooMany:
        return None, ex.issues


def _expand(ex: _Expander, doc: Document, image: Any) -> tuple[FlatSpec | None, list[Issue]]:
    data = doc.data
    env = ex.params(data)
    inputs = ex.inputs(data, env)
    defaults = ex.defaults(data, env)
    root = Scope(None, "")
    root.broken.extend(ex.broken_inputs)
    for decl in inputs:
        if decl.name in root.names:
            ex.fail(decl.where, f"duplicate input name '{decl.name}'", key=True)
        root.names[decl.name] = decl.name
    ex.expand_scope(data["nodes"], env, Where(("nodes",), ("nodes",)), root, "", defaults, None)
    for node in ex.nodes.values():
        if any(d.name == node.id for d in inputs):
            ex.fail(node.where, f"node '{node.id}' has the same name as an input", key=True)
    for edge in ex.edges:
        edge.source = ex.resolve(edge.ref, edge.scope)
        if edge.source is None:
            ex.unknown(edge.ref, edge.scope, edge.where, "input or node")
    for sub, output, inner in ex.pending_outputs:
        if sub.resolve(output.ref, inner) is None:
            sub.unknown(output.ref, inner, output.where, "output")
    for bound in ex.include_inputs:
        bound.source = ex.resolve(bound.ref, bound.scope)
        if bound.source is None:
            ex.unknown(bound.ref, bound.scope, bound.where, "input or node")
    outputs = outputs_of(ex, data, env, root)
    return_type = data.get("return", "tuple")
    checked = _image(ex, doc, image)
    # The example (widths, parameters, image) applies as a whole: a caller who gives no widths
    # compiles the example, so its image is theirs and is checked; a caller with widths of their
    # own (a converter, an adapter) gets size checks only at an image they give.
    image = checked if image is not None or ex.user_in_channels is None else None
    name = data.get("name") or (doc.file.rsplit("/", 1)[-1].rsplit(".", 1)[0] if doc.file.endswith((".yaml", ".yml")) else "neck")
    flat = FlatSpec(name, data.get("doc", ""), doc.file, env, inputs, ex.nodes, outputs, return_type, image, data.get("example") or {}, ex.include_inputs)
    return flat, ex.issues


def outputs_of(ex: _Expander, data: dict, env: dict[str, Any], root: Scope, resolve: bool = True) -> list[OutputDecl]:
    raw = data["outputs"]
    where = Where(("outputs",), ("outputs",))
    pairs: list[tuple[str, Any, Where]] = []
    try:
        if isinstance(raw, dict):
            for key, ref in raw.items():
                pairs.append((ex.ev_name(key, env, where.child(key, key), attribute=False), ex.ev(ref, env, where.child(key, key)), where.child(key, key)))
        else:
            for ref, w in ex.expand_list(raw, env, where):
                pairs.append((_output_name(ref), ref, w))
    except _Bad:
        return []
    if not pairs:  # an included spec's too: it gives the including spec nothing to read
        ex.fail(where, "the neck returns nothing: list at least one node in outputs")
        return []
    outputs: list[OutputDecl] = []
    seen: set[str] = set()
    for name, ref, w in pairs:
        if not isinstance(ref, str):
            ex.fail(w, f"an output is a node name, got {ref!r}")
            continue
        if name in seen:
            ex.fail(w, f"duplicate output '{name}'")
            continue
        seen.add(name)
        decl = OutputDecl(name, ref, w, scope=root)
        if resolve:
            decl.source = ex.resolve(ref, root)
            if decl.source is None:
                ex.unknown(ref, root, w, "output")
        outputs.append(decl)
    return outputs


def _output_name(ref: Any) -> Any:
    """A list output is named after its node: ``cell.P3_out`` -> ``P3_out``; ``P4.pre`` and an
    op's output ``halves.1`` keep their node's name."""
    if not isinstance(ref, str):
        return ref
    parts = ref.split(".")
    return ".".join(parts[-2:]) if (parts[-1] == "pre" or parts[-1].isdigit()) and len(parts) > 1 else parts[-1]


def example_image(doc: Document) -> Any:
    """The image size the spec's ``example`` gives (as written; None when it gives none).

    Compiling the example (no widths given) checks sizes at it; reports and diagrams show map
    sizes at it when the caller gives no image. A caller with widths of their own is never
    checked at it unless they pass it as ``image=``."""
    example = doc.data.get("example") if isinstance(doc.data, dict) else None
    return example.get("image") if isinstance(example, dict) else None


def _image(ex: _Expander, doc: Document, image: Any) -> tuple[int, int] | None:
    if image is None:
        image = example_image(doc)
    if image is None:
        return None
    size = image_size(image)
    if size is None:
        ex.fail(Where(("example", "image"), ("image",)), f"image size must be N or (H, W) with sides between 1 and 16384, got {image!r}")
    return size


def image_size(image: Any) -> tuple[int, int] | None:
    """An image size written as N or (H, W) -> (H, W); None when it is not one (sides 1..16384)."""
    if isinstance(image, int) and not isinstance(image, bool):
        image = (image, image)
    if not (isinstance(image, Sequence) and len(image) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 16384 for v in image)):
        return None
    return (int(image[0]), int(image[1]))
