"""Record, from ultralytics itself, the facts about the neck of every ultralytics detection-family model.

The ultralytics importer turns the head rows of a model YAML (all but the last, prediction, row) into a
pyramidgraph spec. Its tests run without ultralytics, so this script, run with the peer venv's python (which
has ultralytics 8.4), builds every model the way a user does (``yolo11n.yaml``, ``yolov8s-p2.yaml``,
``rtdetr-l.yaml``...), cuts out the neck exactly as /work/shared/peers/make_fixtures.py's
``ultralytics_neck_general`` does (layers len(backbone) .. last-1, fed by the backbone layers they read) and
writes what it measured to ``ultralytics_necks.json`` beside itself:

- the layer table: backbone row count, neck layer indices, the backbone layers it reads (and any the
  prediction head reads directly: ``passthrough_layers``), the layers the prediction head reads, each neck
  layer's module class (``layer_types``; ``nn.Sequential`` for a repeated row), the row's module name and its
  repeat count;
- shapes: channels and strides of the inputs, measured by running the real backbone on a 1x3x256x256 zero
  image, and of the outputs, measured by running the neck on those features;
- weights: the unique parameter count of the neck layers and a summary of their ``model.<i>.`` state-dict
  keys (the full lists would not fit the 1 MB budget): the total, the key count per ``model.<i>`` prefix
  (layers without keys left out) and the SHA-256 hex digest of ``"\n".join(f"{key} {list(shape)}")`` over
  the keys in sorted order (e.g. ``model.10.cv1.conv.weight [64, 192, 1, 1]``, buffers included);
- text inputs: neck rows that read text embeddings (C2fAttn's guide, ImagePoolingAttn's text) are listed
  under ``text_layers``, and the neck is then run with a zero text tensor of shape (1, nc, 512);
- ``scale`` is the scales key parse_model used (a file with one scale, such as rtdetr-l.yaml, uses it
  without being told); ``""`` for a YAML without scales;
- or, when ultralytics cannot build or run a model, ``{"yaml": ..., "error": "Type: first line"}``.

Widths are the YAML's own (no overrides). Only detection-family files are recorded: the last head row must be
one of ``PREDICTION_HEADS`` (classification YAMLs are left out).

Usage: /tmp/peers-venv/bin/python tests/interop/data/record_ultralytics_necks.py [--jobs N] [substring ...]
(with substrings, only the file names containing one of them are recorded and printed, nothing is written).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import torch  # noqa: E402
import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "ultralytics_necks.json"
IMAGE_SIZE = 256
NUM_CLASSES = 80
TEXT_DIM = 512  # CLIP ViT-B/32 text width that WorldModel's placeholder and ImagePoolingAttn assume
SLOW_BUILD_S = 20.0

# last head row -> the tasks.py model class ultralytics builds for it
PREDICTION_HEADS = {
    "Detect": "DetectionModel", "v10Detect": "DetectionModel",
    "Segment": "SegmentationModel", "Segment26": "SegmentationModel",
    "Pose": "PoseModel", "Pose26": "PoseModel",
    "OBB": "OBBModel", "OBB26": "OBBModel",
    "RTDETRDecoder": "RTDETRDetectionModel",
    "WorldDetect": "WorldModel",
    "YOLOEDetect": "YOLOEModel",
    "YOLOESegment": "YOLOESegModel", "YOLOESegment26": "YOLOESegModel",
    "Depth": "DepthModel",
    "SemanticSegment": "SemanticSegmentationModel",
}
TEXT_MODULES = ("C2fAttn", "ImagePoolingAttn")  # neck modules whose forward takes text embeddings


def user_file_names(unified: str, scales: list[str]) -> list[tuple[str, str]]:
    """(file name a user passes, scale letter) for each scale of the unified YAML ``unified``.

    ultralytics maps ``yolov8s-p2.yaml`` back to ``yolov8-p2.yaml`` by deleting the letter after the version
    number, so the user's name inserts the letter there. Files whose name already carries their only
    scale (``yolov10b.yaml``, ``rtdetr-l.yaml``) or that have no scales are used as they are.
    """
    stem = unified[: -len(".yaml")]
    version = re.match(r"yolo(?:e-)?v?\d+", stem)
    if len(scales) <= 1 or not version:
        return [(unified, scales[0] if scales else "")]
    end = version.end()
    return [(f"{stem[:end]}{s}{stem[end:]}.yaml", s) for s in scales]


def sources(layer: torch.nn.Module) -> list[int]:
    """Absolute indices of the layers a ultralytics layer reads (a negative ``from`` is relative to it)."""
    froms = [layer.f] if isinstance(layer.f, int) else list(layer.f)
    return [layer.i + j if j < 0 else j for j in froms]


def gather(layer: torch.nn.Module, outputs: dict[int, Any]) -> Any:
    """The input of ``layer``: one tensor for an int ``from``, a list for a list ``from``."""
    src = sources(layer)
    return outputs[src[0]] if isinstance(layer.f, int) else [outputs[j] for j in src]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def build(user_name: str, model_class: str) -> tuple[torch.nn.Module, dict[str, Any], dict[int, torch.Tensor]]:
    """The model ultralytics builds for ``user_name`` (a name under cfg/models, resolved by ultralytics).

    Most task models run themselves once on a 1x3x256x256 zero image while being built (to find their
    strides); the backbone rows' outputs of that run are kept (third value) so that they need not be
    computed twice. RTDETRDetectionModel does not run itself, so its third value is empty.
    """
    from ultralytics.nn import tasks

    cfg = tasks.yaml_model_load(user_name)
    nb = len(cfg["backbone"])
    seen: dict[int, torch.Tensor] = {}

    def keep(module: torch.nn.Module, args: Any, output: Any) -> None:
        i = getattr(module, "i", None)
        if isinstance(i, int) and i < nb and hasattr(module, "f") and isinstance(output, torch.Tensor):
            seen[i] = output.detach()

    handle = torch.nn.modules.module.register_module_forward_hook(keep)
    try:
        model = getattr(tasks, model_class)(cfg, ch=3, nc=NUM_CLASSES, verbose=False)
    finally:
        handle.remove()
    if len(seen) != nb or any(t.shape[0] != 1 for t in seen.values()):
        seen = {}
    return model, model.yaml, seen


def measure(model: torch.nn.Module, d: dict[str, Any], backbone_outputs: dict[int, torch.Tensor]) -> dict[str, Any]:
    """Everything recorded about the neck of a built model (``backbone_outputs``: see ``build``)."""
    layers = model.model
    nb, last = len(d["backbone"]), len(layers) - 1
    neck_idx = list(range(nb, last))
    neck = [layers[i] for i in neck_idx]
    out_idx = sources(layers[last])
    read = {j for m in neck for j in sources(m)} | set(out_idx)
    in_idx = sorted(j for j in read if j < nb)
    text_layers = [m.i for m in neck if type(m).__name__ in TEXT_MODULES]

    model.eval()
    feats: dict[int, Any] = {}
    with torch.no_grad():
        if backbone_outputs:
            feats.update(backbone_outputs)
        else:
            x: Any = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
            for i in range(nb):  # the real backbone, to get the true input shapes
                if i > 0:
                    x = gather(layers[i], feats)
                feats[i] = x = layers[i](x)
        inputs = {j: feats[j] for j in in_idx}
        text = torch.zeros(1, NUM_CLASSES, TEXT_DIM)
        outs: dict[int, Any] = dict(inputs)
        for m in neck:  # the neck alone, on the backbone's features (WorldModel.predict's text plumbing)
            x = gather(m, outs)
            name = type(m).__name__
            if name == "C2fAttn":
                outs[m.i] = m(x, text)
            elif name == "ImagePoolingAttn":
                text = m(x, text)  # it refines the text stream; its own slot is never read by a later row
                outs[m.i] = text
            else:
                outs[m.i] = m(x)
    for j in out_idx:
        if not (isinstance(outs[j], torch.Tensor) and outs[j].ndim == 4):
            raise TypeError(f"layer {j} read by the prediction head gives {type(outs[j]).__name__}, not a feature map")

    params = {id(p): p.numel() for m in neck for p in m.parameters()}
    prefixes = tuple(f"model.{i}." for i in neck_idx)
    state = {k: v for k, v in model.state_dict().items() if k.startswith(prefixes)}
    keys = sorted(state)
    per_prefix: dict[str, int] = {}
    for k in keys:
        p = ".".join(k.split(".")[:2])
        per_prefix[p] = per_prefix.get(p, 0) + 1
    digest = hashlib.sha256("\n".join(f"{k} {list(state[k].shape)}" for k in keys).encode()).hexdigest()

    entry: dict[str, Any] = {
        "backbone_rows": nb,
        "layer_indices": neck_idx,
        "input_layers": in_idx,
        "output_layers": out_idx,
        "in_channels": [int(inputs[j].shape[1]) for j in in_idx],
        "input_strides": [IMAGE_SIZE / inputs[j].shape[2] for j in in_idx],
        "output_channels": [int(outs[j].shape[1]) for j in out_idx],
        "output_strides": [IMAGE_SIZE / outs[j].shape[2] for j in out_idx],
        "num_params": sum(params.values()),
        "layer_types": [type(m).__name__ for m in neck],
        # a row repeated n > 1 times with a module that takes no repeat argument becomes nn.Sequential of n copies
        "row_modules": [m.type.rsplit(".", 1)[-1] for m in neck],
        "row_repeats": [len(m) if isinstance(m, torch.nn.Sequential) else 1 for m in neck],
        "state_dict_keys": {"count": len(keys), "prefixes": per_prefix, "sha256_of_key_shape_lines": digest},
        "head_type": type(layers[last]).__name__,
    }
    passthrough = [j for j in out_idx if j < nb]
    if passthrough:  # the head reads a backbone layer directly: the neck must hand it through unchanged
        entry["passthrough_layers"] = passthrough
    if text_layers:
        entry["text_layers"] = text_layers
        entry["text_shape"] = [1, NUM_CLASSES, TEXT_DIM]
    return entry


def record(user_name: str, unified: str, scale: str, model_class: str) -> dict[str, Any]:
    head = {"yaml": user_name, "file": unified, "scale": scale, "model_class": model_class}
    try:
        t0 = time.perf_counter()
        model, d, backbone_outputs = build(user_name, model_class)
        build_s = time.perf_counter() - t0
        if build_s > SLOW_BUILD_S:
            print(f"  note: {user_name} took {build_s:.1f} s to build", file=sys.stderr)
        entry = measure(model, d, backbone_outputs)
    except Exception as exc:  # noqa: BLE001 - what ultralytics itself cannot do is recorded, not fatal
        return {**head, "error": first_line(exc)}
    return {**head, **entry}


def work(job: tuple[str, str, str, str]) -> tuple[dict[str, Any], float]:
    """One ``record`` call in a worker process (one torch thread each: the workers share the cores)."""
    torch.set_num_threads(1)
    logging.getLogger("ultralytics").setLevel(logging.ERROR)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    entry = record(*job)
    return entry, time.perf_counter() - t0


def main(argv: list[str]) -> int:
    import multiprocessing

    import ultralytics

    jobs_n = 2
    if argv[:1] == ["--jobs"]:
        jobs_n, argv = int(argv[1]), argv[2:]
    models = Path(ultralytics.__file__).resolve().parent / "cfg" / "models"
    jobs, skipped = [], []
    for path in sorted(models.rglob("*.yaml"), key=lambda p: p.name):
        if argv and not any(s in path.name for s in argv):
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        head_rows = data.get("head") or []
        last = head_rows[-1][2] if head_rows else None
        if last not in PREDICTION_HEADS:
            skipped.append(f"{path.name} ({last})")
            continue
        for user_name, scale in user_file_names(path.name, list((data.get("scales") or {}).keys())):
            jobs.append((user_name, path.name, scale, PREDICTION_HEADS[last]))
    entries = []
    with multiprocessing.get_context("spawn").Pool(jobs_n, maxtasksperchild=8) as pool:
        for entry, seconds in pool.imap(work, jobs):  # imap keeps the file order
            entries.append(entry)
            status = entry.get("error") or f"{entry['num_params']} params, out {entry['output_channels']} @ {entry['output_strides']}"
            print(f"{entry['yaml']:28s} {seconds:5.1f}s  {status}", flush=True)
    print(f"left out (not detection-family): {', '.join(skipped)}")
    if argv:
        return 0
    doc = {"ultralytics_version": ultralytics.__version__, "torch_version": torch.__version__.split("+")[0],
           "image_size": IMAGE_SIZE, "num_classes": NUM_CLASSES, "entries": entries}
    text = json.dumps(doc, indent=None, separators=(",", ":"))
    text = text.replace(',{"yaml"', ',\n{"yaml"')  # one entry per line keeps diffs readable
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(text)} bytes, {len(entries)} entries, {sum('error' in e for e in entries)} errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
