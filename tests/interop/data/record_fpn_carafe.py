"""Record mmdetection's FPN_CARAFE cases with the peers' environment (mmdet 3.3, mmcv-lite).

mmcv-lite has no compiled ops: ``mmcv/ops/carafe.py`` loads ``mmcv._ext`` when imported, and
its ``carafe`` function is a CUDA kernel with no CPU version. The file is imported here with the
extension loader stubbed, so FPN_CARAFE, ``CARAFEPack`` and its ``kernel_normalizer`` are
mmdetection's and mmcv's own code, and only the reassembly kernel is replaced: by
:func:`naive_carafe`, a line-by-line transcription of mmcv's
``csrc/common/cuda/carafe_naive_cuda_kernel.cuh`` (``carafe_naive_forward_cuda_kernel``). Cases
with ``upsample_cfg`` type ``carafe`` therefore check everything but that kernel against the
reference; the other upsamplers (nearest, bilinear, deconv, pixel_shuffle) are mmcv's and
PyTorch's own modules and are recorded as they are. ``deconv`` and ``pixel_shuffle`` read
``upsample_cfg.upsample_kernel`` as an attribute, which a config file's ``ConfigDict`` has and a
plain dict has not, so ``upsample_cfg`` is handed over as a ``ConfigDict``.

Everything else is ``/work/shared/peers/make_fixtures.py`` (its randomisation and format):

    /tmp/peers-venv/bin/python tests/interop/data/record_fpn_carafe.py OUTDIR tests/interop/fixtures/mmdet_fpn_carafe_cases.json ID...

(always with ids: without them ``make_fixtures.main`` rewrites ``OUTDIR/index.json``).
"""

import importlib
import sys
import types
from pathlib import Path

PEERS = Path(__file__).resolve().parents[4] / "shared" / "peers"
sys.path.insert(0, str(PEERS))

import make_fixtures  # noqa: E402
import mmdet_necks_loader  # noqa: E402


def naive_carafe(features, masks, kernel_size, group_size, scale_factor):
    """``carafe_naive_forward_cuda_kernel``, one output element at a time (per batch and
    channel group): ``features`` N x C x h x w, ``masks`` N x k*k*G x (h*s) x (w*s), normalised."""
    n, channels, down_height, down_width = features.shape
    height, width = down_height * scale_factor, down_width * scale_factor
    out = features.new_zeros(n, channels, height, width)
    per_group = channels // group_size
    half = (kernel_size - 1) // 2
    for ph in range(height):
        for pw in range(width):
            down_ph, down_pw = ph // scale_factor, pw // scale_factor
            for iy in range(down_ph - half, down_ph + half + 1):
                for ix in range(down_pw - half, down_pw + half + 1):
                    if iy < 0 or iy > down_height - 1 or ix < 0 or ix > down_width - 1:
                        continue
                    mask_iy, mask_ix = iy - down_ph + half, ix - down_pw + half
                    for group in range(group_size):
                        mask_c = (group * kernel_size + mask_iy) * kernel_size + mask_ix
                        block = slice(group * per_group, (group + 1) * per_group)
                        out[:, block, ph, pw] += features[:, block, iy, ix] * masks[:, mask_c, ph, pw][:, None]
    return out


def install() -> None:
    mmdet_necks_loader.install_stubs()
    import mmcv.utils.ext_loader as ext_loader

    load_ext = ext_loader.load_ext
    ext_loader.load_ext = lambda name, funcs: types.SimpleNamespace()  # nothing of it is called
    try:
        carafe = importlib.import_module("mmcv.ops.carafe")
    finally:
        ext_loader.load_ext = load_ext
    carafe.carafe = naive_carafe  # CARAFEPack.feature_reassemble's kernel
    module = importlib.import_module("mmdet.models.necks.fpn_carafe")
    make_fixtures.MMDET_NECKS["FPN_CARAFE"] = ("fpn_carafe", "FPN_CARAFE")
    import_necks = mmdet_necks_loader.import_necks
    mmdet_necks_loader.import_necks = lambda names=None: {**import_necks(), "fpn_carafe": module}

    from mmengine.config import ConfigDict

    tuples = make_fixtures.mmdet_tuples

    def with_config_dict(value, key=""):
        out = tuples(value, key)
        return ConfigDict(out) if key == "upsample_cfg" and isinstance(out, dict) else out

    make_fixtures.mmdet_tuples = with_config_dict


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")
    install()
    make_fixtures.main()
