"""Records tests/interop/fixtures/mmdet_dyhead_*.pt (cases in dyhead_cases.json) from mmdet 3.3's
DyHead, in the peers environment (../shared/peers/setup.sh): mmcv-lite has no compiled ops, so
mmcv's ModulatedDeformConv2d runs on torchvision's deform_conv2d (the same offset and mask
layout), reading a coarser level's offsets as mmcv's kernel does (DynamicHead#25): see
mmcv_dcn_stub.py.

    /tmp/peers-venv/bin/python tests/interop/data/record_dyhead.py tests/interop/fixtures
"""
# ruff: noqa: E402  (the stub must be imported before mmcv's ops)
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmcv_dcn_stub import torchvision  # stubs mmcv._ext, runs mmcv's DCNv2 on torchvision

# isort: split

import mmcv
import mmdet
from mmdet.models.necks.dyhead import DyHead


def case(name, cfg, strides, image, seed, note):
    torch.manual_seed(seed)
    m = DyHead(**{k: v for k, v in cfg.items() if k != "type"}).eval()
    with torch.no_grad():
        for k, p in m.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            if "norm.weight" in k:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "spatial_conv_offset" in k:
                p.copy_(0.3 * torch.randn_like(p))   # offsets of a few pixels
            else:
                p.copy_(torch.randn_like(p) * (1.0 / max(1, p[0].numel()) ** 0.5))
        h, w = image
        inputs = []
        for s in strides:
            inputs.append(torch.randn(2, cfg["in_channels"], -(-h // s), -(-w // s)))
        outs = m(inputs)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    rec = {"format": 1, "id": name, "source": "mmdet", "config": {"strides": strides, "necks": [cfg]}, "image_hw": list(image),
           "input_names": None, "inputs": inputs, "output_names": None, "outputs": [o.clone() for o in outs], "state_dict": sd,
           "versions": {"torch": torch.__version__, "mmdet": mmdet.__version__, "mmcv": mmcv.__version__, "torchvision": torchvision.__version__},
           "note": note, "num_params": sum(p.numel() for p in m.parameters())}
    return rec

if __name__ == "__main__":
    out = sys.argv[1]
    keys = {}
    for name, cfg, strides, image, note in [
        ("mmdet_dyhead_2blocks_odd", {"type": "DyHead", "in_channels": 16, "out_channels": 16, "num_blocks": 2}, [8, 16, 32, 64, 128], (100, 84),
         "mmdet DyHead, 5 levels, odd sizes; mmcv's ModulatedDeformConv2d.forward replaced by torchvision.ops.deform_conv2d (mmcv-lite has no compiled op; same offset/mask layout)"),
        ("mmdet_dyhead_in_out_differ", {"type": "DyHead", "in_channels": 8, "out_channels": 32, "num_blocks": 1, "zero_init_offset": False}, [4, 8, 16], (52, 60),
         "mmdet DyHead, in 8 -> out 32, 3 levels from stride 4; DCN forward by torchvision.ops.deform_conv2d"),
    ]:
        rec = case(name, cfg, strides, image, 0, note)
        torch.save(rec, f"{out}/{name}.pt")
        keys[name] = {k: list(v.shape) for k, v in rec["state_dict"].items()}
        print(name, rec["num_params"], [tuple(o.shape) for o in rec["outputs"]])
    # full-size key list for comparison
    m = DyHead(256, 256, 6)
    json.dump({k: list(v.shape) for k, v in m.state_dict().items()}, open(f"{out}/keys_atss.json", "w"))
    print("atss params", sum(p.numel() for p in m.parameters()))
