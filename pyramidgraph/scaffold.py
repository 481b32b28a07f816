"""``pyramidgraph new``: start a spec of your own, from a bundled one or from a template.

A scaffold is meant to be edited, so it keeps everything that explains the source: the new
file is made from the source's *text* (its comments, layout, anchors and quoting survive),
not from a YAML round trip. Only three things change: the editor modeline is replaced by one
that works where the new file lives, a header says how to check, compile and draw the spec,
and the top-level ``name`` becomes the new name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from .errors import Issue, SpecError, did_you_mean
from .library import bundled_specs, find_bundled
from .params import declarations
from .schema import NAME_PATTERN

__all__ = ["TEMPLATE", "LOCAL_SCHEMA", "package_schema", "scaffold_text", "schema_reference", "write_scaffold"]

LOCAL_SCHEMA = "pyramidgraph.schema.json"
"""The file ``pyramidgraph schema > pyramidgraph.schema.json`` writes next to a project's specs."""

_MODELINE = re.compile(r"^#\s*yaml-language-server:.*(?:\n|$)", re.M)
_WHERE = "<command line>"
_HEADER_MARK = "made by `pyramidgraph new`"

TEMPLATE = """\
pyramidgraph: 1
name: neck
doc: A three-level FPN-like neck; describe yours here (the first line shows in `pyramidgraph list`).
# Nodes are feature maps at pyramid levels (level l has stride 2**l). Each node lists the maps it
# reads in `from`; the compiler brings every one of them to the node's level and width (1x1
# projection, nearest upsampling, max pooling), merges them with `fuse` (default: sum) and then
# runs the node's `post` ops. Sections of `pyramidgraph docs spec` are given as §N.
params:                  # overridable: compile(spec, channels=128), --param channels=128 (§3)
  channels: 64           # width of every node
example:                 # the backbone used when no in_channels are given (§4)
  in_channels: [128, 256, 512]   # widths of C3, C4, C5, in the order of `inputs`
  image: 256                     # image size: N or [H, W]; enables the size checks
inputs:                  # the backbone's feature maps, finest first (§5)
  C3: {level: 3}
  C4: {level: 4}
  C5: {level: 5}
defaults:                # applied to every node that does not say otherwise (§8)
  channels: $channels
nodes:                   # any order; a node may read a node written below it (§6)
  # Top-down path: the coarsest input, then each finer input summed with the upsampled node above.
  P5: {from: [C5]}
  P4: {from: [C4, P5], post: [conv3x3]}
  P3: {from: [C3, P4], post: [conv3x3]}
  # A coarser extra level, max-pooled from P5 (the level is what makes it a downsampling edge).
  P6: {level: 6, from: [P5]}
outputs: [P3, P4, P5, P6]   # what the neck returns, in order (§9)
"""
"""The spec ``pyramidgraph new NAME`` starts from when no ``--from`` is given."""


def _fail(message: str) -> SpecError:
    return SpecError([Issue(_WHERE, 0, 0, "new", message)])


def _check_name(name: str) -> None:
    if not re.match(NAME_PATTERN, name):
        hint = ""
        stem = name[: -len(".yaml")] if name.endswith(".yaml") else name[: -len(".yml")] if name.endswith(".yml") else None
        if stem and re.match(NAME_PATTERN, stem):
            hint = f"; give the name without the extension: '{stem}' (the file is {stem}.yaml)"
        raise _fail(f"'{name}' is not a valid spec name: use letters, digits and _, not starting with a digit{hint}")


def _source(source: str | os.PathLike | None) -> tuple[str, str]:
    """The text of the spec to start from, and how to describe it in the header."""
    if source is None:
        return TEMPLATE, "the from-scratch template"
    if isinstance(source, str) and "\n" in source:
        return source, "YAML text"
    path = find_bundled(source)
    if path is not None:
        return path.read_text(encoding="utf-8"), f"the bundled spec '{path.stem}'"
    path = Path(source)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8"), f"'{path}'"
        except (OSError, UnicodeDecodeError) as exc:
            raise _fail(f"cannot read '{path}': {exc}") from None
    names = list(bundled_specs())
    raise _fail(f"--from '{source}' is neither a bundled spec nor a file{did_you_mean(str(source), names)} (bundled: {', '.join(names)})")


def _without_header(text: str) -> str:
    """``text`` without the header an earlier ``pyramidgraph new`` wrote (a scaffold of a scaffold)."""
    lines = text.splitlines(keepends=True)
    leading = 0
    while leading < len(lines) and (lines[leading].startswith("#") or not lines[leading].strip()):
        leading += 1
    if any(_HEADER_MARK in line for line in lines[:leading]):
        return "".join(lines[leading:])
    return text


