"""Records tests/interop/fixtures/mmdet_ct_resnet_dcn_*.pt (cases in mmdet_ct_resnet_dcn_cases.json)
from mmdet 3.3's CTResNetNeck with use_dcn=True, in the peers environment
(../shared/peers/setup.sh): mmcv-lite has no compiled ops, so mmcv's DCNv2
(ModulatedDeformConv2dPack) runs on torchvision's deform_conv2d (mmcv_dcn_stub.py). Each case
is built, randomised (offset convs included) and run by ../shared/peers/make_fixtures.py's
``make``, as the other mmdet cases were.

    /tmp/peers-venv/bin/python tests/interop/data/record_ct_resnet_dcn.py tests/interop/fixtures [SHARED_PEERS_DIR]
"""
# ruff: noqa: E402  (the stub must be imported before mmcv's ops)
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mmcv_dcn_stub import ModulatedDeformConv2dPack, torchvision  # stubs mmcv._ext, runs mmcv's DCNv2 on torchvision

# isort: split

import mmcv
import mmdet
import torch


def main(outdir: str, peers: str) -> None:
    sys.path.insert(0, peers)
    import make_fixtures

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "mmdet": mmdet.__version__, "mmcv": mmcv.__version__}
    cases = json.loads((HERE.parent / "fixtures" / "mmdet_ct_resnet_dcn_cases.json").read_text())
    for case in cases:
        meta = make_fixtures.make(case, outdir, versions)
        built = make_fixtures.mmdet_build(case["config"]["necks"])
        assert all(isinstance(built.deconv_layers[2 * i].conv, ModulatedDeformConv2dPack) for i in range(len(built.deconv_layers) // 2))
        print(meta["id"], meta["num_params"], meta["output_shapes"], meta["bytes"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE.parents[3], "shared", "peers"))
