"""Record ultralytics 8.4's RT-DETR blocks, RepC3 and AIFI, for tests/test_rtdetr.py (run with the peers venv).

    /tmp/peers-venv/bin/python tests/data/ultralytics_blocks/record_rtdetr.py [CASE ...]

Each case builds one ultralytics module from its positional args, sets every BatchNorm to
eps 1e-3 / momentum 0.03 as ``initialize_weights`` does for a parsed model, gives every parameter
and buffer (BN running statistics included) non-trivial random values, runs it in eval mode on a
float32 2xCxHxW input, and saves a plain dict ``{module, args, input, output, state_dict,
num_params, versions}`` to ``<case>.pt`` beside this file (the format of record_csp.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import ultralytics
from recording import randomise  # noqa: E402  (a sibling script)
from ultralytics.nn.modules import block, transformer
from ultralytics.utils.torch_utils import initialize_weights

HERE = Path(__file__).resolve().parent

# case -> (module name, positional args, input shape)
CASES: dict[str, tuple[str, tuple, tuple[int, ...]]] = {
    # c1, c2, n, e: hidden 8 != 16, so cv3 exists
    "rep_c3_half": ("RepC3", (24, 16, 2, 0.5), (2, 24, 9, 7)),
    # rtdetr-l's form (e = 1.0: no cv3), three RepConvs
    "rep_c3_full": ("RepC3", (32, 16, 3, 1.0), (2, 32, 8, 8)),
    # c1, cm, num_heads: a square map and a non-square one (8.4's embedding puts rows first)
    "aifi_square": ("AIFI", (32, 48, 4), (2, 32, 6, 6)),
    "aifi_nonsquare": ("AIFI", (16, 40, 2), (2, 16, 5, 9)),
}


def record(case: str, seed: int) -> None:
    name, args, shape = CASES[case]
    cls = getattr(block, name, None) or getattr(transformer, name)
    module = cls(*args)
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
        "output": y.contiguous(),
        "state_dict": {k: v.clone() for k, v in module.state_dict().items()},
        "num_params": sum(p.numel() for p in module.parameters()),
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
    }
    torch.save(out, HERE / f"{case}.pt")
    print(f"{case}: {name}{tuple(args)} {tuple(x.shape)} -> {tuple(y.shape)}, {out['num_params']} params")


if __name__ == "__main__":
    names = sys.argv[1:] or list(CASES)
    for index, case in enumerate(CASES):
        if case in names:
            record(case, seed=100 + index)
