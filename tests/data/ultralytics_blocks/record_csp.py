"""Record ultralytics 8.4's CSP-family blocks for tests/test_yolo_csp_ops.py (run with the peers venv).

    /tmp/peers-venv/bin/python tests/data/ultralytics_blocks/record_csp.py [CASE ...]

Each case builds one ultralytics module from its positional args, sets every BatchNorm to
eps 1e-3 / momentum 0.03 as ultralytics' ``initialize_weights`` does for a parsed model, gives
every parameter and buffer (BN running statistics included) non-trivial random values, runs it in
eval mode on a float32 2xCxHxW input with an odd side, and saves a plain dict
``{module, args, input, output, state_dict, num_params, cv1_act?, versions}`` to ``<case>.pt`` beside
this file. ``cv1_act`` (SPPF only) says whether cv1 got the model's activation back, as
``parse_model`` does for YAML rows of at most three args (the layout before YOLO26).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import ultralytics
from recording import randomise  # noqa: E402  (a sibling script)
from ultralytics.nn.modules import block, conv
from ultralytics.utils.torch_utils import initialize_weights

HERE = Path(__file__).resolve().parent

# case -> (module name, positional args, input shape, sppf cv1 activation)
CASES: dict[str, tuple[str, tuple, tuple[int, ...], bool | None]] = {
    "c3_shortcut": ("C3", (24, 32, 2, True, 1, 0.5), (2, 24, 7, 10), None),
    "c3_plain_groups": ("C3", (32, 48, 2, False, 2, 0.5), (2, 32, 9, 6), None),
    "c3k2_bottleneck": ("C3k2", (32, 48, 2, False, 0.5, False, 1, True), (2, 32, 7, 10), None),
    "c3k2_c3k": ("C3k2", (32, 32, 2, True, 0.5, False, 2, True), (2, 32, 9, 8), None),
    "c3k2_attn": ("C3k2", (48, 64, 1, False, 0.5, True, 1, True), (2, 48, 5, 6), None),
    "c3k2_attn_two_heads": ("C3k2", (32, 64, 1, False, 2.0, True, 1, False), (2, 32, 5, 4), None),
    "c2_shortcut": ("C2", (32, 32, 2, True, 1, 0.5), (2, 32, 7, 10), None),
    "c2_plain": ("C2", (24, 48, 1, False, 2, 0.5), (2, 24, 9, 6), None),
    "bottleneck_shortcut": ("Bottleneck", (32, 32, True, 1, (3, 3), 0.5), (2, 32, 7, 10), None),
    "bottleneck_wider_no_add": ("Bottleneck", (24, 32, True, 2, (1, 3), 0.75), (2, 24, 9, 6), None),
    "spp": ("SPP", (32, 48, (5, 9, 13)), (2, 32, 9, 12), None),
    "sppf_legacy": ("SPPF", (32, 48, 5), (2, 32, 9, 12), True),
    "sppf_yolo26": ("SPPF", (32, 32, 5, 3, True), (2, 32, 7, 10), False),
    "ghost_conv": ("GhostConv", (24, 32, 3, 1, 1), (2, 24, 7, 10), None),
    "ghost_conv_stride2": ("GhostConv", (32, 48, 3, 2, 2), (2, 32, 9, 12), None),
    "c3ghost": ("C3Ghost", (32, 48, 2, True, 1, 0.5), (2, 32, 7, 10), None),
}


def record(case: str, seed: int) -> None:
    name, args, shape, cv1_act = CASES[case]
    cls = getattr(block, name, None) or getattr(conv, name)
    module = cls(*args)
    if cv1_act:
        module.cv1.act = conv.Conv.default_act  # parse_model's legacy SPPF rows
    initialize_weights(module)
    randomise(module, seed)
    module.eval()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed + 1000))
    with torch.no_grad():
        y = module(x)
    out = {
        "module": name,
        "args": list(args),
        "input": x,
        "output": y,
        "state_dict": {k: v.clone() for k, v in module.state_dict().items()},
        "num_params": sum(p.numel() for p in module.parameters()),
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
    }
    if cv1_act is not None:
        out["cv1_act"] = cv1_act
    torch.save(out, HERE / f"{case}.pt")
    print(f"{case}: {name}{tuple(args)} {tuple(x.shape)} -> {tuple(y.shape)}, {out['num_params']} params")


if __name__ == "__main__":
    names = sys.argv[1:] or list(CASES)
    for index, case in enumerate(CASES):
        if case in names:
            record(case, seed=index)
