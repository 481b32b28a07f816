"""Record mmcv's NonLocal2d and merge-cell resizing on small random inputs (op-level parity data).

Run with the reference environment (../shared/peers/setup.sh):
    /tmp/peers-venv/bin/python tests/interop/data/make_mmcv_ops.py tests/interop/data/mmcv_ops.pt
"""

import sys

import torch

sys.path.insert(0, "/work/shared/peers")
import make_fixtures  # noqa: E402
import mmdet_necks_loader  # noqa: E402

mmdet_necks_loader.install_stubs()
from mmcv.cnn.bricks import NonLocal2d  # noqa: E402
from mmcv.ops.merge_cells import GlobalPoolingCell, SumCell  # noqa: E402

torch.manual_seed(0)
nonlocal_cases = []
for mode in ("embedded_gaussian", "dot_product", "gaussian"):
    for reduction, use_scale, norm in ((2, True, None), (1, False, {"type": "BN"}), (4, True, {"type": "GN", "num_groups": 4})):
        block = NonLocal2d(8, reduction=reduction, use_scale=use_scale, norm_cfg=norm, mode=mode)
        make_fixtures.randomise(block, 7)
        block.eval()
        x = torch.randn(1, 8, 4, 5)
        with torch.no_grad():
            y = block(x)
        nonlocal_cases.append({"mode": mode, "reduction": reduction, "use_scale": use_scale, "norm_cfg": norm, "x": x, "y": y, "state_dict": block.state_dict()})

merge_cases = []
for cell_type in ("sum", "gp"):
    for mode in ("nearest", "bilinear"):
        for size1, size2, out in (((13, 13), (7, 7), (7, 7)), ((7, 5), (13, 10), (4, 3)), ((3, 9), (3, 4), (3, 4)), ((2, 9), (3, 4), (3, 4)), ((2, 2), (25, 19), (7, 5))):
            kwargs = {"with_out_conv": False, "upsample_mode": mode}
            cell = SumCell(2, 2, **kwargs) if cell_type == "sum" else GlobalPoolingCell(2, 2, **kwargs)
            x1, x2 = torch.randn(1, 2, *size1), torch.randn(1, 2, *size2)
            with torch.no_grad():
                y = cell(x1, x2, out_size=torch.Size(out))
            merge_cases.append({"cell": cell_type, "mode": mode, "x1": x1, "x2": x2, "out_size": out, "y": y})

torch.save({"nonlocal": nonlocal_cases, "merge_cells": merge_cases}, sys.argv[1], _use_new_zipfile_serialization=False)  # compact for many small tensors
print(len(nonlocal_cases), "non-local cases,", len(merge_cases), "merge-cell cases")
