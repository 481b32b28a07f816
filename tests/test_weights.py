"""Stage ``materialise``: declared modules and parameters become weights, and only here."""

from __future__ import annotations

import torch
from torch import nn

import pyramidgraph
from pyramidgraph.compiler import Compilation
from pyramidgraph.weights import ModuleDecl, ParameterDecl, declare, materialise


def test_a_declaration_builds_what_the_constructor_would():
    decl = declare(nn.Conv2d, 8, 16, 3, padding=1, bias=False)
    assert decl.describe() == "Conv2d(8, 16, 3, padding=1, bias=False)"
    conv = decl.build()
    assert isinstance(conv, nn.Conv2d) and conv.weight.shape == (16, 8, 3, 3) and conv.bias is None and conv.padding == (1, 1)


def test_the_init_runs_after_the_constructor():
    decl = declare(nn.BatchNorm2d, 4, eps=1e-3, init=lambda m: nn.init.constant_(m.weight, 0.5))
    norm = decl.build()
    assert norm.eps == 1e-3 and norm.weight.tolist() == [0.5] * 4


def test_a_parameter_declaration_is_a_filled_parameter():
    weight = ParameterDecl((3,), fill=1.0).build()
    assert isinstance(weight, nn.Parameter) and weight.tolist() == [1.0, 1.0, 1.0] and weight.requires_grad


def test_materialise_keeps_declaration_order_so_a_seed_gives_the_same_weights():
    decls = {"a": declare(nn.Conv2d, 4, 4, 3), "b": declare(nn.Conv2d, 4, 4, 1), "w": ParameterDecl((2,))}
    torch.manual_seed(3)
    first = materialise(decls)
    torch.manual_seed(3)
    second = materialise(decls)
    assert list(first) == ["a", "b", "w"]
    for key in ("a", "b"):
        assert torch.equal(first[key].weight, second[key].weight)
    torch.manual_seed(3)
    swapped = materialise({"b": decls["b"], "a": decls["a"]})
    assert not torch.equal(swapped["a"].weight, first["a"].weight)  # the order is what a seed reproduces


def test_the_meta_device_builds_shapes_without_storage():
    built = materialise({"conv": declare(nn.Conv2d, 512, 512, 3), "w": ParameterDecl((5,))}, device="meta")
    assert built["conv"].weight.is_meta and built["conv"].weight.shape == (512, 512, 3, 3) and built["w"].is_meta


def test_a_compiled_neck_holds_exactly_the_declared_weights():
    compilation = Compilation("bifpn").run()
    declared = compilation.primitive.declarations
    neck = compilation.neck
    modules = dict(neck.named_modules())
    parameters = dict(neck.named_parameters())
    for path, decl in declared.items():
        if isinstance(decl, ModuleDecl):
            assert type(modules[path]) is decl.cls
        else:
            assert parameters[path].shape == decl.shape
    assert sum(p.numel() for p in neck.parameters()) == pyramidgraph.neck_info("bifpn").params


def test_the_non_local_blocks_last_conv_starts_at_zero_as_mmcv():
    neck = pyramidgraph.compile("bfp", refine="non_local")
    conv_out = dict(neck.named_modules())["refined.post0.conv_out"]
    assert conv_out.weight.abs().sum().item() == 0.0
    g = dict(neck.named_modules())["refined.post0.g"]
    assert 0.0 < g.weight.std().item() < 0.02 and g.bias.abs().sum().item() == 0.0  # normal(std 0.01), zero bias


def test_a_conv_whose_init_sets_every_weight_draws_only_the_inits_numbers():
    """build_conv's schemes overwrite weight and bias, so PyTorch's default draw is skipped for a
    conv of 16 K weights or more: the weight is exactly the scheme's draw from the seed, as if
    the default had never run. A smaller conv is built the ordinary way (default, then scheme)."""
    from pyramidgraph.ops.common import SKIP_DEFAULT_INIT_FROM, build_conv

    assert 64 * 64 * 9 >= SKIP_DEFAULT_INIT_FROM > 8 * 8 * 9
    torch.manual_seed(4)
    conv = build_conv(64, 64, 3, 1, None, True, "kaiming_uniform").build()
    torch.manual_seed(4)
    expected = nn.init.kaiming_uniform_(torch.empty(64, 64, 3, 3), a=1)  # torchvision FPN's init, one draw
    assert torch.equal(conv.weight, expected) and conv.bias.tolist() == [0.0] * 64
    assert conv.weight.requires_grad and conv.bias.requires_grad and conv.padding == (1, 1) and type(conv) is nn.Conv2d
    assert torch.equal(torch.rand(3), torch.rand(3, generator=_after_draws(4, 64 * 64 * 9)))  # nothing else was drawn
    torch.manual_seed(4)
    small = build_conv(8, 8, 3, 1, None, True, "xavier_uniform").build()
    torch.manual_seed(4)
    ordinary = nn.Conv2d(8, 8, 3, padding=1)
    nn.init.xavier_uniform_(ordinary.weight)
    assert torch.equal(small.weight, ordinary.weight)


def _after_draws(seed: int, count: int) -> torch.Generator:
    generator = torch.Generator().manual_seed(seed)
    torch.empty(count).uniform_(generator=generator)
    return generator


def test_a_module_with_buffers_keeps_its_constructors_values_under_an_overwriting_init():
    from pyramidgraph.weights import overwrites_parameters

    decl = declare(nn.BatchNorm2d, 4, init=overwrites_parameters(lambda m: (nn.init.constant_(m.weight, 2.0), nn.init.zeros_(m.bias))))
    norm = decl.build()
    assert norm.weight.tolist() == [2.0] * 4 and norm.running_var.tolist() == [1.0] * 4 and norm.running_mean.tolist() == [0.0] * 4
    assert norm.num_batches_tracked.item() == 0
    meta = materialise({"conv": declare(nn.Conv2d, 8, 8, 1, init=overwrites_parameters(lambda m: None))}, device="meta")
    assert meta["conv"].weight.is_meta
