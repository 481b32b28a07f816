"""Record parity fixtures for the YOLOv9/YOLOv10 block ops (tests/test_yolo_elan_ops.py).

Run with the reference venv (ultralytics installed), from anywhere:
    /tmp/peers-venv/bin/python tests/data/ultralytics_blocks/record_elan.py

Each case builds one ultralytics module, sets every BatchNorm2d to eps 1e-3 / momentum 0.03
(what ultralytics' ``initialize_weights`` does to a model built from a YAML), gives every
parameter and buffer random values (the scheme of /work/shared/peers/make_fixtures.py's
``randomise``), runs it in eval mode on a random batch of 2 at an odd map size, and saves
``<case>.pt``: {module, args, default_act, input, output, state_dict, num_params, versions}.
``default_act`` is the activation ``Conv.default_act`` was set to while the module was built
(a YAML's ``activation:``); RepConv and RepVGGDW keep their own SiLU.
"""

from __future__ import annotations

from pathlib import Path

import torch
import ultralytics
from recording import randomise  # noqa: E402  (a sibling script)
from torch import nn
from ultralytics.nn.modules import block
from ultralytics.nn.modules.conv import Conv
from ultralytics.utils.torch_utils import initialize_weights

HERE = Path(__file__).resolve().parent

# case -> (class name, positional args, input (C, H, W), Conv.default_act while building)
CASES = {
    "rep_ncsp_elan4": ("RepNCSPELAN4", [24, 32, 32, 16, 1], (24, 15, 13), "silu"),
    "rep_ncsp_elan4_n2_relu": ("RepNCSPELAN4", [16, 40, 24, 16, 2], (16, 9, 11), "relu"),
    "elan1": ("ELAN1", [24, 32, 32, 16], (24, 15, 13), "silu"),
    "elan1_odd_hidden": ("ELAN1", [16, 24, 19, 8], (16, 7, 9), "silu"),
    "adown": ("ADown", [32, 48], (32, 15, 13), "silu"),
    "aconv": ("AConv", [24, 40], (24, 15, 13), "silu"),
    "scdown": ("SCDown", [32, 48, 3, 2], (32, 15, 13), "silu"),
    "scdown_k5": ("SCDown", [24, 32, 5, 2], (24, 13, 11), "silu"),
    "c2f_cib": ("C2fCIB", [32, 48, 1, True, False], (32, 15, 13), "silu"),
    "c2f_cib_lk_n2_relu": ("C2fCIB", [32, 32, 2, True, True], (32, 11, 9), "relu"),
}
ACTS = {"silu": nn.SiLU(), "relu": nn.ReLU()}


def record(case: str, cls_name: str, args: list, chw: tuple[int, int, int], act: str, seed: int) -> None:
    saved = Conv.default_act
    Conv.default_act = ACTS[act]
    try:
        module = getattr(block, cls_name)(*args)
    finally:
        Conv.default_act = saved
    initialize_weights(module)
    randomise(module, seed)
    module.eval()
    x = torch.randn(2, *chw, generator=torch.Generator().manual_seed(seed + 1000))
    with torch.no_grad():
        y = module(x)
    torch.save(
        {
            "module": cls_name,
            "args": args,
            "default_act": act,
            "input": x,
            "output": y,
            "state_dict": {k: v.clone() for k, v in module.state_dict().items()},
            "num_params": sum(p.numel() for p in module.parameters()),
            "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
        },
        HERE / f"{case}.pt",
    )
    print(f"{case}: {cls_name}{tuple(args)} {tuple(x.shape)} -> {tuple(y.shape)}, {sum(p.numel() for p in module.parameters())} params")


if __name__ == "__main__":
    for index, (case, (cls_name, args, chw, act)) in enumerate(CASES.items()):
        record(case, cls_name, args, chw, act, seed=index + 1)
