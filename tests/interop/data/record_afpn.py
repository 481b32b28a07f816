"""Records tests/interop/fixtures/afpn_*.pt from the authors' AFPN (gyyang23/AFPN at 0930b56,
mmdetection/mmdet/models/necks/afpn.py), in the peers environment, with the project's recorder
for fetched research code (../shared/peers/record_fetched.py: the module is imported from the
extracted repository, never copied; every parameter and buffer randomised; eval, no_grad, fp32).

    REFS=/tmp/refs /tmp/peers-venv/bin/python tests/interop/data/record_afpn.py tests/interop/fixtures

PEERS (default ../shared/peers beside the checkout) is where record_fetched.py lives. With
``--paper`` it prints the parameter count of the paper's configuration (ResNet-50 widths, 256
out) instead, which tests/speclib/afpn.py quotes.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("PEERS", os.path.join(HERE, "..", "..", "..", "..", "shared", "peers"))
sys.path.insert(0, PEERS)

import record_fetched  # noqa: E402

CASES = [
    {
        "id": "afpn_narrow_96x160",
        "source": "afpn.AFPN",
        "hw": [96, 160],
        "config": {"in_channels": [32, 48, 64, 96], "out_channels": 16, "strides": [4, 8, 16, 32]},
        "note": "narrow AFPN (fusion widths 4/6/8/12), a non-square image: the x4 and x8 downsampling convs pad 1 and 3 (BasicConv's `if not pad`), which only the border values show; s32 map 3x5, fifth output 2x3",
    },
    {
        "id": "afpn_uneven_62x158",
        "source": "afpn.AFPN",
        "hw": [62, 158],
        "config": {"in_channels": [40, 72, 100, 136], "out_channels": 24, "strides": [4, 8, 16, 32]},
        "note": "in_channels not multiples of 8 (fusion widths 5/9/12/17, floored), an image that is no multiple of 32 but "
        "that the reference accepts (maps 16x40, 8x20, 4x10, 2x5: each exactly twice the next), odd s32 width",
    },
    {
        "id": "afpn_strides8_128x192",
        "source": "afpn.AFPN",
        "hw": [128, 192],
        "config": {"in_channels": [16, 24, 32, 40], "out_channels": 8, "strides": [8, 16, 32, 64]},
        "note": "the four maps at strides 8..64 (the reference is the same module; the converter places them at levels 3..6 and the fifth output at 7), fusion widths 2/3/4/5",
    },
]


def paper_count():
    import torch

    torch.manual_seed(0)
    module, *_ = record_fetched.afpn_afpn({"in_channels": [256, 512, 1024, 2048], "out_channels": 256}, (64, 64), batch=1)
    return sum(p.numel() for p in module.parameters())


if __name__ == "__main__":
    if sys.argv[1:] == ["--paper"]:
        print("AFPN(in_channels=[256, 512, 1024, 2048], out_channels=256):", paper_count(), "parameters")
        sys.exit(0)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for case in CASES:
        meta = record_fetched.make(case, outdir)
        print(f"{case['id']}: params={meta['num_params']} bytes={meta['bytes']} in={meta['input_shapes']} out={meta['output_shapes']}")
