"""The benchmark table of issue 12: optimised compiled necks against the hand-written references.

Runs in the reference environment built by ``../shared/peers/setup.sh`` (mmdet, effdet,
ultralytics, torchvision... are never project dependencies), with pyramidgraph importable::

    REFS=/tmp/refs PYTHONPATH=. /tmp/peers-venv/bin/python benchmarks/bench_optimise.py [options] [ROW ...]
    ... bench_optimise.py --list                       # the rows, with their sizes, nothing run
    ... bench_optimise.py --headline --markdown        # the issue's named rows, as a README table
    ... bench_optimise.py --optimize none --batches 1,8 --runs 5,2 mmdet_fpn_r50_640
    ... bench_optimise.py --compile --batches 1 --headline   # plus torch.compile rows (15-40 s a compile)

Rows (``--list`` prints them): first the sizes the issue names (R50 widths at 640x640 for FPN,
PAFPN, NAS-FPN x7 and FPN+BFP; BiFPN d0 at 512 and d3 at 896, effdet's PyTorch and TF
flavours; the YOLOv8s and YOLO11s necks at 640), then every other case of
``../shared/peers/cases.json``, ``cases_necks.json``, ``cases_fetched.json`` and
``benchmarks/cases_yolo_detr.json`` once, at one standard configuration: a typical backbone's
widths and image where :data:`STANDARD` or ``bench_references.widen`` gives one (``scale
real``), the recorded fixture size otherwise (``scale fixture``). A case the YOLO/DETR list
holds at 640 replaces its tiny twin (:data:`SUPERSEDED`).

Each case is built the way ``bench_references.py`` builds it: the recorder's own builder, weights
randomised by ``make_fixtures.randomise``, converted with ``interop.from_reference`` (same
weights), outputs checked against the reference's. All in eval mode, under ``no_grad``,
``torch.set_num_threads(--threads)``. For every batch of ``--batches`` one row:

* ``ours ms`` / ``ref ms``: median of ``--runs`` interleaved runs after warm-up
  (``bench_references.interleaved_ms``: reference, ours and the conv floor alternate run by
  run, so drift in the machine's speed falls on all three alike); ours is compiled with
  ``optimize=--optimize`` (default ``inference``), eager backend;
* ``floor ms``: the neck's convolutions alone. One forward of our neck runs under a dispatch mode
  that records every convolution op (any aten/mkldnn op whose name contains ``convolution``)
  with its arguments; the floor replays just those calls back to back on the recorded tensors.
  ``ours/floor`` is how much the rest of the neck (resampling, sums, norms, Python) costs;
* ``MB``: peak live tensor memory of one forward, each side. A ``TorchDispatchMode`` counts the
  bytes of every tensor storage an op produces or reads (each storage once, however many views
  share it; a storage's bytes leave the count when a weak reference to it dies), starting from
  the module's parameters and buffers and the inputs, so the figure is weights + inputs + the
  largest set of activations alive at once. Allocations inside an op that never become a
  tensor (mkldnn scratch) are not seen; the same blind spot on both sides;
* ``params``: unique parameters' numel, each side (buffers not counted);
* ``spec ms``: ``interop.from_reference(source, config, state, optimize=...)``: config to spec,
  spec to module, weights loaded, optimised; median of ``--spec-repeats`` calls;
* ``err``: max |ours - ref| / max(1, max |ref|) over the outputs of the measured forward.

``--compile`` adds, at batch 1, rows with ``torch.compile`` on both sides (ours
``from_reference(..., backend="compile")``, the reference ``torch.compile(module)``) for the
selected rows that ``--compile-rows`` names (default :data:`COMPILE_DEFAULT`); the mode column
gives the first call's seconds, compilation included. No floor or memory there (a dispatch mode does not see inside a compiled graph).
``--optimize none`` runs ours unoptimised (``optimize=`` is not passed at all, so this works
on a pyramidgraph that predates the option). ``--markdown`` prints the table as Markdown with
the machine line above it; ``--json PATH`` writes every row.

Cost: on this 2-core machine a full run (all rows, batches 1 and 8, runs 50 and 10) takes
2-5 hours, NAS-FPN x7 and TF-BiFPN d3 a third of it; ``--headline`` 0.7-1.5 hours; a dry
``--batches 1 --runs 1 --spec-repeats 1`` over every row about 11 minutes.

GPU rows are not part of this script: the references' packages live only in the peer
environment, which a GPU machine here does not carry.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import platform
import statistics
import sys
import time
import weakref
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_references import PEERS, builders, interleaved_ms, widen  # noqa: E402  (PEERS goes on sys.path there)

CASE_LISTS = [PEERS / "cases.json", PEERS / "cases_necks.json", PEERS / "cases_fetched.json", HERE / "cases_yolo_detr.json"]
R50 = [256, 512, 1024, 2048]

# The named rows: (row id, case id it derives from, image, changes). Changes of a
# ``necks`` config go to each listed neck in order; effdet rows replace the whole config.
HEADLINE: list[tuple[str, str, int, Any]] = [
    ("mmdet_fpn_r50_640", "mmdet_fpn", 640, [{"in_channels": R50, "out_channels": 256}]),
    ("mmdet_pafpn_r50_640", "mmdet_pafpn", 640, [{"in_channels": R50, "out_channels": 256}]),
    ("mmdet_nasfpn_x7_r50_640", "mmdet_nasfpn", 640, [{"in_channels": R50, "out_channels": 256, "stack_times": 7}]),
    ("mmdet_fpn_bfp_r50_640", "mmdet_fpn_bfp_nonlocal", 640, [{"in_channels": R50, "out_channels": 256}, {"in_channels": 256}]),
    # EfficientDet: effdet's own model configs (fpn_channels 64 / 160, 3 / 6 cells), EfficientNet-B0 / B3 widths
    ("effdet_bifpn_d0_512", "effdet_bifpn", 512, {"base_config": "efficientdet_d0", "in_channels": [40, 112, 320], "reductions": [8, 16, 32], "overrides": {}}),
    ("effdet_tf_bifpn_d0_512", "effdet_tf_bifpn", 512, {"base_config": "tf_efficientdet_d0", "in_channels": [40, 112, 320], "reductions": [8, 16, 32], "overrides": {}}),
    ("effdet_bifpn_d3_896", "effdet_bifpn", 896, {"base_config": "efficientdet_d3", "in_channels": [48, 136, 384], "reductions": [8, 16, 32], "overrides": {}}),
    ("effdet_tf_bifpn_d3_896", "effdet_tf_bifpn", 896, {"base_config": "tf_efficientdet_d3", "in_channels": [48, 136, 384], "reductions": [8, 16, 32], "overrides": {}}),
    ("ultralytics_yolov8s_640", "ultralytics_yolov8s_640", 640, None),
    ("ultralytics_yolo11s_640", "ultralytics_yolo11s_640", 640, None),
]

# Standard configurations of the other cases where bench_references.REAL has none: the widths of
# the model each neck is published with (mmdet's configs), changes to necks[0] as above.
STANDARD: dict[str, tuple[int, Any]] = {
    "mmdet_hrfpn": (640, [{"in_channels": [32, 64, 128, 256], "out_channels": 256}]),  # HRNetV2p-W32
    "mmdet_cspnext_pafpn": (640, [{"in_channels": [128, 256, 512], "out_channels": 128}]),  # RTMDet-s
    "mmdet_yolov3_neck": (640, [{"in_channels": [1024, 512, 256], "out_channels": [512, 256, 128]}]),  # YOLOv3 D53
    "mmdet_ssh": (640, [{"in_channels": R50, "out_channels": [256, 256, 256, 256]}]),
    "mmdet_channel_mapper": (640, [{"in_channels": [512, 1024, 2048], "out_channels": 256, "norm_cfg": {"type": "GN", "num_groups": 32}}]),  # DINO R50
    "mmdet_dilated_encoder": (640, [{"in_channels": 2048, "out_channels": 512, "block_mid_channels": 128}]),  # YOLOF R50
    "mmdet_ssd_neck": (300, [{"in_channels": [512, 1024], "out_channels": [512, 1024, 512, 256, 256, 256]}]),  # SSD300 VGG16
    "mmdet_nasfcos_fpn": (640, [{"in_channels": R50, "out_channels": 256}]),
    "mmdet_ct_resnet_neck": (512, [{"in_channels": 512, "num_deconv_filters": [256, 128, 64]}]),  # CenterNet R18
    "mmdet_fpn_dropblock": (640, [{"in_channels": R50, "out_channels": 256}]),
    "ultralytics_yolov8n_neck": (640, None),  # the yolov8-neck converter, yolov8n widths
    "ultralytics_yolov3_neck": (640, {"yaml_overrides": {}}),  # full width, not the fixture's 1/8
    "smp_pan_decoder": (512, {"encoder_channels": [3, 64, 64, 128, 256, 512]}),  # ResNet-34 encoder
    "asff": (640, None),  # widths hard-coded in the reference (YOLOv3)
    # M2Det 320 (VGG16): FFMv1 512 -> 256 and 1024 -> 512, 8 TUMs of 256 planes, 6 scales
    "m2det_mlfpn": (320, {"planes": 256, "num_levels": 8, "shallow_in": 512, "deep_in": 1024, "shallow_out": 256, "deep_out": 512}),
    "m2det_mlfpn_nosfam": (320, {"planes": 256, "num_levels": 8, "shallow_in": 512, "deep_in": 1024, "shallow_out": 256, "deep_out": 512}),
}

SUPERSEDED = {  # case id -> the row that measures the same reference at its real size
    "ultralytics_yolov5n_neck": "ultralytics_yolov5n_640", "ultralytics_yolov6n_neck": "ultralytics_yolov6n_640",
    "ultralytics_yolov9t_neck": "ultralytics_yolov9t_640", "ultralytics_yolov10n_neck": "ultralytics_yolov10n_640",
    "ultralytics_yolo11n_neck": "ultralytics_yolo11n_640", "ultralytics_yolo12n_neck": "ultralytics_yolo12n_640",
    "ultralytics_rtdetr_l_neck": "ultralytics_rtdetr_l_640", "ultralytics_yolov8n_neck_general": "ultralytics_yolov8n_640",
    "rtdetr_hybrid_encoder": "rtdetr_r50_640", "afpn": "afpn_r50_640", "damoyolo_giraffe_neck_v2": "damoyolo_s_640",
}

COMPILE_DEFAULT = ["mmdet_fpn_r50_640", "effdet_bifpn_d0_512", "ultralytics_yolov8s_640"]


def _change(case: dict, image: int, changes: Any) -> dict:
    """``case`` at ``image`` x ``image`` with ``changes`` (see :data:`HEADLINE`) applied."""
    case = copy.deepcopy(case)
    case["hw"] = [image, image]
    config = case["config"]
    if isinstance(changes, list):
        for neck, change in zip(config["necks"], changes):
            neck.update(change)
    elif isinstance(changes, dict):
        if case["source"] == "effdet.BiFpn":  # the image size is effdet's config key
            config = case["config"] = dict(changes, overrides=dict(changes["overrides"], image_size=[image, image]))
        else:
            config.update(changes)
    return case


def rows() -> list[dict]:
    """Every case to measure, headline rows first; each carries ``scale`` (real / fixture)."""
    cases: dict[str, dict] = {}
    for path in CASE_LISTS:
        for case in json.loads(path.read_text()):
            cases.setdefault(case["id"], case)
    out, used = [], set()
    for row_id, base, image, changes in HEADLINE:
        out.append(dict(_change(cases[base], image, changes), id=row_id, scale="real", headline=True))
        used.add(base)
    for case in cases.values():
        if case["id"] in used or case["id"] in SUPERSEDED:
            continue
        if case["id"] in STANDARD:
            image, changes = STANDARD[case["id"]]
            out.append(dict(_change(case, image, changes), scale="real", headline=False))
        elif widen(case) != case:
            out.append(dict(widen(case), scale="real", headline=False))
        else:  # already at a real size (the YOLO/DETR list), or recorded tiny with no standard widths
            out.append(dict(case, scale="real" if min(case["hw"]) >= 512 else "fixture", headline=False))
    return out


class LiveBytes(TorchDispatchMode):
    """Peak bytes of live tensor storages while it is active; optionally records convolutions.

    A storage counts once from the first op that produces or reads it until a weak reference to
    it dies (tensors whose layout has no storage, mkldnn's opaque ones, count by their own
    weak reference). :meth:`add` registers tensors alive before the forward (weights, inputs)."""

    def __init__(self, record_convs: bool = False):
        super().__init__()
        self.sizes: dict[int, int] = {}
        self.refs: dict[int, weakref.ref] = {}  # dropped with the mode, so late deaths touch nothing
        self.now = 0
        self.peak = 0
        self.convs: list[tuple[Any, tuple, dict]] | None = [] if record_convs else None

    def add(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor):
            return
        try:
            owner = tensor.untyped_storage()
            key, size = owner._cdata, owner.nbytes()
        except (RuntimeError, NotImplementedError):
            owner, key, size = tensor, id(tensor), tensor.numel() * tensor.element_size()
        known = self.sizes.get(key)
        if known is None:
            self.refs[key] = weakref.ref(owner, lambda _, key=key: self._free(key))
        self.now += size - (known or 0)
        self.sizes[key] = size
        self.peak = max(self.peak, self.now)

    def _free(self, key: int) -> None:
        self.now -= self.sizes.pop(key, 0)
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for leaf in pytree.tree_leaves((args, kwargs)):
            self.add(leaf)  # tensors made outside any op seen so far (folded weights, constants)
        result = func(*args, **kwargs)
        if self.convs is not None and "convolution" in func.name():
            self.convs.append((func, args, kwargs))
        for leaf in pytree.tree_leaves(result):
            self.add(leaf)
        return result


def peak_mb(module: torch.nn.Module, inputs: list[torch.Tensor], run: Callable[[], Any]) -> tuple[float, Any]:
    """Peak live tensor MB of ``run()`` (the module's weights and ``inputs`` included) and its result."""
    mode = LiveBytes()
    for tensor in [*module.parameters(), *module.buffers(), *inputs]:
        mode.add(tensor)
    with torch.no_grad(), mode:
        result = run()
    return mode.peak / 2**20, result


def conv_calls(run: Callable[[], Any]) -> list[tuple[Any, tuple, dict]]:
    """Every convolution op of one ``run()``, with the tensors it was given (kept alive)."""
    mode = LiveBytes(record_convs=True)
    with torch.no_grad(), mode:
        run()
    return mode.convs or []


def replay(calls: list[tuple[Any, tuple, dict]]) -> None:
    """The recorded convolutions back to back, nothing between them: the floor."""
    for func, args, kwargs in calls:
        func(*args, **kwargs)


def max_rel_err(ours: Any, ref: list[torch.Tensor]) -> float:
    ours = list(ours.values()) if isinstance(ours, dict) else list(ours)
    if len(ours) != len(ref):
        return float("inf")
    return max(((a - b).abs().max() / max(1.0, b.abs().max().item())).item() for a, b in zip(ours, ref))


def convert(source: str, config: dict, state: dict, level: str, backend: str) -> torch.nn.Module:
    """``from_reference`` with ``optimize=`` / ``backend=`` passed only when not the default, so
    ``--optimize none`` works on a pyramidgraph that predates the options."""
    from pyramidgraph.interop import from_reference

    options = {key: value for key, value, default in (("optimize", level, "none"), ("backend", backend, "eager")) if value != default}
    try:
        return from_reference(source, config, state, **options)
    except TypeError as exc:
        if options and "unexpected keyword argument" in str(exc):
            raise SystemExit(f"this pyramidgraph's from_reference takes no {'/'.join(options)}= yet (issue 12): {exc}; run with --optimize none") from None
        raise


@dataclass
class Row:
    case: str
    source: str
    scale: str
    hw: list[int]
    batch: int
    mode: str  # eager | compile
    optimize: str
    ours_ms: float | None = None
    ref_ms: float | None = None
    ratio: float | None = None
    floor_ms: float | None = None
    ours_over_floor: float | None = None
    convs: int | None = None
    ours_mb: float | None = None
    ref_mb: float | None = None
    ours_params: int | None = None
    ref_params: int | None = None
    spec_ms: float | None = None
    ref_build_ms: float | None = None  # the recorder's builder: constructor, wrapper and inputs
    ours_first_ms: float | None = None  # compile rows: first call, compilation included
    ref_first_ms: float | None = None
    err: float | None = None
    runs: int | None = None
    status: str = "ok"
    notes: list[str] = field(default_factory=list)


def measure(case: dict, args: argparse.Namespace, build: dict, compile_rows: bool) -> list[Row]:
    """All rows of one case: one per batch, then the torch.compile row if asked."""
    import make_fixtures

    def row(batch: int, mode: str, **values: Any) -> Row:
        return Row(case["id"], case["source"], case["scale"], list(case["hw"]), batch, mode, args.optimize, **values)

    try:
        torch.manual_seed(0)  # constructors draw initial weights; randomise overwrites them all
        start = time.perf_counter()
        built = build[case["source"]](case["config"], tuple(case["hw"]), 1)
        ref_build_ms = (time.perf_counter() - start) * 1000
    except Exception as exc:  # noqa: BLE001  (a missing package or repository: the row says so)
        return [row(0, "eager", status=f"reference not built: {type(exc).__name__}: {exc}"[:300])]
    module, names, inputs, call = built[:4]
    config = built[4] if len(built) == 5 else case["config"]
    if hasattr(module, "init_weights"):
        logging.disable(logging.INFO)  # mmengine's init_weights logs every tensor it initialises
        try:
            module.init_weights()
        finally:
            logging.disable(logging.NOTSET)
    make_fixtures.randomise(module, 1234)
    module.eval()
    state = OrderedDict((make_fixtures.rename(case["source"], config, k), v) for k, v in module.state_dict().items())
    try:
        spent = []
        for _ in range(args.spec_repeats):
            start = time.perf_counter()
            ours = convert(case["source"], config, state, args.optimize, "eager").eval()
            spent.append((time.perf_counter() - start) * 1000)
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001
        return [row(0, "eager", status=f"not converted: {type(exc).__name__}: {exc}"[:300])]
    common = dict(ours_params=sum(p.numel() for p in ours.parameters()), ref_params=sum(p.numel() for p in module.parameters()),
                  spec_ms=statistics.median(spent), ref_build_ms=ref_build_ms)
    found = []
    for batch, runs in zip(args.batches, args.runs):
        xs = inputs if batch == 1 else make_fixtures.feats([(batch, *x.shape[1:]) for x in inputs], 1)
        feed = OrderedDict(zip(names, xs)) if names else list(xs)
        ref_mb, ref_out = peak_mb(module, xs, lambda xs=xs: call(module, xs))
        ours_mb, our_out = peak_mb(ours, xs, lambda feed=feed: ours(feed))
        err = max_rel_err(our_out, make_fixtures.norm_out(ref_out)[1])
        del ref_out, our_out
        convs = conv_calls(lambda feed=feed: ours(feed))
        ref_ms, ours_ms, floor_ms = interleaved_ms([lambda xs=xs: call(module, xs), lambda feed=feed: ours(feed), lambda convs=convs: replay(convs)], runs)
        found.append(row(batch, "eager", ours_ms=ours_ms, ref_ms=ref_ms, ratio=ours_ms / ref_ms, floor_ms=floor_ms, ours_over_floor=ours_ms / floor_ms if convs else None,
                         convs=len(convs), ours_mb=ours_mb, ref_mb=ref_mb, err=err, runs=runs, status="ok" if err <= args.tolerance else "outputs differ", **common))
        del convs
        report(found[-1])
    if compile_rows:
        found.append(measure_compiled(case, args, module, names, inputs, call, config, state, common, row))
        report(found[-1])
    return found


_WARM: list[bool] = []


def _warm_compiler() -> None:
    """Compile a one-conv module once per process, so that the compiler's one-off start-up
    (imports, caches) is charged to neither side's first call."""
    if not _WARM:
        with torch.no_grad():
            torch.compile(torch.nn.Conv2d(3, 4, 3).eval())(torch.randn(1, 3, 8, 8))
        _WARM.append(True)


def measure_compiled(case, args, module, names, inputs, call, config, state, common, row) -> Row:
    """Batch 1 with torch.compile on both sides; ``*_first_ms`` is the compiling first call."""
    import make_fixtures

    notes = []
    _warm_compiler()
    try:
        ours = convert(case["source"], config, state, args.optimize, "compile").eval()
    except SystemExit:  # no backend= yet: compile the eager neck ourselves, and say so
        ours = torch.compile(convert(case["source"], config, state, args.optimize, "eager").eval())
        notes.append("ours: torch.compile(neck), from_reference has no backend=")
    ref = torch.compile(module)
    feed = OrderedDict(zip(names, inputs)) if names else list(inputs)
    with torch.no_grad():
        start = time.perf_counter()
        ref_out = call(ref, inputs)
        ref_first = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        our_out = ours(feed)
        ours_first = (time.perf_counter() - start) * 1000
    err = max_rel_err(our_out, make_fixtures.norm_out(ref_out)[1])
    runs = args.runs[0]
    ref_ms, ours_ms = interleaved_ms([lambda: call(ref, inputs), lambda: ours(feed)], runs)
    return row(1, "compile", ours_ms=ours_ms, ref_ms=ref_ms, ratio=ours_ms / ref_ms, ours_first_ms=ours_first, ref_first_ms=ref_first, err=err, runs=runs,
               status="ok" if err <= args.tolerance else "outputs differ", notes=notes, **common)


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = ["case", "scale", "size", "batch", "mode", "ours ms", "ref ms", "ours/ref", "floor ms", "ours/floor", "ours MB", "ref MB", "ours params", "ref params", "spec ms", "err"]


def cells(r: Row) -> list[str]:
    if r.ours_ms is None:
        return [r.case, r.scale, "x".join(map(str, r.hw)), "-", r.mode] + ["-"] * 10 + [r.status]
    mode = r.mode if r.mode == "eager" else f"compile (first {r.ours_first_ms / 1000:.1f} s / ref {r.ref_first_ms / 1000:.1f} s)"
    err = f"{r.err:.1e}" + ("" if r.status == "ok" else f" {r.status}")
    return [r.case, r.scale, "x".join(map(str, r.hw)), str(r.batch), mode, _f(r.ours_ms), _f(r.ref_ms), _f(r.ratio, 3), _f(r.floor_ms), _f(r.ours_over_floor, 3),
            _f(r.ours_mb, 1), _f(r.ref_mb, 1), f"{r.ours_params:,}", f"{r.ref_params:,}", _f(r.spec_ms, 1), err]


def report(r: Row) -> None:
    print("  ".join(cells(r)), flush=True)


def machine(args: argparse.Namespace) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    runs = ", ".join(f"batch {b}: {n}" for b, n in zip(args.batches, args.runs))
    return f"{cpu}; torch {torch.__version__}, {args.threads} threads, eval, no_grad, optimize={args.optimize}; medians of interleaved runs ({runs}) after 3 warm-ups"


def table(found: list[Row], markdown: bool) -> str:
    body = [cells(r) for r in found]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in body])
    widths = [max(len(c[i]) for c in [COLUMNS] + body) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))).rstrip() for c in [COLUMNS] + body)


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="row ids (see --list); all rows when none")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=_ints, default=[1, 8], help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--runs", type=_ints, default=[50, 10], help="timed runs per batch, comma-separated, one per --batches entry or one for all (default 50,10)")
    parser.add_argument("--optimize", choices=["none", "train", "inference"], default="inference")
    parser.add_argument("--compile", action="store_true", help="add batch-1 torch.compile rows for the selected rows that --compile-rows names")
    parser.add_argument("--compile-rows", type=lambda text: text.split(","), default=COMPILE_DEFAULT, help=f"comma-separated (default {','.join(COMPILE_DEFAULT)})")
    parser.add_argument("--headline", action="store_true", help="only the rows the issue names")
    parser.add_argument("--spec-repeats", type=int, default=3, help="from_reference calls timed for 'spec ms' (median)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest 'err' still called agreeing")
    parser.add_argument("--markdown", action="store_true", help="print the final table as Markdown")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    args = parser.parse_args()
    if len(args.runs) == 1:
        args.runs = args.runs * len(args.batches)
    if len(args.runs) != len(args.batches):
        parser.error(f"--runs gives {len(args.runs)} numbers for {len(args.batches)} batches")
    selected = [c for c in rows() if (not args.ids or c["id"] in args.ids) and (not args.headline or c["headline"])]
    unknown = set(args.ids) - {c["id"] for c in rows()}
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; --list shows them")
    if args.list:
        for c in selected:
            print(f"{c['id']:32s} {c['source']:34s} {c['scale']:8s} {'x'.join(map(str, c['hw']))}")
        return
    compiled = set(args.compile_rows) if args.compile else set()
    torch.set_num_threads(args.threads)
    print(machine(args), flush=True)
    print("  ".join(COLUMNS), flush=True)
    build = builders()
    found: list[Row] = []
    start = time.perf_counter()
    for case in selected:
        found.extend(measure(case, args, build, case["id"] in compiled))
        if found[-1].ours_ms is None:
            report(found[-1])
    print(f"\n{len(selected)} cases in {time.perf_counter() - start:.0f} s\n")
    if args.markdown:
        print(f"Measured on {machine(args)}.\n")
    print(table(found, args.markdown))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args), "rows": [asdict(r) for r in found]}, indent=1))


if __name__ == "__main__":
    main()
