"""mmcv's modulated deformable conv (DCNv2) on torchvision, for recording reference cases in the
peers environment (../shared/peers/setup.sh): mmcv-lite ships no compiled ops, so importing this
module stubs ``mmcv._ext`` (every kernel a function that raises) and replaces
``mmcv.ops.modulated_deform_conv.modulated_deform_conv2d``, the function that both
``ModulatedDeformConv2d.forward`` (DyHead) and ``ModulatedDeformConv2dPack.forward``
(``conv_cfg=dict(type='DCNv2')``, CenterNet's neck) call, by :func:`deform_conv2d`, which
runs torchvision's ``deform_conv2d`` (the same weight, offset and mask layouts; groups and
deformable groups follow from the shapes, as in mmcv).

Import it before anything that imports ``mmcv.ops``. Used by record_dyhead.py and
record_ct_resnet_dcn.py.
"""
# ruff: noqa: E402  (mmcv._ext must be stubbed before mmcv's ops import)
import sys
import types


class _Ext(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*a, **k):
            raise RuntimeError(f"mmcv._ext.{name} is a stub")

        return missing


sys.modules.setdefault("mmcv._ext", _Ext("mmcv._ext"))

import mmcv.ops.modulated_deform_conv as _mdc
import torchvision
from mmcv.ops.modulated_deform_conv import ModulatedDeformConv2d, ModulatedDeformConv2dPack
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d as _tv_deform_conv2d

__all__ = ["ModulatedDeformConv2d", "ModulatedDeformConv2dPack", "deform_conv2d", "torchvision"]


def deform_conv2d(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, deform_groups=1):
    """mmcv's ``modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding,
    dilation, groups, deform_groups)`` by torchvision. Where the offset map is not the output's
    size (DyHead reads a coarser level's offsets, DynamicHead#25), the offsets and mask are read
    as mmcv's kernel reads them: mmcv/ops/csrc/pytorch/modulated_deform_conv.cpp loops over the
    batch and takes ``offset[b]`` and ``mask[b]`` from their data pointers as
    ``(C, out_h, out_w)``, i.e. each sample's first ``C * out_h * out_w`` values."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    assert weight.shape[1] * groups == x.shape[1], "groups do not match the weight"
    kh, kw = weight.shape[-2:]
    n = x.shape[0]
    out_h = (x.shape[2] + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (x.shape[3] + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    taps = deform_groups * kh * kw
    if tuple(offset.shape[-2:]) != (out_h, out_w):
        offset = offset.reshape(n, -1)[:, : 2 * taps * out_h * out_w].reshape(n, 2 * taps, out_h, out_w)
        mask = mask.reshape(n, -1)[:, : taps * out_h * out_w].reshape(n, taps, out_h, out_w)
    return _tv_deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)


_mdc.modulated_deform_conv2d = deform_conv2d
