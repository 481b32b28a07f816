"""Record ultralytics 8.4's ``A2C2f`` (YOLO12's area-attention C2f) for tests/test_area_attention.py.

Run with the reference venv (ultralytics installed), from anywhere:

    /tmp/peers-venv/bin/python tests/data/ultralytics_blocks/record_area.py

Each case builds ``A2C2f(c1, c2, *args)``, sets every BatchNorm2d to eps 1e-3 / momentum 0.03
(what ultralytics' ``initialize_weights`` does to a model parsed from a YAML: the bare module
has PyTorch's 1e-5), gives every parameter and buffer (BN running statistics and ``gamma`` included) non-trivial values the way the shared fixtures' recorder
does (/work/shared/peers/make_fixtures.py ``randomise``), runs it in eval mode in float32 on
one seeded input of batch 2 and saves ``a2c2f_<case>.pt``: {module, args, input, output,
state_dict, num_params, versions}. ``args`` are the constructor's positional arguments from c1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from recording import randomise  # noqa: E402  (a sibling script)

HERE = Path(__file__).resolve().parent

CASES = {
    # case: (c1, c2, n, a2, area, residual, mlp_ratio, e, g, shortcut), input (h, w)
    "c3k": ((32, 64, 1, False, -1, False, 2.0, 0.5, 1, True), (12, 20)),  # YOLO12's head row [c2, False, -1]
    "c3k_two_blocks_no_shortcut": ((64, 64, 2, False, 1, False, 2.0, 0.5, 2, False), (9, 7)),
    "area1": ((48, 64, 1, True, 1, False, 2.0, 0.5, 1, True), (12, 20)),
    "area4_residual": ((64, 64, 1, True, 4, True, 1.2, 0.5, 1, True), (16, 16)),
    "area4_residual_non_square": ((32, 32, 2, True, 4, True, 1.2, 1.0, 1, True), (12, 20)),
    "area2_rows_split_mid_row": ((32, 64, 1, True, 2, False, 2.0, 0.5, 1, True), (5, 6)),
}


def record(name: str, args: tuple, size: tuple[int, int], seed: int) -> dict:
    import ultralytics
    from ultralytics.nn.modules.block import A2C2f
    from ultralytics.utils.torch_utils import initialize_weights

    torch.manual_seed(seed)
    module = A2C2f(*args)
    initialize_weights(module)
    randomise(module, seed)
    module.eval()
    x = torch.randn(2, args[0], *size, generator=torch.Generator().manual_seed(seed + 1000))
    with torch.no_grad():
        y = module(x)
    return {
        "module": "ultralytics.nn.modules.block.A2C2f",
        "args": list(args),
        "input": x,
        "output": y,
        "state_dict": {k: v.clone() for k, v in module.state_dict().items()},
        "num_params": sum(p.numel() for p in module.parameters()),
        "versions": {"torch": torch.__version__, "ultralytics": ultralytics.__version__},
    }


def main(names: list[str]) -> None:
    for seed, (name, (args, size)) in enumerate(CASES.items()):
        if names and name not in names:
            continue
        case = record(name, args, size, seed)
        torch.save(case, HERE / f"a2c2f_{name}.pt")
        print(f"a2c2f_{name}: args {args}, input {tuple(case['input'].shape)} -> {tuple(case['output'].shape)}, {case['num_params']} params, max|out| {case['output'].abs().max():.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
