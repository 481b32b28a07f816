"""The ``pyramidgraph`` command: validate, compile, list, list-ops, schema.

Spec problems print one ``file:line:col: path: message`` line each on stderr (followed by the
YAML line and a caret, see :mod:`.diagnostics`) and exit with 2; nothing a user writes in a
spec produces a traceback.

Modules are imported by the commands that use them, so that ``--help``, ``--version``, ``list``
and ``validate`` start without torch (``benchmarks/bench_cli.py`` times them).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from .errors import Issue, SpecError

EXIT_SPEC_ERROR = 2


def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise SpecError([Issue("<command line>", 0, 0, "--param", f"'{text}' is not NAME=VALUE")])
    import yaml

    name, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return name.strip(), parsed


def _parse_ints(text: str, what: str, separator: str, form: str) -> list[int]:
    """Positive integers separated by the pattern ``separator``; an empty item or anything else is refused
    (``64,,128`` or ``320x`` are typing mistakes, not lists of one fewer)."""
    import re

    parts = re.split(separator, text.strip())
    if not all(part.isascii() and part.isdigit() and int(part) > 0 for part in parts):
        raise SpecError([Issue("<command line>", 0, 0, what, f"'{text}' is not {form}")])
    return [int(part) for part in parts]


def _image(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    sides = _parse_ints(text.lower(), "--image", r"\s*x\s*", "HxW or N (positive integers, such as 512x640 or 512)")
    if len(sides) > 2:
        raise SpecError([Issue("<command line>", 0, 0, "--image", f"'{text}' is not HxW or N (positive integers, such as 512x640 or 512)")])
    return (sides[0], sides[-1])


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "in_channels": _parse_ints(args.in_channels, "--in-channels", r"\s*,\s*|\s+", "a comma-separated list of positive widths, such as 256,512,1024") if args.in_channels else None,
        "image": _image(args.image),
        "params": dict(_parse_param(p) for p in args.param or []),
        "include_dirs": list(args.include_dir or []),
    }


def report(exc: SpecError, args: argparse.Namespace) -> None:
    """Print ``exc``'s issues on stderr: located lines with the YAML source and a caret (see :mod:`.diagnostics`)."""
    from .diagnostics import format_issues, use_color

    print(format_issues(exc.issues, color=use_color(getattr(args, "color", "auto"), sys.stderr)), file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    from .compiler import analyze

    common = _common(args)
    failed = False
    for spec in args.specs:
        try:
            analysis = analyze(spec, common["in_channels"], image=common["image"], params=common["params"], include_dirs=common["include_dirs"])
        except SpecError as exc:
            report(exc, args)
            failed = True
            continue
        print(f"{analysis.doc.file}: ok ({len(analysis.flat.nodes)} nodes, {len(analysis.flat.outputs)} outputs)")
    return EXIT_SPEC_ERROR if failed else 0


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import compile as compile_spec

    common = _common(args)
    neck = compile_spec(args.spec, common["in_channels"], image=common["image"], params=common["params"], include_dirs=common["include_dirs"], optimize=args.optimize)
    if args.code:
        # the forward alone: the lines above it declare to torch.fx which calls a re-trace keeps whole
        code = neck.inference_code or neck.code
        print(code[code.find("def forward") :].strip())
        return 0
    import torch

    from .errors import NeckInputError

    image = common["image"] or neck.default_image
    neck.eval()
    try:
        with torch.no_grad():
            outputs = neck(neck.example_inputs(batch=1, image=image))
    except NeckInputError as exc:  # a default image (the example's, or 256) that these widths' neck cannot run
        print(f"{args.spec}: compiled, but it cannot run the {image[0]}x{image[1]} image it was tried at: {exc}; pass --image", file=sys.stderr)
        return EXIT_SPEC_ERROR
    values = list(outputs.values()) if isinstance(outputs, dict) else list(outputs)
    params = sum(p.numel() for p in neck.parameters())
    print(f"{neck.info.name}: {len(neck.info.inputs)} inputs -> {len(values)} outputs, image {image[0]}x{image[1]}")
    for name, shape in neck.info.inputs:
        print(f"  in  {name:<12} {shape.channels:>5} ch  stride {shape.stride}")
    for name, tensor, stride in zip(neck.output_names, values, neck.strides):
        print(f"  out {name:<12} {tuple(tensor.shape)}  stride {stride}")
    print(f"  parameters: {params:,}")
    if neck.info.pass_counts:
        done = ", ".join(f"{name} {count}" for name, count in neck.info.pass_counts.items() if count)
        print(f"  optimize {neck.info.optimize}: {done or 'nothing to rewrite'}")
    return 0


def _unwritable(option: str, path: str, exc: OSError) -> SpecError:
    """An output path that cannot be written (a file where a folder goes, a folder under a
    file, no permission), said in one line instead of a traceback."""
    why = exc.strerror or str(exc)
    culprit = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return SpecError([Issue("<command line>", 0, 0, option, f"cannot write '{path}': {why}{culprit}")])


def cmd_info(args: argparse.Namespace) -> int:
    """Per-node level, stride, width, size, parameters and MACs (see :mod:`.info`), as a table or
    JSON; with ``--params``, the spec's parameters instead (read from the spec, nothing compiled)."""
    if args.params:
        return _print_params(args)
    from .info import neck_info

    common = _common(args)
    cost = neck_info(args.spec, common["in_channels"], image=common["image"], params=common["params"], include_dirs=common["include_dirs"])
    print(cost.to_json() if args.json else cost.table())
    return 0


def _print_params(args: argparse.Namespace) -> int:
    from .compiler import load
    from .params import declarations, params_table
    from .schema import check_schema

    doc = load(args.spec)
    issues = check_schema(doc)
    if issues:
        raise SpecError(issues)
    decls = declarations(doc.data.get("params"))
    if args.json:
        print(json.dumps({"name": doc.data.get("name"), "file": doc.file, "params": [d.to_dict() | {"derived": d.derived} for d in decls.values()]}, indent=1))
        return 0
    name = doc.data.get("name") or doc.file
    if not decls:
        print(f"{name}: no parameters")
        return 0
    print(f"{name}: parameters (set with --param NAME=VALUE, or compile(spec, NAME=VALUE) in Python)\n")
    print(params_table(decls), end="")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Draw the spec (see :mod:`.render`): DOT text on stdout, or the file -o names (format from its suffix)."""
    import warnings

    from .render import GraphvizMissing, render, save

    common = _common(args)
    looks = {"style": args.style, "width": args.width, "legend": args.legend, "edge_labels": args.edge_labels, "ops": args.ops, "cell": args.cell}
    try:
        with warnings.catch_warnings(record=True) as caught:  # a paper figure whose text ends up under 8 pt
            warnings.simplefilter("always")
            graph = render(args.spec, common["in_channels"], image=common["image"], params=common["params"], lowered=args.lowered, expand=args.expand, include_dirs=common["include_dirs"], **looks)
    except SpecError:
        raise
    except ValueError as exc:  # options that do not go together (--style paper --lowered, --cell --expand)
        print(f"pyramidgraph render: {exc}", file=sys.stderr)
        return EXIT_SPEC_ERROR
    for warning in caught:
        print(f"pyramidgraph render: warning: {warning.message}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(graph.source)
        return 0
    try:
        fmt = save(graph, args.output)
    except (GraphvizMissing, ValueError) as exc:
        print(f"pyramidgraph render: {exc}", file=sys.stderr)
        return EXIT_SPEC_ERROR
    except OSError as exc:
        raise _unwritable("-o", args.output, exc) from None
    print(f"wrote {args.output} ({fmt})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .library import bundled_specs, spec_summary

    specs = bundled_specs()
    width = max(map(len, specs), default=0)  # one column for the docs, however long the names
    for name, path in specs.items():
        print(f"{name:<{width}}  {spec_summary(path)}")
    return 0


def cmd_list_ops(args: argparse.Namespace) -> int:
    from .ops import REGISTRIES

    kinds = [args.kind] if args.kind else list(REGISTRIES)
    for kind in kinds:
        if kind not in REGISTRIES:
            raise SpecError([Issue("<command line>", 0, 0, "list-ops", f"unknown op kind '{kind}'; kinds: {', '.join(REGISTRIES)}")])
        print(f"{kind}:")
        entries = sorted(REGISTRIES[kind].entries.items())
        indent = 2 + max(len(name) for name, _ in entries) + 2
        for name, (cls, preset) in entries:
            if preset or cls.name != name:  # an alias: point at the op it presets, described there
                doc = f"Alias of {cls.name}" + (f" with {json.dumps(preset)}." if preset else ".")
            else:
                doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
                params = ", ".join(f.name for f in cls.param_fields())
                doc += f" Parameters: {params}." if params else ""
            print(_hanging(f"  {name}".ljust(indent) + doc, indent))
    return 0


def _hanging(text: str, indent: int) -> str:
    """``text`` wrapped to the terminal (100 columns when not on one), continuation lines
    indented to ``indent`` so that descriptions line up after the names."""
    import shutil
    import textwrap

    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    return textwrap.fill(text, width=width, subsequent_indent=" " * indent, break_on_hyphens=False, break_long_words=False)


def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import spec_schema

    print(json.dumps(spec_schema(), indent=2))
    return 0


SOURCE_ALIASES = {"ultralytics": "ultralytics.neck", "rtdetr": "rtdetr.HybridEncoder", "afpn": "afpn.AFPN", "damoyolo": "damoyolo.GiraffeNeckV2"}
"""Short ``--from`` names for the references with one source."""


def cmd_convert(args: argparse.Namespace) -> int:
    """Write the spec that reproduces a reference neck, and its checkpoint under our key names."""
    import io
    from pathlib import Path

    import torch

    from .files import MAX_CHECKPOINT_BYTES, MAX_CONFIG_BYTES, read_regular_file
    from .interop import conversion, from_reference
    from .interop.base import CheckpointError, ConversionError, check_checkpoint
    from .interop.export import converted_spec_text

    source = SOURCE_ALIASES.get(args.source, args.source)
    config: Any = {}
    if args.config:
        try:
            config = json.loads(read_regular_file(args.config, MAX_CONFIG_BYTES).decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConversionError(args.config, f"cannot read the config as JSON: {getattr(exc, 'strerror', None) or exc}") from None
    elif not args.yaml:
        raise SpecError([Issue("<command line>", 0, 0, "--config", "give --config (a JSON file of the reference's config), or --yaml for an ultralytics model")])
    if args.yaml or args.scale:
        if source != "ultralytics.neck":
            raise SpecError([Issue("<command line>", 0, 0, "--yaml", f"--yaml and --scale are for --from ultralytics, not {args.source}")])
        if not isinstance(config, dict):
            raise ConversionError(args.config, "the config must be a JSON object")
        config = dict(config, **({"yaml": args.yaml} if args.yaml else {}), **({"scale": args.scale} if args.scale else {}))
    args.source = source
    plan = conversion(source, config)
    state = None
    if args.weights:
        try:
            state = torch.load(io.BytesIO(read_regular_file(args.weights, MAX_CHECKPOINT_BYTES)), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for unreadable checkpoints
            raise CheckpointError(args.weights, f"cannot load the checkpoint: {getattr(exc, 'strerror', None) or exc}") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        check_checkpoint(state, args.weights)
    neck = from_reference(args.source, config, state)
    out = Path(args.out)
    spec_path = out / "neck.yaml"
    if out.exists() and not out.is_dir():
        raise SpecError([Issue("<command line>", 0, 0, "--out", f"'{args.out}' is a file; --out names the folder for neck.yaml and neck.pt")])
    try:
        out.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(converted_spec_text(args.source, config, plan), encoding="utf-8")
        if state is not None:
            torch.save(neck.state_dict(), out / "neck.pt")
    except OSError as exc:
        raise _unwritable("--out", args.out, exc) from None
    print(f"wrote {spec_path}")
    if state is not None:
        print(f"wrote {out / 'neck.pt'} ({len(neck.state_dict())} tensors, pyramidgraph key names)")
    print(f"load with: pyramidgraph.compile({str(spec_path)!r})" + (f" then load_state_dict(torch.load({str(out / 'neck.pt')!r}))" if state is not None else ""))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Print an installed guide (``docs/*.md`` of the repository), or list them."""
    from .library import guide_dir

    guides = {p.stem: p for p in sorted(guide_dir().glob("*.md"))}
    if args.topic is None:
        for name, path in guides.items():
            print(f"{name:<12} {path.read_text(encoding='utf-8').splitlines()[0].lstrip('# ')}")
        return 0
    if args.topic not in guides:
        from .errors import did_you_mean

        hint = did_you_mean(args.topic, guides) or f"; guides: {', '.join(guides)}"
        raise SpecError([Issue("<command line>", 0, 0, "docs", f"no guide '{args.topic}'{hint}")])
    path = guides[args.topic]
    print(path if args.path else path.read_text(encoding="utf-8"), end="\n" if args.path else "")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold ``NAME.yaml`` from a bundled spec (comments kept) or the from-scratch template."""
    from .library import find_bundled
    from .scaffold import write_scaffold

    path = write_scaffold(args.name, args.source, args.out, force=args.force)
    print(f"wrote {path}")
    if find_bundled(args.name) is not None:
        print(f"note: '{args.name}' is also a bundled spec; name yours by its path ({path})")
    print(f"next: edit it, then `pyramidgraph validate {path}` and `pyramidgraph compile {path} --code`")
    return 0


class _VersionAction(argparse.Action):
    """``--version``: print ``pyramidgraph VERSION`` and exit 0. Unlike argparse's own, it looks
    the version up (``importlib.metadata``) only when asked, not on every start."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, default: Any = argparse.SUPPRESS, help: str | None = None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        from . import __version__

        print(f"pyramidgraph {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyramidgraph", description="Detector necks as YAML graphs, compiled to torch.fx.")
    parser.add_argument("--version", action=_VersionAction, help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def spec_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--in-channels", help="input widths, finest first: 256,512,1024,2048 (default: the spec's example)")
        p.add_argument("--image", help="image size HxW or N to check the sizes at (default: the spec's example when no --in-channels are given; else none: the neck checks the sizes it is called with)")
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a spec parameter (repeatable)")
        p.add_argument("--include-dir", action="append", metavar="DIR", help="a folder whose files include: may read, besides the spec's own folder (repeatable)")

    p = sub.add_parser("validate", help="check specs; exit 2 with located messages on problems")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    spec_options(p)
    p.set_defaults(run=cmd_validate)

    p = sub.add_parser("compile", help="compile a spec; print a summary or the generated code")
    p.add_argument("spec", metavar="SPEC")
    spec_options(p)
    p.add_argument("--code", action="store_true", help="print the generated forward code (with --optimize inference: the inference program's)")
    p.add_argument("--optimize", choices=["none", "train", "inference"], default="none", help="optimisation level (default: none); the summary then lists what each pass rewrote")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("info", help="per-node level, stride, channels, size, parameters and multiply-adds, with totals")
    p.add_argument("spec", metavar="SPEC")
    spec_options(p)
    p.add_argument("--json", action="store_true", help='print {"name", "image", "inputs", "outputs", "nodes": [...], "total": {"params": ..., "macs": ...}} instead of a table')
    p.add_argument("--params", action="store_true", help="list the spec's parameters (default, type, allowed values, doc) instead; nothing is compiled")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("render", help="draw a spec: levels as rows, stages as columns (DOT on stdout, or -o file.svg|.png|.pdf|.dot)")
    p.add_argument("spec", metavar="SPEC")
    spec_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write FILE; the format comes from its suffix: .svg, .png, .pdf (these need Graphviz's dot), .dot (default: DOT text on stdout)")
    p.add_argument("--expand", action="store_true", help="draw every repetition of repeated blocks (default: each block once, titled 'x N')")
    p.add_argument("--lowered", action="store_true", help="draw the lowered IR: every op the compiler emits, with its output shape")
    p.add_argument("--style", choices=["default", "paper"], default="default", help="paper: a figure for a publication: one cell, compact columns, names only, black and greys, at most --width wide, text at least 8 pt")
    p.add_argument("--width", type=float, metavar="INCHES", help="scale a wider drawing down to INCHES (paper default: 7, a two-column page's text width; default style: no limit)")
    p.add_argument("--legend", action=argparse.BooleanOptionalAction, default=None, help="draw the legend (default: yes)")
    p.add_argument("--edge-labels", action=argparse.BooleanOptionalAction, default=None, help="label lines with their resample ops (default: yes; paper: no)")
    p.add_argument("--ops", action=argparse.BooleanOptionalAction, default=None, help="put a node's post ops under its name (default: yes; paper: no)")
    p.add_argument("--cell", action=argparse.BooleanOptionalAction, default=None, help="draw only one repetition of the largest repeated block, what it reads as its inputs (default: no; paper: yes, unless --expand)")
    p.set_defaults(run=cmd_render)

    p = sub.add_parser("list", help="list the bundled specs")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("list-ops", help="list the registered ops")
    p.add_argument("kind", nargs="?", help="resample, fuse, post or apply")
    p.set_defaults(run=cmd_list_ops)

    p = sub.add_parser("convert", help="convert a reference neck (config + weights) to a spec and a checkpoint")
    p.add_argument("--from", dest="source", required=True, help="reference: ultralytics (any model yaml), torchvision.FeaturePyramidNetwork, mmdet, effdet.BiFpn, rtdetr, afpn, damoyolo, m2det.MLFPN, asff.ASFF...")
    p.add_argument("--config", help="JSON file with the reference constructor's config (as the parity fixtures record it)")
    p.add_argument("--yaml", help="with --from ultralytics: the model yaml (a path, or a name such as yolo11n.yaml that an installed ultralytics has)")
    p.add_argument("--scale", help="with --from ultralytics: the scale letter (default: the one in the yaml's name, else its first)")
    p.add_argument("--weights", help="the reference's state_dict (torch.save'd); for ultralytics the whole model's (torch.save(YOLO(...).model.state_dict(), ...)): the neck's keys are used")
    p.add_argument("--out", required=True, help="directory for neck.yaml (and neck.pt with --weights)")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser("new", help="write NAME.yaml, an editable copy of a bundled spec or a commented template")
    p.add_argument("name", metavar="NAME", help="the spec's name; the file is NAME.yaml")
    p.add_argument("--from", dest="source", metavar="SPEC", help="bundled spec (bifpn, fpn, ...) or file to start from (default: a commented 3-level FPN template)")
    p.add_argument("--out", default=".", metavar="DIR", help="directory to write to (default: the current one)")
    p.add_argument("--force", action="store_true", help="overwrite an existing NAME.yaml")
    p.set_defaults(run=cmd_new)

    p = sub.add_parser("docs", help="print an installed guide: spec (the language reference), specs (the bundled specs' parameters), cookbook")
    p.add_argument("topic", nargs="?", help="the guide to print (default: list them)")
    p.add_argument("--path", action="store_true", help="print the guide's file path instead of its text")
    p.set_defaults(run=cmd_docs)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec format")
    p.set_defaults(run=cmd_schema)

    from .diagnostics import COLOR_MODES

    color_help = "colour error messages: auto (when stderr is a terminal and NO_COLOR is unset), always or never"
    parser.add_argument("--color", choices=COLOR_MODES, default="auto", help=color_help)
    plugin_help = "import MODULE first, which registers ops of its own (repeatable; a spec never loads code itself)"
    parser.add_argument("--plugin", action="append", metavar="MODULE", default=[], help=plugin_help)
    for command in {id(p): p for p in sub.choices.values()}.values():  # also after the command; SUPPRESS keeps a value given before it
        command.add_argument("--color", choices=COLOR_MODES, default=argparse.SUPPRESS, help=color_help)
        command.add_argument("--plugin", action="append", metavar="MODULE", dest="command_plugin", default=[], help=plugin_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.plugin or getattr(args, "command_plugin", None):
            from .plugins import load_plugin

            for module in [*args.plugin, *args.command_plugin]:
                load_plugin(module)
        return args.run(args)
    except SpecError as exc:
        report(exc, args)
        return EXIT_SPEC_ERROR
    except BrokenPipeError:  # pragma: no cover - `pyramidgraph schema | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
