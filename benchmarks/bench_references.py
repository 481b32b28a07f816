"""Compiled specs against the reference implementations, on the references' own weights.

Runs in the reference environment built by ``../shared/peers/setup.sh`` (torchvision, mmdet,
effdet, ultralytics are never project dependencies), with pyramidgraph importable::

    /tmp/peers-venv/bin/pip install jsonschema networkx pyyaml graphviz
    PYTHONPATH=. /tmp/peers-venv/bin/python benchmarks/bench_references.py [--threads 1] [--runs 30] [--scale real|fixture]
    REFS=/tmp/refs PYTHONPATH=. /tmp/peers-venv/bin/python benchmarks/bench_references.py --cases benchmarks/cases_yolo_detr.json

For every case of ``../shared/peers/cases.json`` (or ``--cases``: the YOLO and DETR families'
necks at their real sizes, the research code's builders needing the repositories under
``$REFS``, see ``../shared/peers/FETCHED.md``) it builds the reference module with the
recorder's own builder, randomises its weights, converts it with
``pyramidgraph.interop.from_reference`` (same weights), checks the outputs agree, then times
both in this process (runs interleaved, reference then ours, medians of ``--runs`` after
warm-up, ``torch.set_num_threads`` fixed).
``--scale real`` widens each case to a typical backbone and a 512x512 image; ``fixture`` keeps
the recorded tiny sizes (where Python overhead dominates). Prints one line per case and the
ratio ours / reference (below 1: pyramidgraph is faster).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch

PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"
sys.path.insert(0, str(PEERS))

REAL = {
    # case id -> config changes for a typical backbone (widths) and image
    "tv_fpn_maxpool": {"in_channels_list": [256, 512, 1024, 2048], "out_channels": 256},
    "tv_fpn_p6p7": {"in_channels_list": [512, 1024, 2048], "out_channels": 256, "p6p7_in_channels": 2048},
    "mmdet_fpn": {"in_channels": [256, 512, 1024, 2048], "out_channels": 256},
    "mmdet_fpn_retina_on_input": {"in_channels": [256, 512, 1024, 2048], "out_channels": 256},
    "mmdet_pafpn": {"in_channels": [256, 512, 1024, 2048], "out_channels": 256},
    "mmdet_nasfpn": {"in_channels": [256, 512, 1024, 2048], "out_channels": 256},
    "mmdet_yolox_pafpn": {"in_channels": [128, 256, 512], "out_channels": 128},
    "effdet_tf_bifpn": {"overrides": {"image_size": [512, 512]}, "in_channels": [40, 112, 320]},
    "effdet_bifpn": {"overrides": {"image_size": [512, 512]}, "in_channels": [40, 112, 320]},
}


def widen(case: dict) -> dict:
    case = copy.deepcopy(case)
    change = REAL.get(case["id"])
    if change is None:
        return case
    config = case["config"]
    target = config["necks"][0] if "necks" in config else config
    for key, value in change.items():
        if key == "overrides":
            config["overrides"] = dict(config["overrides"], **value)
        else:
            target[key] = value
    case["hw"] = [512, 512]
    return case


def interleaved_ms(calls, runs: int) -> list[float]:
    """Median milliseconds of each call, the calls alternating run by run (so drift in the
    machine's speed falls on all of them alike)."""
    times: list[list[float]] = [[] for _ in calls]
    with torch.no_grad():
        for _ in range(3):
            for call in calls:
                call()
        for _ in range(runs):
            for call, spent in zip(calls, times):
                start = time.perf_counter()
                call()
                spent.append(time.perf_counter() - start)
    return [statistics.median(spent) * 1000 for spent in times]


def builders() -> dict:
    """The recorders' builders by source: the packages' (make_fixtures) and, where the
    repositories are extracted under $REFS, the research code's (record_fetched)."""
    import make_fixtures

    found = dict(make_fixtures.BUILDERS)
    try:
        import record_fetched
    except ImportError:
        return found
    return found | record_fetched.BUILDERS


def main() -> None:
    import make_fixtures  # the recorder's builders (peer environment only)

    from pyramidgraph.interop import from_reference

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--scale", choices=["real", "fixture"], default="real")
    parser.add_argument("--cases", type=Path, default=PEERS / "cases.json", help="case list (the recorders' format)")
    parser.add_argument("ids", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = json.loads(args.cases.read_text())
    build = builders()
    print(f"torch {torch.__version__}, threads {args.threads}, median of {args.runs}, scale {args.scale}")
    for case in cases:
        if args.ids and case["id"] not in args.ids:
            continue
        if args.scale == "real":
            case = widen(case)
        built = build[case["source"]](case["config"], tuple(case["hw"]), 1)
        module, names, inputs, call = built[:4]
        config = built[4] if len(built) == 5 else case["config"]
        if hasattr(module, "init_weights"):
            module.init_weights()
        make_fixtures.randomise(module, 1234)
        module.eval()
        state = OrderedDict((make_fixtures.rename(case["source"], config, k), v) for k, v in module.state_dict().items())
        ours = from_reference(case["source"], config, state).eval()
        feed = OrderedDict(zip(names, inputs)) if names else list(inputs)
        with torch.no_grad():
            ref_out = make_fixtures.norm_out(call(module, inputs))[1]
            our_out = ours(feed)
        our_out = list(our_out.values()) if isinstance(our_out, dict) else list(our_out)
        error = max(((a - b).abs().max() / max(1.0, b.abs().max().item())).item() for a, b in zip(our_out, ref_out))
        ref_ms, our_ms = interleaved_ms([lambda call=call, module=module, inputs=inputs: call(module, inputs), lambda ours=ours, feed=feed: ours(feed)], args.runs)
        print(f"{case['id']:28s} ref {ref_ms:8.2f} ms  ours {our_ms:8.2f} ms  ratio {our_ms / ref_ms:5.3f}  max rel err {error:.1e}")


if __name__ == "__main__":
    main()
