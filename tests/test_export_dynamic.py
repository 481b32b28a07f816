"""``torch.export.export`` with dynamic height and width, for every bundled spec: the exported
program keeps its sizes symbolic and computes what the eager neck computes at other sizes.

The inputs of one neck are tied: each side of the input at stride ``s`` is ``ceil(image / s)``.
torch.export's derived dims are linear (``a * Dim + b``), so a program is exported for one
residue class of the image side modulo a unit ``U`` (the largest input stride, or the size
rule's multiple where larger): a side ``U * b + r`` gives the input at stride ``s`` the side
``(U / s) * b + ceil(r / s)``, linear in ``b`` for every ``s <= U``. Heights here are multiples
of ``U`` (``r = 0``); widths are ``U * b + r`` with ``r`` not a multiple of the largest stride
where the spec takes such sizes (bfp, bifpn, fpn, nasfpn, pafpn), so each run has one side of
each kind. yolov8 and yolox_pafpn upsample by a fixed factor 2 (sides multiples of 32), fpg by
default too (multiples of 64: its grid's top level is 6), so their widths are multiples.

The smallest ``b`` (``Dim(min=...)``) keeps every map the neck computes at least 2 on a side:
torch.export specialises a size that is 1 (broadcasting and contiguity treat it apart), so an
example or a range reaching 1 on some map gives guards like ``Ne(ceil(b / 4), 1)`` that the
range does not satisfy. nasfpn's P7 is ``floor(image / 128)``, hence images of 256 and up.

Widths are narrowed where a spec has a parameter for it (``channels``), nasfpn stacks 2 cells
instead of 7 and fpg 5 pathways instead of 9 (the first 4 have every skip pattern, the 5th
none), for time only: export time grows with the graph (about 1 s per 100 ops here), and the
ops and size arithmetic are those of the default graphs, which export too (nasfpn's 7 cells
in about 26 s on two cores, fpg's 9 pathways in about 10 s). Batch-norm statistics are
randomised, so that eval-mode batch norm is not nearly the identity.

Measured (two cores, shared): the file takes about 45 s; every output of every exported
program equals eager's bit for bit (max abs error 0) at both sizes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pytest
import torch
from norms import randomise_norms
from speclib import small_args
from torch.export import Dim

import pyramidgraph

RTOL = 1e-5  # max |exported - eager| / max |eager|, per output


@dataclass(frozen=True)
class Plan:
    """How to export one spec: sides are ``unit * b`` (height) and ``unit * b + remainder``
    (width); ``example`` is the ``(b_height, b_width)`` exported at, ``runs`` those run at."""

    unit: int | None = None  # None: the largest input stride
    remainder: int = 0
    min_b: int = 3
    example: tuple[int, int] = (4, 5)
    runs: tuple[tuple[int, int], ...] = ((5, 4), (6, 7))
    params: dict = field(default_factory=dict)


PLANS = {
    # P6 (maxpool of C5) is ceil(b / 2): at least 2 from b = 3
    "fpn": Plan(remainder=16, params={"channels": 64}),
    "pafpn": Plan(remainder=16, params={"channels": 64}),
    # P7 is ceil(b / 4): at least 2 from b = 5
    "bifpn": Plan(remainder=16, min_b=5, example=(5, 6), runs=((6, 5), (7, 7))),
    "yolov8": Plan(),
    "yolox_pafpn": Plan(params={"out_channels": 64}),
    # sides multiples of 64 (across_down upsamples by a fixed factor 2 from level 6)
    "fpg": Plan(unit=64, min_b=2, example=(2, 3), runs=((3, 2), (4, 3)), params={"channels": 64, "inter_channels": 64, "stack_times": 5}),
    # P6 is an input (stride 64); no parameters to narrow
    "bfp": Plan(remainder=32, min_b=2, example=(2, 3), runs=((3, 2), (4, 3))),
    # P7 is floor(b / 4): at least 2 from b = 8
    "nasfpn": Plan(remainder=16, min_b=8, example=(8, 9), runs=((9, 8), (10, 9)), params={"channels": 64, "stack_times": 2}),
    # sides multiples of 64: the re-run ResNet's maps (ceil halvings of the image) and the FPN's of
    # C2..C5 agree at any size, but torch.export cannot prove ceil(32 b / 64) == ceil(b / 2); P6 is b,
    # at least 2 from b = 2; fewer Bottlenecks (the first of each stage sets its sizes), for time
    "rfp": Plan(unit=64, min_b=2, example=(2, 3), runs=((3, 2), (4, 3)), params={"channels": 64, "aspp_channels": 16, "stage_blocks": [2, 1, 1, 1]}),
    # the deep input (stride 16) is b: its TUM's coarsest map, b / 16 rounded up and less 2 by
    # the unpadded conv, must be at least 2, so b from 25
    "m2det": Plan(min_b=25, example=(25, 26), runs=((26, 25), (27, 28))),
    # FPA's three 2x2 max pools on the stride-32 map: b from 8 keeps its smallest map 1... and 2 from 16
    "pan_attention": Plan(min_b=16, example=(16, 17), runs=((17, 16), (18, 19))),
    # the coarsest pooled map is floor(b / 2): at least 2 from b = 4
    # sides multiples of 64: torch.export cannot prove 2 * ceil(b / 2) >= b for the crop after each upsampling
    "fpn_carafe": Plan(unit=64, min_b=2, example=(2, 3), runs=((3, 2), (4, 3)), params={"channels": 64}),
    # SSD300's padding-0 extra layers shrink each map by 2: b from 5 keeps the last one 2 wide
    "ssd_neck": Plan(min_b=5, example=(5, 6), runs=((6, 5), (7, 7))),
    # P7 (a stride-2 conv of P6) is ceil(b / 4) from the stride-32 input b: at least 2 from b = 5
    "nasfcos_fpn": Plan(remainder=16, min_b=5, example=(5, 6), runs=((6, 5), (7, 7)), params={"channels": 64}),
    # one block on three levels, for time (export time grows with the graph)
    "dyhead": Plan(params={"in_channels": [16, 16, 16], "out_channels": 32, "num_blocks": 1}),
    "hrfpn": Plan(min_b=4, example=(4, 5), runs=((5, 4), (6, 7)), params={"channels": 64}),
    # one BasicBlock a stage of four, for time; the library case's widths
    "afpn": Plan(params={"in_channels": [16, 24, 32, 48], "out_channels": 16, "blocks": 1}),
}
SPECS = sorted(pyramidgraph.bundled_specs())


def _outputs(result) -> list[torch.Tensor]:
    return list(result.values()) if isinstance(result, dict) else list(result)


def _image(plan: Plan, unit: int, b: tuple[int, int]) -> tuple[int, int]:
    return unit * b[0], unit * b[1] + plan.remainder


def _inputs(neck, image: tuple[int, int], seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(1, s.channels, -(-image[0] // s.stride), -(-image[1] // s.stride), generator=generator) for _, s in neck.info.inputs]


@pytest.mark.parametrize("spec", SPECS)
def test_export_with_dynamic_height_and_width_matches_eager(spec):
    _check_dynamic_export(spec, "none")


@pytest.mark.parametrize("spec", ["bifpn", "fpn", "yolov8", "yolo11", "rtdetr_hybrid_encoder"])
def test_the_inference_program_exports_with_dynamic_sizes(spec):
    """``optimize="inference"``, exported without autograd: the program (folded kernels as
    constants, in-place activations, channels-last) keeps its sizes symbolic too."""
    _check_dynamic_export(spec, "inference")


def _check_dynamic_export(spec: str, optimize: str) -> None:
    plan = PLANS.get(spec, Plan())
    torch.manual_seed(0)
    neck = pyramidgraph.compile(spec, **(plan.params or small_args(spec)))
    randomise_norms(neck)
    neck.eval()
    if optimize != "none":
        pyramidgraph.optimize(neck, optimize)
    strides = [s.stride for _, s in neck.info.inputs]
    unit = plan.unit or max(strides)
    assert all(unit % s == 0 for s in strides)
    b_height, b_width = Dim("b_height", min=plan.min_b, max=256), Dim("b_width", min=plan.min_b, max=256)
    dims = [{2: (unit // s) * b_height, 3: (unit // s) * b_width + -(-plan.remainder // s)} for s in strides]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():  # the inference program is the forward without autograd
            program = torch.export.export(neck, (_inputs(neck, _image(plan, unit, plan.example), seed=0),), dynamic_shapes=(dims,), strict=False)
    if optimize == "inference":  # the program's folded kernels are what the export reads
        assert set(neck.__dict__["_inference"].derived) <= set(program.graph_signature.inputs_to_buffers.values())

    # symbolic, not specialised: every input's height is a function of one free symbol, every
    # width of another, and the program's range constraints keep them free
    names = set(program.graph_signature.user_inputs)
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in names]
    assert len(placeholders) == len(strides)
    free: list[set] = [set(), set()]
    for node in placeholders:
        for axis in (0, 1):
            side = node.meta["val"].shape[2 + axis]
            assert isinstance(side, torch.SymInt) and not side.node.expr.is_number, f"{spec}: {node.name} is specialised on axis {2 + axis}: {side}"
            free[axis] |= side.node.expr.free_symbols
    assert len(free[0]) == len(free[1]) == 1 and free[0] != free[1], f"{spec}: the inputs' sides are not tied to one height and one width: {free}"
    for symbol in free[0] | free[1]:
        bounds = program.range_constraints[symbol]
        assert bounds.lower == plan.min_b and bounds.upper > bounds.lower, f"{spec}: {symbol} ranges over {bounds}"

    module = program.module()
    for run, b in enumerate(plan.runs):
        assert b != plan.example
        image = _image(plan, unit, b)
        x = _inputs(neck, image, seed=1 + run)
        with torch.no_grad():
            expected = _outputs(neck(x))
            got = _outputs(module(x))
        assert len(got) == len(expected)
        for name, a, e in zip(neck.output_names, got, expected):
            assert a.shape == e.shape, f"{spec} at {image[0]}x{image[1]}, {name}: exported gives {tuple(a.shape)}, eager {tuple(e.shape)}"
            error = float((a - e).abs().max()) / max(float(e.abs().max()), 1e-12)
            assert error <= RTOL, f"{spec} at {image[0]}x{image[1]}, {name}: exported differs from eager by {error:.3g} of the output's range"