def _set_name(text: str, name: str) -> str:
    """``text`` with its top-level ``name`` set to ``name``, every other byte kept.

    The value's position comes from PyYAML's composer, so any style of mapping and of scalar
    is handled; a spec without a ``name`` gets one after its ``pyramidgraph`` key.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _fail(f"the source is not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise _fail("the source is not a spec: its top level is not a mapping")
    version = None
    for key, value in root.value:
        if key.value == "name":
            return text[: value.start_mark.index] + name + text[value.end_mark.index :]
        if key.value == "pyramidgraph":
            version = value
    if version is None:
        raise _fail("the source is not a spec: it has no 'pyramidgraph: 1' key")
    at = version.end_mark.index
    if root.flow_style:
        return f"{text[:at]}, name: {name}{text[at:]}"
    indent = " " * root.value[0][0].start_mark.column
    return f"{text[:at]}\n{indent}name: {name}{text[at:]}"


def package_schema() -> str:
    """The absolute path of the JSON Schema shipped inside the installed package."""
    return (Path(__file__).resolve().parent / "spec.schema.json").as_posix()


def schema_reference(directory: str | os.PathLike) -> str:
    """What the modeline of a spec written to ``directory`` should point at.

    ``pyramidgraph.schema.json`` when that file is there (the portable choice: a path relative
    to the spec), else the schema shipped inside the installed package (an absolute path:
    completion works at once, on this machine).
    """
    if (Path(directory) / LOCAL_SCHEMA).is_file():
        return LOCAL_SCHEMA
    return package_schema()


def _other_backbone(file: str, text: str) -> str:
    """A compile command with explicit widths (the example's, to be replaced) and parameters."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    data = data if isinstance(data, dict) else {}
    example = data.get("example") if isinstance(data.get("example"), dict) else {}
    widths = example.get("in_channels")
    params = declarations(data.get("params")) if isinstance(data.get("params"), dict) else {}
    channels = params["channels"].default if "channels" in params else None
    command, why = f"pyramidgraph compile {file}", []
    if isinstance(widths, list) and widths:
        command += " --in-channels " + ",".join(str(w) for w in widths)
        why.append("input widths (the example's: put your backbone's)")
    if isinstance(channels, int) and not isinstance(channels, bool):
        command += f" --param channels={2 * channels}"
        why.append("a parameter override")
    return f"{command}  # {' and '.join(why)}" if why else command


def _header(name: str, origin: str, schema: str, text: str) -> str:
    file = f"{name}.yaml"
    if schema == LOCAL_SCHEMA:
        completion = [
            "# Editor completion: the first line points yaml-language-server (VS Code's YAML extension and",
            f"# other editors using it) at {LOCAL_SCHEMA} next to this file. Refresh it after upgrading",
            f"# pyramidgraph: `pyramidgraph schema > {LOCAL_SCHEMA}`.",
        ]
    else:
        completion = [
            "# Editor completion: the first line points yaml-language-server (VS Code's YAML extension and",
            "# other editors using it) at the JSON Schema shipped in the installed pyramidgraph package, an",
            "# absolute path that works on this machine only. To share this spec, write the schema next to it",
            f"# and point the first line there instead (`pyramidgraph new` does so when {LOCAL_SCHEMA} exists):",
            f"#   pyramidgraph schema > {LOCAL_SCHEMA}",
            f"#   # yaml-language-server: $schema={LOCAL_SCHEMA}",
        ]
    commands = [
        (f"pyramidgraph validate {file}", "problems print as file:line:col: path: message"),
        (f"pyramidgraph compile {file}", "shapes and parameter count for the `example` backbone"),
        (f"pyramidgraph compile {file} --code", "the generated forward()"),
        (f"pyramidgraph render {file} -o {name}.svg", "draw it (.svg, .png, .pdf or .dot)"),
    ]
    width = max(len(command) for command, _ in commands)
    lines = [
        f"# yaml-language-server: $schema={schema}",
        f"# {name}: a pyramidgraph neck spec, {_HEADER_MARK} from {origin}.",
        "#",
        "# Edit it, then:",
        *(f"#   {command.ljust(width)}  # {why}" for command, why in commands),
        f"#   {_other_backbone(file, text)}",
        f'# In Python: neck = pyramidgraph.compile("{file}"); outs = neck(neck.example_inputs())',
        "# Installed documentation: `pyramidgraph docs spec` (the language), `pyramidgraph docs specs` (the",
        "# bundled specs' parameters), `pyramidgraph docs cookbook` (recipes); `pyramidgraph info SPEC --params`.",
        *completion,
        "",
    ]
    return "\n".join(lines) + "\n"


def scaffold_text(name: str, source: str | os.PathLike | None = None, schema: str | None = None) -> str:
    """The text of a new spec called ``name``, made from ``source`` (bundled name, path or YAML
    text; None: :data:`TEMPLATE`), with a header and a modeline pointing at ``schema`` (default: the
    package's schema file)."""
    _check_name(name)
    text, origin = _source(source)
    body = _set_name(_MODELINE.sub("", _without_header(text)), name)
    return _header(name, origin, schema or package_schema(), body) + body


def write_scaffold(name: str, source: str | os.PathLike | None = None, out_dir: str | os.PathLike = ".", force: bool = False) -> Path:
    """Write ``out_dir/name.yaml`` (see :func:`scaffold_text`); an existing file is kept unless ``force``."""
    _check_name(name)
    directory = Path(out_dir)
    target = directory / f"{name}.yaml"
    if target.exists() and not force:
        raise _fail(f"{target} exists; choose another name or pass --force to overwrite it")
    if directory.exists() and not directory.is_dir():
        raise _fail(f"--out {directory} is not a directory")
    text = scaffold_text(name, source, schema_reference(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:  # a folder under a file, no permission
        raise _fail(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
