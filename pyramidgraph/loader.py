"""Stage 1: read a spec into plain Python data and remember where every value came from.

YAML is parsed with PyYAML's *safe* composer (no Python tags, no code), then converted by hand
so that (a) every mapping key and value keeps its line and column for error messages and
(b) duplicate keys are an error instead of "last one wins". Before that, one pass over the
parser's events bounds the size, the nesting and the alias expansion (so a "billion laughs"
document cannot exhaust memory) at the cost of parsing, before anything is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from .errors import Issue, SpecError, format_path
from .files import FileRefused, looks_like_file, read_regular_file, shorten

__all__ = ["Document", "load_document", "MAX_SPEC_BYTES", "MAX_YAML_NODES", "MAX_LIST_ITEMS"]

MAX_SPEC_BYTES = 1 << 20
"""A spec larger than this (1 MiB) is rejected before parsing."""

MAX_YAML_NODES = 100_000
"""Most YAML values (keys, values, list items) a spec may hold, aliases counted at every use."""
MAX_LIST_ITEMS = 1_000
"""Most items in one YAML list (the bundled specs' longest has 9). Checked before the schema,
which builds its whole error tree before reporting any of it: 10,000 wrong items took 6 s."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and lists in a spec (the bundled specs use 7)."""

Path_ = tuple  # a path inside the spec: ("nodes", "P4", "from", 1)

_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """A loaded spec: its data, where it came from, and the position of every value."""

    data: Any
    file: str = "<spec>"
    text: str = ""
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of ``path``; ``key=True`` prefers the mapping key.

        Falls back to the nearest ancestor that has a position, so that a value created by
        expansion still points at the template it came from.
        """
        path = tuple(path)
        while True:
            table = (self.keys, self.values) if key else (self.values, self.keys)
            for positions in table:
                if path in positions:
                    return positions[path]
            if not path:
                return (0, 0)
            path = path[:-1]

    def issue(self, path: Path_, message: str, key: bool = False, shown: str | None = None) -> Issue:
        """An :class:`Issue` located at ``path``; ``shown`` replaces the printed path."""
        line, col = self.where(path, key)
        return Issue(self.file, line, col, shown if shown is not None else format_path(path), message)

    def line_text(self, line: int) -> str:
        """The source line ``line`` (1-based), for showing a caret under an error."""
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


def load_document(source: str | os.PathLike | Mapping, name: str | None = None) -> Document:
    """Load a spec from a path, a YAML string or a mapping.

    A string is taken as a path when it has no newline and names an existing file, or ends in
    ``.yaml``/``.yml``; otherwise as YAML text. Raises :class:`SpecError` for unreadable files,
    bytes that are not UTF-8, malformed YAML, duplicate keys and non-data YAML tags.
    """
    if isinstance(source, Mapping):
        return Document(data=_plain_copy(source), file=name or "<dict>")
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and (source.endswith((".yaml", ".yml")) or looks_like_file(source))
    ):
        file = name or shorten(str(source), 1024)
        try:
            raw = read_regular_file(source, MAX_SPEC_BYTES)
        except FileRefused as exc:
            message = f"spec is {exc}" if exc.too_large else f"cannot read spec: it is {exc}"
            raise SpecError([Issue(file, 0, 0, "", message)]) from None
        except (OSError, ValueError) as exc:
            raise SpecError([Issue(file, 0, 0, "", f"cannot read spec: {getattr(exc, 'strerror', None) or exc}")]) from None
        return parse_yaml(raw, file)
    if isinstance(source, (bytes, str)):
        return parse_yaml(source, name or "<string>")
    raise SpecError([Issue(name or "<spec>", 0, 0, "", f"a spec is a path, YAML text or a dict, not {type(source).__name__}")])


def parse_yaml(raw: bytes | str, file: str) -> Document:
    """Parse YAML bytes or text into a :class:`Document` with positions."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_SPEC_BYTES:
            raise SpecError([Issue(file, 0, 0, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = raw[: exc.start]
            line = before.count(b"\n") + 1
            col = exc.start - (before.rfind(b"\n") + 1) + 1
            message = f"byte 0x{raw[exc.start]:02x} is not valid UTF-8; save the file as UTF-8"
            raise SpecError([Issue(file, line, col, "", message)]) from None
    else:
        text = raw
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError([Issue(file, 0, 0, "", f"spec is larger than {MAX_SPEC_BYTES} bytes")])
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        _check_budget(text, file)
        node = _compose(text)
    except yaml.YAMLError as exc:
        raise _malformed(text, file, exc) from None
    if node is None:
        raise SpecError([Issue(file, 0, 0, "", "spec is empty")])
    doc = Document(data=None, file=file, text=text)
    converter = _Converter(doc)
    doc.data = converter.convert(node, ())
    if converter.issues:
        raise SpecError(converter.issues)
    return doc


PRECISE_ERROR_BYTES = 64 * 1024
"""A malformed spec up to this size is parsed again by PyYAML's Python parser, whose messages
say what it found ("expected ',' or ']', but got '<stream end>'"); a larger one gets libyaml's
message, since the Python parser takes about 4 s a megabyte."""


def fast_loader() -> type:
    """libyaml's loader where PyYAML was built with it: it parses about ten times faster."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> yaml.Node | None:
    """The one YAML document of ``text`` as a node tree with marks (``None`` when empty)."""
    return yaml.compose(text, Loader=fast_loader())


def _check_budget(text: str, file: str) -> None:
    """Refuse a text that holds more than one document, a list longer than
    :data:`MAX_LIST_ITEMS`, nesting deeper than :data:`MAX_YAML_DEPTH`, or more than
    :data:`MAX_YAML_NODES` values (each key, value and list item counts, and an alias counts its
    anchor's values at every use).

    It walks the parser's events, before any node is built, and stops at the first value over
    a limit, so a bomb costs what parsing up to that value costs: 100,000 values are refused
    after about 0.3 s, where composing and converting them took 1.1 s. An alias of a value that is
    still open (``&a [*a]``) counts 1 here and is refused by the converter."""
    paths: list[tuple] = []  # the open collections' paths, innermost last
    frames: list[list] = []  # per open collection: [is_mapping, next index | awaiting a key, last key, anchor, count at start, deepest]
    anchors: dict[str, tuple[int, int]] = {}  # anchor: (values it holds, nesting below it)
    count = documents = 0
    for event in yaml.parse(text, Loader=fast_loader()):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                message = "spec holds more than one YAML document; a spec is one (the second starts here)"
                raise SpecError([Issue(file, event.start_mark.line + 1, 1, "", message)])
            continue
        if isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            frame = frames.pop()
            paths.pop()
            if frame[3] is not None:
                anchors[frame[3]] = (count - frame[4], frame[5] - len(frames))
            if frames:
                frames[-1][5] = max(frames[-1][5], frame[5])
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        path = paths[-1] if paths else ()
        if frames:  # where this value sits in the collection that holds it
            parent = frames[-1]
            if not parent[0]:
                path = path + (parent[1],)
                parent[1] += 1
                if parent[1] > MAX_LIST_ITEMS:
                    message = f"a list of more than {MAX_LIST_ITEMS} items; the limit is {MAX_LIST_ITEMS} (pyramidgraph.loader.MAX_LIST_ITEMS)"
                    raise SpecError([Issue(file, event.start_mark.line + 1, event.start_mark.column + 1, format_path(path), message)])
            elif parent[1]:  # a key: reported at its mapping
                parent[1], parent[2] = False, event.value if isinstance(event, yaml.ScalarEvent) else "<key>"
            else:
                path = path + (parent[2],)
                parent[1] = True
        size, below = anchors.get(event.anchor, (1, 0)) if isinstance(event, yaml.AliasEvent) else (1, 0)
        count += size
        if count > MAX_YAML_NODES:
            message = f"spec expands to more than {MAX_YAML_NODES} YAML values (aliases counted at every use)"
            raise SpecError([Issue(file, event.start_mark.line + 1, event.start_mark.column + 1, format_path(path), message)])
        depth = len(frames) + below + isinstance(event, yaml.CollectionStartEvent)
        if depth > MAX_YAML_DEPTH:
            message = f"spec nests deeper than {MAX_YAML_DEPTH} levels"
            raise SpecError([Issue(file, event.start_mark.line + 1, event.start_mark.column + 1, format_path(path[:MAX_YAML_DEPTH]), message)])
        if frames:
            frames[-1][5] = max(frames[-1][5], depth)
        if isinstance(event, yaml.CollectionStartEvent):
            anchor = event.anchor
            frames.append([isinstance(event, yaml.MappingStartEvent), True if isinstance(event, yaml.MappingStartEvent) else 0, None, anchor, count - 1, depth])
            paths.append(path)


def _malformed(text: str, file: str, exc: yaml.YAMLError) -> SpecError:
    """The :class:`SpecError` for text YAML cannot parse, located at the problem, with a hint
    for the usual causes (indentation, tabs, an unquoted ``${...}`` in flow syntax)."""
    if fast_loader() is not yaml.SafeLoader and len(text) <= PRECISE_ERROR_BYTES:
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as precise:
            exc = precise
        except RecursionError:
            pass
    if not isinstance(exc, yaml.MarkedYAMLError):
        return SpecError([Issue(file, 0, 0, "", f"malformed YAML: {exc}")])
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = exc.problem or exc.context or "malformed YAML"
    if exc.problem and exc.context and exc.context_mark:
        # "expected ',' or '}'" alone does not say which bracket is unclosed
        problem += f" ({exc.context} started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    if "<block end>" in problem:
        problem += "; check the indentation"
    elif "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    elif "flow" in (exc.context or "") and _unquoted_expression(text, mark):
        problem += '; inside { } or [ ] an expression must be quoted: "${...}"'
    return SpecError([Issue(file, line, col, "", f"malformed YAML: {problem}")])


def _unquoted_expression(text: str, mark: Any) -> bool:
    """Whether the YAML error at ``mark`` comes from an unquoted ``${...}`` on its line: in flow
    syntax (``{a: ${x}}``) YAML reads the expression's brace as the start of a mapping."""
    lines = text.splitlines()
    return mark is not None and mark.line < len(lines) and "${" in lines[mark.line][: mark.column + 1]


def _show_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/name:os.system`` as it is written: ``!!python/name:os.system``."""
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


class _Converter:
    """Turns a composed YAML node tree into Python data, recording positions."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.issues: list[Issue] = []
        self.constructor = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()  # ids of the collections being converted (the current path)

    def _mark(self, node: yaml.Node) -> tuple[int, int]:
        return (node.start_mark.line + 1, node.start_mark.column + 1)

    def _error(self, node: yaml.Node, path: Path_, message: str) -> None:
        line, col = self._mark(node)
        self.issues.append(Issue(self.doc.file, line, col, format_path(path), message))

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        if id(node) in self.open:  # `&a [*a]`: the alias is inside the value it names
            self._error(node, path[:-1] if path else path, "an alias refers to a value that contains it; a spec is a tree of plain data")
            return None
        return self._convert(node, path)

    def _convert(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.values.setdefault(path, self._mark(node))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            self.open.add(id(node))
            try:
                return self._collection(node, path)
            finally:
                self.open.discard(id(node))
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self._error(node, path, f"unsupported YAML value: {exc.problem}; specs hold plain data only")
            return None
        if isinstance(value, (bytes, bytearray)) or type(value).__module__ == "datetime":
            self._error(node, path, f"unsupported YAML value of type {type(value).__name__}; use a number, string or boolean")
            return None
        return value

    def _collection(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if node.tag != "tag:yaml.org,2002:seq":
            self._error(node, path, f"unsupported YAML tag {_show_tag(node.tag)}; specs hold plain data only")
            return None
        return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict:
        if node.tag not in ("tag:yaml.org,2002:map",):
            self._error(node, path, f"unsupported YAML tag {_show_tag(node.tag)}; specs hold plain data only")
            return None
        out: dict = {}
        seen: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = self.convert(value_node, path)
                sources = merged if isinstance(merged, list) else [merged]
                for src in sources:
                    if isinstance(src, dict):
                        for k, v in src.items():
                            out.setdefault(k, v)
                    else:
                        self._error(value_node, path, "a merge key '<<' needs a mapping or a list of mappings")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._error(key_node, path, "mapping keys must be plain scalars")
                continue
            key = self.convert(key_node, path + ("<key>",))
            self.doc.values.pop(path + ("<key>",), None)
            if isinstance(key, bool) or key is None:
                # `on`/`off`/`yes`/`no` and `~` are YAML 1.1 booleans/null; as keys they are
                # almost always meant as names.
                key = key_node.value
            if not isinstance(key, str):  # names, op and parameter keys are all text
                self._error(key_node, path, f"mapping key {key_node.value!r} is not a string; keys are names: quote it ('{key_node.value}') if it is meant as one")
                continue
            if key in seen:
                first = seen[key]
                self._error(key_node, path + (key,), f"duplicate key '{key}' (first defined at line {first[0]}); each key may appear once")
                continue
            seen[key] = self._mark(key_node)
            self.doc.keys[path + (key,)] = self._mark(key_node)
            out[key] = self.convert(value_node, path + (key,))
        return out


def _plain_copy(value: Any, depth: int = 0) -> Any:
    """Copy a user-given mapping into plain dicts and lists, refusing anything else."""
    if depth > 64:
        raise SpecError([Issue("<dict>", 0, 0, "", "spec nests deeper than 64 levels")])
    if isinstance(value, Mapping):
        bad = next((k for k in value if not isinstance(k, str)), None)
        if bad is not None:
            raise SpecError([Issue("<dict>", 0, 0, "", f"mapping key {bad!r} is not a string; keys are names")])
        return {k: _plain_copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST_ITEMS:
            raise SpecError([Issue("<dict>", 0, 0, "", f"a list of {len(value)} items; the limit is {MAX_LIST_ITEMS} (pyramidgraph.loader.MAX_LIST_ITEMS)")])
        return [_plain_copy(v, depth + 1) for v in value]
    return value
