"""Record the repository's own DAMO-YOLO GiraffeNeckV2 cases from the authors' code (run with the peer venv).

Usage: REFS=/tmp/refs /tmp/peers-venv/bin/python tests/interop/data/record_damoyolo.py [OUTDIR] [ID ...]
  REFS holds the extracted tinyvision/DAMO-YOLO (``$REFS/DAMO-YOLO``, with its COMMIT file), PEERS
  the shared recorder (``/work/shared/peers/record_fetched.py``, default ``../shared/peers`` beside
  the checkout), whose fixture format, randomisation and inputs these cases share. OUTDIR defaults
  to tests/interop/fixtures; each case is saved as ``<id>.pt``.

The shared recorder stubs ``damo.utils.make_divisible`` out (the shared case does not need it).
The Nano models' ``depthwise`` blocks do, so this builder imports the code's own
``damo/utils/model_utils.py`` (it needs ``thop``, which the peer venv has) and hands its
``make_divisible`` to ``ops.py``; everything else is the shared recorder's ``make``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PEERS = Path(os.environ.get("PEERS", ROOT.parent / "shared" / "peers"))
sys.path.insert(0, str(PEERS))
import record_fetched as rf  # noqa: E402

CASES = [
    {
        "id": "damoyolo_banker_depth_hidden075_silu_nonsquare",
        "source": "damoyolo.GiraffeNeckV2",
        "hw": [64, 128],
        "config": {
            "depth": 5 / 6,
            "hidden_ratio": 0.75,
            "in_features": [2, 3, 4],
            "in_channels": [24, 40, 56],
            "out_channels": [20, 33, 48],
            "act": "silu",
            "spp": False,
            "block_name": "BasicBlock_3x3_Reverse",
            "depthwise": False,
            "strides": [8, 16, 32],
        },
        "note": "depth 5/6: round(2.5) is 2 blocks per stage (Python's round to even; half up would give 3); hidden_ratio 0.75 "
        "(int(17 * 0.75) = 12 for the odd out 33, split 16 + 17); silu; a non-square image (maps 8x16, 4x8, 2x4)",
    },
    {
        "id": "damoyolo_nano_depthwise",
        "source": "damoyolo.GiraffeNeckV2",
        "hw": [128, 96],
        "config": {
            "depth": 0.5,
            "hidden_ratio": 0.5,
            "in_features": [2, 3, 4],
            "in_channels": [16, 24, 32],
            "out_channels": [16, 32, 48],
            "act": "silu",
            "spp": False,
            "block_name": "BasicBlock_3x3_Reverse",
            "depthwise": True,
            "strides": [8, 16, 32],
        },
        "note": "the Nano models' setting (configs/damoyolo_tinynasL20_N.py at small widths): depth 0.5 (2 blocks), depthwise: "
        "DepthwiseConv stride-2 convs and MobileV3Block blocks (hidden make_divisible(ceil(3 * mid)), hidden_ratio unused); maps 16x12, 8x6, 4x3",
    },
    {
        "id": "damoyolo_no_blocks_lrelu_stride4",
        "source": "damoyolo.GiraffeNeckV2",
        "hw": [64, 64],
        "config": {
            "depth": 1 / 6,
            "hidden_ratio": 1.0,
            "in_channels": [16, 32, 24],
            "out_channels": [17, 16, 32],
            "act": "lrelu",
            "strides": [4, 8, 16],
        },
        "note": "depth 1/6: round(0.5) is 0 blocks, so conv3 reads conv1 alone and conv2 is built but never called (block_name "
        "left at the default 'BasicBlock', which only fails when a block is built); lrelu (slope 0.1); widths that shrink and "
        "an odd out 17 (conv1 8, conv2 9); strides 4, 8, 16 (maps 16x16, 8x8, 4x4); the other keys at the code's defaults",
    },
]


def damoyolo_with_make_divisible(cfg, hw, batch=2):
    """The shared builder, with the code's own ``make_divisible`` instead of a stub."""
    root = os.path.join(rf.repo_root("damoyolo"), "damo")
    bm = os.path.join(root, "base_models")
    st = {"damo": rf.pkg("damo", root), "damo.utils": rf.pkg("damo.utils", os.path.join(root, "utils")),
          "damo.base_models": rf.pkg("damo.base_models", bm),
          "damo.base_models.core": rf.pkg("damo.base_models.core", os.path.join(bm, "core")),
          "damo.base_models.necks": rf.pkg("damo.base_models.necks", os.path.join(bm, "necks"))}
    with rf.isolated(st):
        model_utils = importlib.import_module("damo.utils.model_utils")
        sys.modules["damo.utils"].make_divisible = model_utils.make_divisible
        gf = importlib.import_module("damo.base_models.necks.giraffe_fpn_btn")
    c = {k: v for k, v in cfg.items() if k != "strides"}
    m = gf.GiraffeNeckV2(**c)
    xs = rf.feats(rf.shapes_for(batch, hw, cfg["in_channels"], cfg.get("strides", [8, 16, 32])), 1)
    return m, None, xs, lambda mod, x: mod(list(x))


def main() -> None:
    outdir = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "tests" / "interop" / "fixtures")
    only = set(sys.argv[2:])
    rf.BUILDERS["damoyolo.GiraffeNeckV2"] = damoyolo_with_make_divisible
    for case in CASES:
        if only and case["id"] not in only:
            continue
        meta = rf.make(case, outdir)
        print(f"ok   {meta['id']:48s} params={meta['num_params']:>7} bytes={meta['bytes']:>8} in={meta['input_shapes']} out={meta['output_shapes']}")


if __name__ == "__main__":
    main()
