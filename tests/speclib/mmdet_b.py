"""Cases for five of mmdetection 3.3's necks (issue 10, item 4, part B): CSPNeXtPAFPN, YOLOV3Neck,
SSDNeck and NASFCOS_FPN (FPN_DropBlock is the ``fpn`` spec with its ``dropblock`` parameters,
tests/interop/test_mmdet_necks_b.py). Each paper count is mmdetection's own module at the paper's
configuration, instantiated in the reference environment (``/work/shared/peers``, mmdet 3.3.0,
``sum(p.numel() for p in module.parameters())``)."""

from __future__ import annotations

from . import LibraryCase

PEERS = "mmdetection 3.3.0's {} instantiated with {} (sum of parameter numels)"

CASES: dict[str, LibraryCase] = {
    "cspnext_pafpn": LibraryCase(
        in_channels={3: [16, 32, 64], 4: [8, 16, 32, 64], 5: [8, 8, 16, 16, 32]},
        params={"out_channels": 16, "num_csp_blocks": 1},
        images=((96, 160), (128, 128)),
        outputs=([(16, 12, 20), (16, 6, 10), (16, 3, 5)], [(16, 16, 16), (16, 8, 8), (16, 4, 4)]),
        shape_levels=3,
        paper=({"in_channels": [256, 512, 1024]}, 23_746_688, PEERS.format("CSPNeXtPAFPN", "RTMDet-l's neck: in_channels [256, 512, 1024], out_channels 256, 3 blocks, expand_ratio 0.5, BN, SiLU")),
    ),
    "yolov3_neck": LibraryCase(
        in_channels={3: [16, 32, 64], 4: [8, 16, 32, 64], 5: [8, 8, 16, 16, 32]},
        params={"upsample_by": "size"},  # the example's 416 px (the paper's) is not divisible by 2**(levels + 2) for 4 and 5 levels
        images=((100, 156), (128, 128)),
        outputs=([(32, 4, 5), (16, 7, 10), (8, 13, 20)], [(32, 4, 4), (16, 8, 8), (8, 16, 16)]),
        shape_levels=3,
        paper=({"in_channels": [256, 512, 1024]}, 14_709_760, PEERS.format("YOLOV3Neck", "Darknet-53's num_scales 3, in_channels [1024, 512, 256], out_channels [512, 256, 128]")),
    ),
    "ssd_neck": LibraryCase(
        in_channels={3: [8, 16, 32], 4: [8, 8, 16, 32], 5: [8, 8, 16, 16, 32]},
        params={"widths": [16, 8, 8], "strides": [2, 2, 1], "paddings": [1, 1, 1]},
        images=((200, 264), (256, 256)),
        outputs=(
            [(8, 25, 33), (16, 13, 17), (32, 7, 9), (16, 4, 5), (8, 2, 3), (8, 2, 3)],
            [(8, 32, 32), (16, 16, 16), (32, 8, 8), (16, 4, 4), (8, 2, 2), (8, 2, 2)],
        ),
        shape_levels=3,
        squares=(288, 300),  # SSD300's unpadded extra layers need 260 px or more
        paper=(
            {"in_channels": [512, 1024]},
            2_460_032,
            PEERS.format("SSDNeck", "SSD300's in_channels [512, 1024], out_channels [512, 1024, 512, 256, 256, 256], level_strides [2, 2, 1, 1], level_paddings [1, 1, 0, 0], l2_norm_scale 20"),
        ),
    ),
    "nasfcos_fpn": LibraryCase(
        in_channels={4: [8, 16, 16, 32], 5: [8, 16, 16, 32, 32]},
        fixed_levels="NAS-FCOS's searched cells read exactly three levels (C3-C5) after the finer C2, which mmdetection feeds and ignores (a fifth, coarser input is ignored too): three inputs lack C5",
        params={"channels": 8},
        images=((100, 156), (128, 128)),
        outputs=(
            [(8, 13, 20), (8, 7, 10), (8, 4, 5), (8, 2, 3), (8, 1, 2)],
            [(8, 16, 16), (8, 8, 8), (8, 4, 4), (8, 2, 2), (8, 1, 1)],
        ),
        shape_levels=4,
        paper=(
            {"in_channels": [256, 512, 1024, 2048]},
            9_197_056,
            PEERS.format("NASFCOS_FPN", "the paper's R-50 config, in_channels [256, 512, 1024, 2048], out_channels 256, start_level 1, num_outs 5, norm_cfg BN, with conv_cfg None (DCNv2 would add offset convs)"),
        ),
    ),
}
