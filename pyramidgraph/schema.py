"""Stage 2a: the JSON Schema of the spec format, and validation with readable, located errors.

The schema is generated from the op registries, so a new op appears in editors' completion
and in validation without touching this file. ``pyramidgraph/spec.schema.json`` is the same
schema written out for editors (``yaml-language-server``); a test keeps the two identical.

The schema describes the document *as written*: wherever a value is expected an expression
string (``$name``, ``${...}``) is allowed too, and node names may be templates (``P${l}_td``).
Evaluated values are checked again after expansion.
"""

from __future__ import annotations

import copy
import json
import threading
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import Issue, closest, did_you_mean
from .loader import Document
from .ops import REGISTRIES
from .params import PARAM_KEYS, PARAM_TYPES

__all__ = ["spec_schema", "check_schema", "FORMAT_VERSION", "SCHEMA_ID"]

FORMAT_VERSION = 1
SCHEMA_ID = "https://pyramidgraph.dev/schema/spec-v1.json"

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
EXPR = {"type": "string", "pattern": r"\$"}

NODE_KEYS = {
    "level": "Pyramid level (stride 2**level); defaults to the level of the first input.",
    "from": "Inputs: names of inputs or nodes (`X.pre` taps a node before its post ops).",
    "fuse": "How several inputs are merged (sum, weighted, concat...).",
    "post": "Ordered ops applied after fusion.",
    "apply": "One op over the inputs as they are, each at its own level (no resampling, no fuse); `node.0`, `node.1` read an op's several outputs.",
    "share": "Use the weights of this node or included spec (same ops, same widths): one set of weights for both.",
    "channels": "Output width of the node.",
    "resample": "Resample policy for this node's incoming edges (up, down, project, order).",
    "foreach": "Make one node per value: {var: list}; use $var in the name and fields.",
    "when": "Keep the node only when this is true.",
    "doc": "Free text.",
}
BLOCK_KEYS = {
    "nodes": "The block's nodes; their names are local to each repetition.",
    "inputs": "Outer names the block reads; repetition k reads repetition k-1's outputs in their place.",
    "outputs": "Local names the block produces, as many as inputs; outside, `block.name` is the last repetition's.",
    "repeat": "How many times the block is applied.",
    "share": "true: every repetition uses the same weights; false: each has its own.",
    "foreach": NODE_KEYS["foreach"],
    "when": NODE_KEYS["when"],
    "doc": NODE_KEYS["doc"],
}
INCLUDE_KEYS = {
    "include": "Another spec (a path relative to this one, or a bundled name) to inline here.",
    "inputs": "Names this spec passes as the included spec's inputs, in its input order.",
    "params": "Parameter overrides for the included spec.",
    "share": "Use the weights of this other include of the same spec (same widths): RFP runs one FPN twice.",
    "foreach": NODE_KEYS["foreach"],
    "when": NODE_KEYS["when"],
    "doc": NODE_KEYS["doc"],
}
EDGE_KEYS = {
    "from": "The source: an input or node name.",
    "up": "Upsample op for this edge.",
    "down": "Downsample op for this edge.",
    "project": "Width projection op for this edge.",
    "order": "project_first (default) or resample_first.",
    "via": "Explicit list of resample ops, replacing the inferred ones.",
    "channels": "The width this edge brings its source to, instead of the node's: an input of a concat (YOLO's strided conv before a concat).",
}
TOP_KEYS = {
    "pyramidgraph": "Format version (1).",
    "name": "Name of the neck.",
    "doc": "One-line description (shown by `pyramidgraph list`).",
    "params": "Parameters and their defaults; override at compile time.",
    "example": "Typical backbone: in_channels and image size, used when none are given.",
    "inputs": "Named input feature maps, finest first, with their levels.",
    "defaults": "Defaults for every node: channels, fuse, post, resample.",
    "nodes": "The graph: nodes and blocks.",
    "outputs": "What the neck returns, in order: a list of names or {output name: node}.",
    "return": "tuple (default), list or dict (an OrderedDict).",
}


