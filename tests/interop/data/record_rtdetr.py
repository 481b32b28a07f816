"""Records tests/interop/fixtures/rtdetr_<case>.pt from the official RT-DETR HybridEncoder
(lyuwenyu/RT-DETR, rtdetrv2_pytorch/src/zoo/rtdetr/hybrid_encoder.py), in the peers environment:

    REFS=/tmp/refs /tmp/peers-venv/bin/python tests/interop/data/record_rtdetr.py tests/interop/fixtures

REFS holds the extracted repository as RT-DETR/ with a COMMIT file (../shared/peers/FETCHED.md says
how to fetch it). The module is imported from there (nothing is copied): its packages are put in
sys.modules as path-only packages so that their __init__ files do not run, and the unused
``src.core.register`` is a stub. Every parameter and buffer is randomised (norm statistics too),
the inputs are each ceil(image / stride), batch 2, and the case runs in eval(), no_grad, float32.
The fixture format is ../shared/fixtures/README.md's, plus num_params (unique parameters).
"""

import collections
import importlib
import math
import os
import sys
import types

import torch

REFS = os.environ.get("REFS", "/tmp/refs")
ROOT = os.path.join(REFS, "RT-DETR", "rtdetrv2_pytorch", "src")

CASES = [
    {
        "id": "rtdetr_v1_odd_names",
        "hw": [64, 96],
        "note": "v1 input_proj names (input_proj.i.0/1), defaults otherwise at small widths, a non-square image",
        "config": {"in_channels": [16, 24, 40], "feat_strides": [8, 16, 32], "hidden_dim": 32, "nhead": 4, "dim_feedforward": 48, "version": "v1"},
    },
    {
        "id": "rtdetr_4levels_two_encoders",
        "hw": [128, 128],
        "note": "4 levels (strides 4-32), AIFI on levels 1 and 3 with 2 layers each, pe_temperature 100",
        "config": {
            "in_channels": [8, 16, 24, 32], "feat_strides": [4, 8, 16, 32], "hidden_dim": 16, "nhead": 2, "dim_feedforward": 24,
            "use_encoder_idx": [1, 3], "num_encoder_layers": 2, "pe_temperature": 100,
        },
    },
    {
        "id": "rtdetr_expansion_half_depth034_relu",
        "hw": [96, 64],
        "note": "expansion 0.5 (conv3 exists), depth_mult 0.34 (one RepVGG unit), act relu, enc_act relu",
        "config": {"in_channels": [16, 32, 48], "hidden_dim": 32, "nhead": 8, "dim_feedforward": 32, "expansion": 0.5, "depth_mult": 0.34, "act": "relu", "enc_act": "relu"},
    },
    {
        "id": "rtdetr_nonsquare_wh_embedding",
        "hw": [160, 224],
        "note": "maps 20x28, 10x14, 5x7 with AIFI on the finest and the coarsest: the official w-major embedding on non-square maps",
        "config": {"in_channels": [8, 16, 24], "hidden_dim": 16, "nhead": 4, "dim_feedforward": 32, "use_encoder_idx": [0, 2]},
    },
    {
        "id": "rtdetr_eval_size_dropout_repeats",
        "hw": [96, 128],
        "note": "eval_spatial_size set (the buffered embedding), dropout 0.1 (eval), use_encoder_idx [-1, 0, 2]: two encoders on the coarsest level, run in order; leaky_relu, Swish by name",
        "config": {
            "in_channels": [16, 16, 32], "hidden_dim": 16, "nhead": 2, "dim_feedforward": 16, "dropout": 0.1, "use_encoder_idx": [-1, 0, 2],
            "eval_spatial_size": [96, 128], "act": "leaky_relu", "enc_act": "Swish", "depth_mult": 0.5,
        },
    },
    {
        "id": "rtdetr_one_level",
        "hw": [64, 64],
        "note": "one input: no CCFM, the output is the encoded projection",
        "config": {"in_channels": [24], "feat_strides": [32], "hidden_dim": 16, "nhead": 4, "dim_feedforward": 16, "use_encoder_idx": [0]},
    },
]


def _package(name, path):
    module = types.ModuleType(name)
    module.__path__ = [path]
    return module


def hybrid_encoder_class():
    """Import HybridEncoder from the extracted repository, then drop the modules added meanwhile."""
    before = set(sys.modules)
    register = types.ModuleType("src.core")
    register.register = lambda *a, **k: (lambda cls: cls)
    sys.modules.update({
        "src": _package("src", ROOT), "src.zoo": _package("src.zoo", os.path.join(ROOT, "zoo")),
        "src.zoo.rtdetr": _package("src.zoo.rtdetr", os.path.join(ROOT, "zoo", "rtdetr")), "src.core": register,
    })
    try:
        return importlib.import_module("src.zoo.rtdetr.hybrid_encoder").HybridEncoder
    finally:
        for name in set(sys.modules) - before:
            del sys.modules[name]


def randomise(module, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) / math.sqrt(p[0].numel()))
            elif name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=generator) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)


def record(case, cls, outdir):
    cfg, (h, w) = case["config"], case["hw"]
    torch.manual_seed(0)
    module = cls(**cfg)
    randomise(module, 1234)
    module.eval()
    strides = cfg.get("feat_strides", [8, 16, 32])
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randn(2, c, math.ceil(h / s), math.ceil(w / s), generator=generator) for c, s in zip(cfg["in_channels"], strides)]
    with torch.no_grad():
        outputs = module(list(inputs))
    with open(os.path.join(REFS, "RT-DETR", "COMMIT")) as f:
        commit = f.read().strip()
    fixture = {
        "format": 1, "id": case["id"], "source": "rtdetr.HybridEncoder", "config": cfg, "image_hw": [h, w], "input_names": None,
        "inputs": inputs, "output_names": None, "outputs": [o.contiguous() for o in outputs],
        "state_dict": collections.OrderedDict((k, v.clone()) for k, v in module.state_dict().items()),
        "versions": {"torch": torch.__version__, "lyuwenyu/RT-DETR": commit}, "note": case["note"],
        "num_params": sum(p.numel() for p in module.parameters()),
    }
    path = os.path.join(outdir, f"{case['id']}.pt")
    torch.save(fixture, path)
    print(f"{case['id']}: {fixture['num_params']} parameters, {os.path.getsize(path)} bytes, outputs {[tuple(o.shape) for o in outputs]}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    encoder = hybrid_encoder_class()
    for case in CASES:
        record(case, encoder, sys.argv[1])
