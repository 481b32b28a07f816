"""Records tests/interop/fixtures/mmdet_dyhead_*.pt (cases in dyhead_cases.json) from mmdet 3.3's
DyHead, in the peers environment (../shared/peers/setup.sh): mmcv-lite has no compiled ops, so
mmcv's ModulatedDeformConv2d runs on torchvision's deform_conv2d (the same offset and mask
layout), reading a coarser level's offsets as mmcv's kernel does (DynamicHead#25).

    /tmp/peers-venv/bin/python tests/interop/data/record_dyhead.py tests/interop/fixtures
"""
# ruff: noqa: E402  (mmcv._ext must be stubbed before mmcv's ops import)
import json
import sys
import types

import torch


class _Ext(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        def missing(*a, **k):
            raise RuntimeError(f"mmcv._ext.{name} is a stub")
        return missing
sys.modules["mmcv._ext"] = _Ext("mmcv._ext")
import torchvision
from mmcv.ops.modulated_deform_conv import ModulatedDeformConv2d
from torchvision.ops import deform_conv2d


def forward(self, x, offset, mask):
    assert self.groups == 1 and self.deform_groups == 1
    n = x.shape[0]
    out_h = (x.shape[2] + 2 * self.padding[0] - 3) // self.stride[0] + 1
    out_w = (x.shape[3] + 2 * self.padding[1] - 3) // self.stride[1] + 1
    if tuple(offset.shape[-2:]) != (out_h, out_w):
        # mmcv's kernel reads offset[b] and mask[b] from their data pointers as (C, out_h, out_w)
        # (mmcv/ops/csrc/pytorch/modulated_deform_conv.cpp loops over the batch); channels 0-17 of a
        # sample are contiguous in memory, so this is each sample's first C*out_h*out_w values
        offset = offset.reshape(n, -1)[:, : 18 * out_h * out_w].reshape(n, 18, out_h, out_w)
        mask = mask.reshape(n, -1)[:, : 9 * out_h * out_w].reshape(n, 9, out_h, out_w)
    return deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation, mask=mask)
ModulatedDeformConv2d.forward = forward
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