def _with_expr(schema: dict[str, Any]) -> dict[str, Any]:
    """Allow an expression string wherever ``schema`` allows a value (inside a list's items and
    a mapping's values too: ``sizes: [$half, $half]``)."""
    schema = dict(schema)
    if isinstance(schema.get("items"), dict):
        schema["items"] = _with_expr(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _with_expr(schema["additionalProperties"])
    if "anyOf" in schema:
        schema["anyOf"] = [_with_expr(s) if isinstance(s, dict) and ("items" in s or isinstance(s.get("additionalProperties"), dict)) else s for s in schema["anyOf"]]
    return {"anyOf": [schema, {"$ref": "#/$defs/expr"}]}


def _op_item(kind: str) -> dict[str, Any]:
    registry = REGISTRIES[kind]
    by_name: dict[str, Any] = {}
    for name, (cls, _preset) in sorted(registry.entries.items()):
        params = copy.deepcopy(cls.params_schema())
        params["properties"] = {k: _with_expr(v) for k, v in params["properties"].items()}
        forms: list[dict[str, Any]] = [{"type": "null"}, params]
        if cls.shorthand:
            forms.append(_with_expr(copy.deepcopy(cls.params_schema()["properties"][cls.shorthand])))
        by_name[name] = {"anyOf": forms, "description": (cls.__doc__ or "").strip().split("\n")[0]}
    op_form = {
        "type": "object",
        "required": ["op"],
        "properties": {"op": {"anyOf": [{"enum": sorted(by_name)}, {"$ref": "#/$defs/expr"}]}},
    }
    one_key = {"type": "object", "title": f"{kind} op", "minProperties": 1, "maxProperties": 1, "properties": by_name, "additionalProperties": False}
    names = {"enum": sorted(by_name), "title": f"{kind} op"}
    return {"anyOf": [names, {"$ref": "#/$defs/expr"}, op_form, one_key]}


def _foreach_list(item: dict[str, Any]) -> dict[str, Any]:
    """A list whose items may be ``{foreach: {var: values}, each: item}`` or ``{when: cond, each: item}``."""
    each = {
        "type": "object",
        "required": ["each"],
        "anyOf": [{"required": ["foreach"]}, {"required": ["when"]}],
        "properties": {"foreach": {"$ref": "#/$defs/foreach"}, "when": _with_expr({"type": "boolean"}), "each": item},
        "additionalProperties": False,
    }
    return {"anyOf": [{"type": "array", "items": {"anyOf": [item, each]}}, {"$ref": "#/$defs/expr"}]}


def _object(keys: dict[str, str], properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    props = {k: dict(properties[k], description=keys[k]) for k in keys}
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def _build() -> str:
    """The schema's JSON text for the ops registered now (cached until a plugin adds one)."""
    from .ops.base import GENERATION

    return _build_for(GENERATION[0])


@lru_cache(maxsize=4)
def _build_for(generation: int) -> str:
    int_or_expr = _with_expr({"type": "integer"})
    bool_or_expr = _with_expr({"type": "boolean"})
    ref = {"type": "string", "minLength": 1}
    resample_policy = _object(
        {k: EDGE_KEYS[k] for k in ("up", "down", "project", "order")},
        {
            "up": {"$ref": "#/$defs/resample_op"},
            "down": {"$ref": "#/$defs/resample_op"},
            "project": {"anyOf": [{"$ref": "#/$defs/resample_op"}, {"enum": [None, "none"]}]},
            "order": _with_expr({"enum": ["project_first", "resample_first"]}),
        },
        [],
    )
    edge = _object(
        EDGE_KEYS,
        {
            "from": ref,
            "up": {"$ref": "#/$defs/resample_op"},
            "down": {"$ref": "#/$defs/resample_op"},
            "project": resample_policy["properties"]["project"],
            "order": resample_policy["properties"]["order"],
            "via": _foreach_list({"$ref": "#/$defs/resample_op"}),
            "channels": int_or_expr,
        },
        ["from"],
    )
    node = _object(
        NODE_KEYS,
        {
            "level": int_or_expr,
            "from": _foreach_list({"anyOf": [ref, {"$ref": "#/$defs/edge"}]}),
            "fuse": {"$ref": "#/$defs/fuse_op"},
            "post": _foreach_list({"$ref": "#/$defs/post_op"}),
            "apply": {"$ref": "#/$defs/apply_op"},
            "share": ref,
            "channels": int_or_expr,
            "resample": {"$ref": "#/$defs/resample_policy"},
            "foreach": {"$ref": "#/$defs/foreach"},
            "when": bool_or_expr,
            "doc": {"type": "string"},
        },
        ["from"],
    )
    block = _object(
        BLOCK_KEYS,
        {
            "nodes": {"$ref": "#/$defs/nodes"},
            "inputs": _foreach_list(ref),
            "outputs": _foreach_list(ref),
            "repeat": int_or_expr,
            "share": bool_or_expr,
            "foreach": {"$ref": "#/$defs/foreach"},
            "when": bool_or_expr,
            "doc": {"type": "string"},
        },
        ["nodes", "inputs", "outputs"],
    )
    input_decl = _object(
        {
            "level": "Pyramid level of this input.",
            "channels": "Width, when fixed by the spec.",
            "optional": "The neck accepts this input but may leave it unused.",
            "foreach": NODE_KEYS["foreach"],
            "when": NODE_KEYS["when"],
            "doc": NODE_KEYS["doc"],
        },
        {"level": int_or_expr, "channels": int_or_expr, "optional": bool_or_expr, "foreach": {"$ref": "#/$defs/foreach"}, "when": bool_or_expr, "doc": {"type": "string"}},
        ["level"],
    )
    include = _object(
        INCLUDE_KEYS,
        {
            "include": {"type": "string", "minLength": 1},
            "inputs": _foreach_list(ref),
            "params": {"type": "object"},
            "share": ref,
            "foreach": {"$ref": "#/$defs/foreach"},
            "when": bool_or_expr,
            "doc": {"type": "string"},
        },
        ["include", "inputs"],
    )
    type_name = {"enum": [*PARAM_TYPES, None]}  # an unquoted null in a type list means "null"
    param = _object(
        PARAM_KEYS,
        {
            "default": {},
            "type": {"anyOf": [type_name, {"type": "array", "items": type_name, "minItems": 1, "uniqueItems": True}]},
            "choices": {"type": "array", "minItems": 1, "items": {"type": ["integer", "number", "string", "boolean", "null"]}},
            "min": {"type": "number"},
            "max": {"type": "number"},
            "exclusive_min": {"type": "boolean"},
            "doc": {"type": "string"},
        },
        ["default"],
    )
    key_names = {"anyOf": [{"pattern": NAME_PATTERN}, {"pattern": r"\$"}]}
    top = _object(
        TOP_KEYS,
        {
            "pyramidgraph": {"const": FORMAT_VERSION},
            "name": {"type": "string", "pattern": NAME_PATTERN},
            "doc": {"type": "string"},
            "params": {
                "type": "object",
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"if": {"type": "object"}, "then": {"$ref": "#/$defs/param"}, "else": {"type": ["integer", "number", "string", "boolean", "array", "null"]}},
            },
            "example": _object(
                {"in_channels": "Input widths, finest first.", "image": "Image size: N or [H, W].", "params": "Parameter overrides for the example."},
                {
                    "in_channels": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
                    "image": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2}]},
                    "params": {"type": "object"},
                },
                ["in_channels"],
            ),
            "inputs": {"type": "object", "minProperties": 1, "propertyNames": key_names, "additionalProperties": {"$ref": "#/$defs/input"}},
            "defaults": _object(
                {k: NODE_KEYS[k] for k in ("channels", "fuse", "post", "resample")},
                {"channels": int_or_expr, "fuse": {"$ref": "#/$defs/fuse_op"}, "post": node["properties"]["post"], "resample": {"$ref": "#/$defs/resample_policy"}},
                [],
            ),
            "nodes": {"$ref": "#/$defs/nodes"},
            "outputs": {"anyOf": [_foreach_list(ref), {"type": "object", "minProperties": 1, "propertyNames": key_names, "additionalProperties": ref}]},
            "return": {"enum": ["tuple", "list", "dict"]},
        },
        ["pyramidgraph", "inputs", "nodes", "outputs"],
    )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "pyramidgraph neck spec",
        "description": "A detector neck as a graph of feature maps: see docs/spec.md.",
        **top,
        "$defs": {
            "expr": dict(EXPR, description="A parameter expression: $name or ${expression}."),
            "foreach": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": NAME_PATTERN}, "additionalProperties": {"anyOf": [{"type": "array"}, {"$ref": "#/$defs/expr"}]}},
            "nodes": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": key_names,
                "additionalProperties": {
                    "if": {"type": "object", "required": ["nodes"]},
                    "then": {"$ref": "#/$defs/block"},
                    "else": {"if": {"type": "object", "required": ["include"]}, "then": {"$ref": "#/$defs/include"}, "else": {"$ref": "#/$defs/node"}},
                },
            },
            "param": param,
            "node": node,
            "block": block,
            "include": include,
            "edge": edge,
            "input": input_decl,
            "resample_policy": resample_policy,
            "resample_op": _op_item("resample"),
            "fuse_op": _op_item("fuse"),
            "post_op": _op_item("post"),
            "apply_op": _op_item("apply"),
        },
    }
    return json.dumps(schema, indent=2, sort_keys=False)


