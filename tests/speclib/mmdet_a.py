"""Cases for five of mmdetection 3.3's necks: HRFPN, ChannelMapper, SSH, DilatedEncoder, CTResNetNeck.

Paper counts were taken from mmdetection 3.3 itself: the reference module built at the paper's
configuration in the peers' environment (``/work/shared/peers``, ``mmdet_necks_loader``), with
its parameters summed; the arithmetic is written out beside each.
"""

from __future__ import annotations

from . import LibraryCase

CASES: dict[str, LibraryCase] = {
    "hrfpn": LibraryCase(
        in_channels={3: [8, 16, 24], 4: [8, 16, 24, 32], 5: [8, 8, 16, 16, 32]},
        params={"channels": 16},
        images=((96, 160), (128, 128)),
        outputs=([(16, 24, 40), (16, 12, 20), (16, 6, 10), (16, 3, 5), (16, 1, 2)], [(16, 32, 32), (16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)]),
        shape_levels=4,
        # reduction 480 * 256 + 256 = 123,136; five 3x3 convs 5 * (256 * 256 * 9 + 256) = 2,950,400
        paper=({}, 3_073_536, "mmdetection 3.3 HRFPN([32, 64, 128, 256], 256) of the HRNetV2p-W32 configs (hrnet/*hrnetv2p-w32*), instantiated and counted"),
    ),
    "channel_mapper": LibraryCase(
        in_channels={3: [8, 16, 32], 4: [8, 16, 32, 32], 5: [8, 8, 16, 16, 32]},
        params={"channels": 16, "norm_groups": 4},
        images=((100, 150), (128, 128)),
        outputs=([(16, 13, 19), (16, 7, 10), (16, 4, 5), (16, 2, 3), (16, 1, 2)], [(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2), (16, 1, 1)]),
        shape_levels=4,
        # 1x1 convs (512 + 1024 + 2048) * 256 = 917,504 + GN 3 * 512; extra 3x3/2 2048 * 256 * 9 = 4,718,592 + GN 512
        paper=({}, 5_638_144, "mmdetection 3.3 ChannelMapper([512, 1024, 2048], 256, kernel_size=1, GN 32, act None, num_outs=4) of dino-4scale_r50 and deformable-detr_r50, instantiated and counted"),
    ),
    "ssh": LibraryCase(
        in_channels={3: [8, 16, 32], 4: [8, 16, 32, 32], 5: [8, 8, 16, 16, 32]},
        params={"channels": 16},
        images=((100, 150), (128, 128)),
        outputs=([(16, 13, 19), (16, 7, 10), (16, 4, 5), (16, 2, 3)], [(16, 16, 16), (16, 8, 8), (16, 4, 4), (16, 2, 2)]),
        shape_levels=4,
        paper=(
            {"in_channels": [128, 512, 512], "widths": [128, 512, 512]},
            4_565_376,
            "mmdetection 3.3 SSH(3, [128, 512, 512], [128, 512, 512]), the paper's three VGG-16 modules (M1 128 wide, M2 and M3 512; mmdetection ships no SSH config), instantiated and counted",
        ),
    ),
    "dilated_encoder": LibraryCase(
        in_channels={1: [32]},
        fixed_levels="YOLOF's encoder reads one level (C5) and gives one: it has no input count to choose",
        params={"channels": 16, "mid": 8, "blocks": 2, "dilations": [2, 4]},
        images=((200, 300), (256, 256)),
        outputs=([(16, 7, 10)], [(16, 8, 8)]),
        shape_levels=1,
        # projector 2048 * 512 + 512 + 1024 + 512 * 512 * 9 + 512 + 1024; four blocks of 280,064
        paper=({}, 4_531_200, "mmdetection 3.3 DilatedEncoder(2048, 512, 128, 4, [2, 4, 6, 8]) of yolof_r50-c5_8xb8-1x_coco, instantiated and counted"),
    ),
    "ct_resnet_neck": LibraryCase(
        in_channels={1: [32]},
        fixed_levels="CenterNet's neck upsamples one level (C5) to one output: it has no input count to choose",
        params={"filters": [16, 8, 8], "kernels": [4, 4, 4], "use_dcn": True},
        images=((100, 150), (128, 128)),
        outputs=([(8, 32, 40)], [(8, 32, 32)]),
        shape_levels=1,
        # the example (the paper's): stages 512->256, 256->128, 128->64, each a 3x3 DCNv2 (no bias) with its 3x3 offset conv to 27 (with bias),
        # BN, 4x4 deconv, BN: 2,229,248 + 557,568 + 139,520 with the plain 3x3 convs (2,926,336 with use_dcn false, asserted in
        # tests/interop/test_ct_resnet_dcn.py) plus 124,443 + 62,235 + 31,131 for the offset convs
        paper=({}, 3_144_145, "mmdetection 3.3 CTResNetNeck(512, (256, 128, 64), (4, 4, 4), use_dcn=True) of centernet_r18-dcnv2_8xb16-crop512-140e_coco, instantiated and counted"),
    ),
}
