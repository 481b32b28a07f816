"""The spec library as a user trains it: every spec listed in ``tests/speclib`` compiles for the
input counts its architecture allows (refusing the others), runs at two image sizes with the
shapes written out there, gives every parameter a gradient, learns, and has its paper's
parameter count (see :mod:`speclib` for what each entry says)."""

from __future__ import annotations

import pytest
import torch
from speclib import LibraryCase, all_cases

import pyramidgraph

CASES = all_cases()
NAMES = sorted(CASES)


def _compile(name: str, n: int, image=None) -> pyramidgraph.PyramidNeck:
    case = CASES[name]
    torch.manual_seed(0)
    return pyramidgraph.compile(name, case.in_channels[n], image=image, **case.params)


def _outputs(neck, inputs) -> list[torch.Tensor]:
    outputs = neck(inputs)
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


def test_every_bundled_spec_of_the_library_issue_is_listed():
    assert set(CASES) <= set(pyramidgraph.bundled_specs())


@pytest.mark.parametrize("name", NAMES)
def test_each_case_is_well_formed(name):
    case: LibraryCase = CASES[name]
    assert case.shape_levels in case.in_channels
    assert case.fixed_levels or {3, 4, 5} <= set(case.in_channels), f"{name}: say why it cannot take 3, 4 and 5 inputs"
    assert case.why_images or any(side % 128 for side in case.images[0]), f"{name}: one image size must not be a multiple of 128"
    assert case.paper[2], "name the source of the paper's parameter count"


@pytest.mark.parametrize("name,n", [(name, n) for name in NAMES for n in (3, 4, 5)])
def test_it_compiles_for_the_input_counts_the_architecture_allows(name, n):
    case = CASES[name]
    if n in case.in_channels:
        neck = _compile(name, n)
        assert neck.in_channels == case.in_channels[n]
        assert len(neck.info.inputs) == n
    else:
        widths = [16 * 2**i for i in range(n)]
        with pytest.raises(pyramidgraph.SpecError):
            pyramidgraph.compile(name, widths, **case.params)


@pytest.mark.parametrize("name,which", [(name, which) for name in NAMES for which in (0, 1)], ids=lambda v: str(v))
def test_forward_at_two_image_sizes(name, which):
    case = CASES[name]
    image = case.images[which]
    neck = _compile(name, case.shape_levels, image=image).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        outputs = _outputs(neck, neck.example_inputs(batch=2, image=image))
    assert [tuple(o.shape) for o in outputs] == [(2, *shape) for shape in case.outputs[which]]
    assert all(torch.isfinite(o).all() for o in outputs)
    inferred = pyramidgraph.validate(name, case.in_channels[case.shape_levels], image=image, **case.params)
    shapes = inferred.ir.values()
    assert [(shapes[v].channels, *shapes[v].size) for _, v in inferred.ir.outputs] == list(case.outputs[which])


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    """Parameters that start at zero by design (RFP's feedback convs, deformable convs' offset
    predictors) block the gradient of everything before them at the first step, so they are
    given small random values first; every parameter must then get a finite, non-zero gradient."""
    case = CASES[name]
    neck = _compile(name, case.shape_levels).train()
    torch.manual_seed(2)
    with torch.no_grad():
        for p in neck.parameters():
            if not p.abs().sum() > 0:
                p.normal_(0, 0.01)
    outputs = _outputs(neck, neck.example_inputs(batch=2, image=case.images[0]))
    sum((o * torch.randn_like(o)).sum() for o in outputs).backward()
    params = dict(neck.named_parameters())
    assert params
    assert [k for k, p in params.items() if p.grad is None] == []
    assert [k for k, p in params.items() if not torch.isfinite(p.grad).all()] == []
    assert [k for k, p in params.items() if not p.grad.abs().sum() > 0] == []


@pytest.mark.parametrize("name", NAMES)
def test_a_few_training_steps_lower_a_toy_loss(name):
    """Regress fixed random targets: the mean squared error after 5 SGD steps is below the first."""
    case = CASES[name]
    neck = _compile(name, case.shape_levels).train()
    torch.manual_seed(3)
    inputs = neck.example_inputs(batch=2, image=case.images[0])
    with torch.no_grad():
        targets = [torch.randn_like(o) for o in _outputs(neck, inputs)]
    optimiser = torch.optim.SGD(neck.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(6):
        optimiser.zero_grad()
        loss = sum(torch.nn.functional.mse_loss(o, t) for o, t in zip(_outputs(neck, inputs), targets))
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_the_paper_configuration_has_the_papers_parameter_count(name):
    arguments, count, _source = CASES[name].paper
    arguments = dict(arguments)
    in_channels = arguments.pop("in_channels", None)
    assert pyramidgraph.neck_info(name, in_channels, params=arguments).params == count