def spec_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the spec format, generated from the registries."""
    return json.loads(_build())


def shipped_schema_text() -> str:
    """The schema file shipped in the package for editors."""
    return resources.files("pyramidgraph").joinpath("spec.schema.json").read_text(encoding="utf-8")


def _validator() -> jsonschema.Draft202012Validator:
    from .ops.base import GENERATION

    return _validator_for(GENERATION[0])


@lru_cache(maxsize=4)
def _validator_for(generation: int) -> jsonschema.Draft202012Validator:
    schema = spec_schema()
    remembering = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {keyword: _remembering_valid(jsonschema.Draft202012Validator.VALIDATORS[keyword]) for keyword in ("$ref", "anyOf")},
    )
    return remembering(schema)


VALID_MEMO_LIMIT = 100_000
"""How many (subschema, value) pairs found valid one validator remembers before it starts over."""

_keys = threading.local()  # per thread, during one check_schema: id(value) -> its key (the document's values stay alive)


def _remembering_valid(check: Any) -> Any:
    """``check`` (jsonschema's ``$ref`` or ``anyOf``) remembering the values it found valid.

    Validating a value against a subschema depends on nothing else (the schema has no
    ``unevaluated*`` or dynamic references), and a spec repeats the same small values at many
    places (``post: [{conv: {kernel: 3}}, relu]`` on every node of a generated spec,
    ``$channels`` everywhere): each ``anyOf`` over the op forms costs a failed branch per form,
    so a 2,000-node spec took 3 s here. Only successes are remembered; a value with problems is
    checked in full every time, so the errors and their paths are exactly jsonschema's own."""
    valid: dict[tuple[Any, Any], None] = {}

    def keyword(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        key = _instance_key(instance)
        if key is not None:
            key = (value if isinstance(value, str) else id(value), key)  # a $ref by its text (one base: the root); an anyOf by its list
            if key in valid:
                return
        failed = False
        for error in check(validator, value, instance, schema):
            failed = True
            yield error
        if key is not None and not failed:
            if len(valid) >= VALID_MEMO_LIMIT:
                valid.clear()
            valid[key] = None

    return keyword


def _instance_key(value: Any) -> Any:
    """A hashable key equal for equal JSON values and different for different ones (``1``,
    ``1.0``, ``True`` and ``"1"`` apart); None for a value that is not plain JSON data."""
    kind = type(value)
    if kind in (str, int, float, bool) or value is None:
        return (kind, value)
    memo = getattr(_keys, "memo", None)
    if memo is not None and id(value) in memo:
        return memo[id(value)]
    key: Any = None
    if kind is dict:
        items = [(_instance_key(k), _instance_key(v)) for k, v in value.items()]
        if all(k is not None and v is not None for k, v in items):
            key = ("object", frozenset(items))
    elif kind is list:
        items = [_instance_key(v) for v in value]
        if all(v is not None for v in items):
            key = ("array", tuple(items))
    if memo is not None:
        memo[id(value)] = key
    return key


def check_schema(doc: Document) -> list[Issue]:
    """Validate ``doc.data`` against the schema; one located, readable issue per problem."""
    from .errors import MAX_ISSUES

    issues: list[Issue] = []
    outer = getattr(_keys, "memo", None)
    _keys.memo = {} if outer is None else outer
    try:
        for error in _validator().iter_errors(doc.data):
            issues.extend(_translate(doc, error))
            if len(issues) > MAX_ISSUES:  # enough to say that there are more (errors.capped)
                break
    finally:
        _keys.memo = outer
    return issues


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'" if len(value) < 60 else f"'{value[:56]}...'"
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else _json_type(value)
    return text if len(text) < 60 else text[:57] + "..."


def _accepts_type(schema: Any, value: Any) -> bool:
    """Whether a branch of an anyOf could be meant for ``value`` (by JSON type)."""
    if not isinstance(schema, dict):
        return True
    if "$ref" in schema:
        schema = _resolve(schema["$ref"])
    kind = _json_type(value)
    if "enum" in schema:
        return any(_json_type(v) == kind for v in schema["enum"])
    if "const" in schema:
        return _json_type(schema["const"]) == kind
    declared = schema.get("type")
    if declared is None:
        branches = schema.get("anyOf") or schema.get("oneOf")
        return any(_accepts_type(b, value) for b in branches) if branches else True
    declared = declared if isinstance(declared, list) else [declared]
    return kind in declared or (kind == "integer" and "number" in declared)


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = _validator().schema  # the cached copy: spec_schema() parses a fresh one each call
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _describe_schema(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        if schema["$ref"].endswith("/expr"):
            return "a $expression"
        schema = _resolve(schema["$ref"])
    if "enum" in schema:
        return "one of " + ", ".join(_show(v) for v in schema["enum"][:8]) + (", ..." if len(schema["enum"]) > 8 else "")
    if "type" in schema:
        t = schema["type"]
        return " or ".join(t) if isinstance(t, list) else f"an {t}" if t[0] in "aeiou" else f"a {t}"
    if "anyOf" in schema:
        return " or ".join(_describe_schema(b) for b in schema["anyOf"])
    return "a valid value"


def _translate(doc: Document, error: jsonschema.ValidationError) -> list[Issue]:
    path = tuple(error.absolute_path)
    kind = error.validator
    value = error.instance
    if "propertyNames" in error.absolute_schema_path:
        # jsonschema checks a key as an instance of its own, located at the mapping
        # that holds it: point at the key instead.
        return [doc.issue(path + (value,), f"'{value}' is not a valid name: use letters, digits and _, not starting with a digit", key=True)]
    if kind in ("anyOf", "oneOf"):
        branches = error.validator_value
        candidates = [i for i, b in enumerate(branches) if _accepts_type(b, value)]
        if isinstance(value, str) and "$" in value:
            candidates = [i for i in candidates if _accepts_type(EXPR, value)] or candidates
        grouped = {i: [e for e in error.context if e.relative_schema_path[0] == i] for i in candidates}
        # Prefer the non-expression branch for a plain value, and among those the one whose
        # errors sit deepest (the user was clearly writing that form).
        plain = [i for i in candidates if branches[i].get("$ref") != "#/$defs/expr"]
        if not plain and isinstance(value, str) and "$" in value:
            plain = candidates
        if isinstance(value, dict) and "op" not in value:  # `{name: params}`: not the `{op: name}` form
            plain = [i for i in plain if branches[i].get("required") != ["op"]] or plain
        # (a string without '$' that fits only the expression branch is no expression: it is
        # a value of the wrong type, reported below as "expected an integer or a $expression")
        if plain:
            best = max(plain, key=lambda i: max((len(e.absolute_path) for e in grouped[i]), default=0))
            if grouped[best]:
                issues: list[Issue] = []
                for sub in grouped[best]:
                    issues.extend(_translate(doc, sub))
                return issues
        expected = " or ".join(dict.fromkeys(part for b in branches for part in _describe_schema(b).split(" or ")))  # "a string or an object", not "... or an object or an object"
        return [doc.issue(path, f"expected {expected}, got {_show(value)}")]
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        issues = []
        for key in value:
            if key not in known:
                title = error.schema.get("title", "")
                what = title if title.endswith(" op") else "key"
                hint = did_you_mean(str(key), known)
                if not hint and what == "key" and len(known) <= 12:
                    hint = f"; allowed keys: {', '.join(known)}"
                elif not hint and what != "key":
                    hint = f" (`pyramidgraph list-ops {what.split()[0]}` lists them; an op of a plugin is known once it is imported, or with --plugin)"
                issues.append(doc.issue(path + (key,), f"unknown {what} '{key}'{hint}", key=True))
        return issues
    if kind == "required":
        known = list(error.schema.get("properties", {}))
        # a misspelt key (`ouputs`) is reported once, as unknown with its did-you-mean
        misspelt = {closest(str(k), known) for k in value if k not in known} if error.schema.get("additionalProperties") is False else set()
        missing = [k for k in error.validator_value if k not in value and k not in misspelt]
        return [doc.issue(path, f"missing required key '{k}'", key=True) for k in missing]
    if kind == "enum":
        options = [str(v) for v in error.validator_value]
        hint = did_you_mean(str(value), options)
        listing = "" if hint else f"; expected one of {', '.join(options[:12])}{', ...' if len(options) > 12 else ''}"
        what = error.schema.get("title", "value")
        if what != "value":
            listing = "" if hint else f" (`pyramidgraph list-ops {what.split()[0]}` lists them)"
        return [doc.issue(path, f"unknown {what} {_show(value)}{hint}{listing}")]
    if kind == "const":
        return [doc.issue(path, f"must be {_show(error.validator_value)}, got {_show(value)}")]
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        shown = f" {_show(value)}" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
        return [doc.issue(path, f"expected {expected}, got {_json_type(value)}{shown}")]
    if kind == "pattern":
        if error.validator_value == EXPR["pattern"]:
            return [doc.issue(path, f"expected a $expression, got {_show(value)}")]
        return [doc.issue(path, f"'{value}' is not a valid name: use letters, digits and _, not starting with a digit")]
    if kind == "propertyNames":
        bad = [k for k in value if not _valid_key(str(k))]
        return [doc.issue(path + (k,), f"'{k}' is not a valid name: use letters, digits and _, not starting with a digit", key=True) for k in bad] or [
            doc.issue(path, error.message)
        ]
    if kind in ("minProperties", "minItems"):
        return [doc.issue(path, "must not be empty")]
    if kind in ("maxProperties", "maxItems"):
        return [doc.issue(path, f"has too many entries (at most {error.validator_value})")]
    if kind == "minimum":
        return [doc.issue(path, f"must be at least {error.validator_value}, got {_show(value)}")]
    if kind == "minLength":
        return [doc.issue(path, "must not be empty")]
    return [doc.issue(path, error.message)]


def _valid_key(key: str) -> bool:
    import re

    return bool(re.match(NAME_PATTERN, key)) or "$" in key
