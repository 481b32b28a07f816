"""The shared checker of the primitive-graph passes (``pyramidgraph/passes/fx``), as
``conftest.check_pass`` is for the IR passes: what one pass changes (node kinds counted before
and after it, the passes before it having run), that a second run changes nothing, and that
the neck optimised at the level computes what the unoptimised one does."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import torch
from norms import randomise

import pyramidgraph
from pyramidgraph.passes.fx import FX_PASSES, PassContext

TOLERANCE = 1e-5
"""Largest difference allowed between optimised and unoptimised outputs, relative to the
output's largest magnitude (float32: folding reorders a few multiplications)."""


def kind(ctx: PassContext, node: torch.fx.Node) -> str:
    """``BatchNorm2d`` (a module call), ``conv2d`` (a function), ``contiguous`` (a method), ``get_attr``."""
    if node.op == "call_module":
        return type(ctx.module(node)).__name__
    if node.op == "call_function":
        name = getattr(node.target, "__name__", str(node.target))
        return f"{name}(inplace)" if node.kwargs.get("inplace") else name
    if node.op == "call_method":
        return str(node.target)
    return node.op


def kinds(ctx: PassContext) -> Counter:
    return Counter(kind(ctx, node) for node in ctx.graph.nodes)


def base_neck(spec: Any, **kwargs: Any) -> pyramidgraph.PyramidNeck:
    """The unoptimised neck, weights and norm statistics random (a fold shows), eval mode."""
    return randomise(pyramidgraph.compile(spec, **kwargs), seed=3)


def run_pass(neck: pyramidgraph.PyramidNeck, name: str, level: str) -> tuple[PassContext, Counter, int]:
    """Run the passes of ``level`` before ``name`` on a copy of the neck's graph, then ``name``:
    the context, the change in node kinds it made, and the count it reported."""
    ctx = PassContext(copy.deepcopy(neck.graph), neck, level)
    chosen = [p for p in FX_PASSES if level in p.levels]
    index = [p.name for p in chosen].index(name)
    for p in chosen[:index]:
        p.run(ctx)
    before = kinds(ctx)
    count = chosen[index].run(ctx)
    ctx.graph.lint()
    after = kinds(ctx)
    delta = Counter({k: after[k] - before[k] for k in before | after if after[k] != before[k]})
    assert chosen[index].run(ctx) == 0, f"{name} changed the graph again on a second run"
    return ctx, delta, count


def outputs(neck: torch.nn.Module, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return outputs_with_grad(neck, inputs)


def assert_same_outputs(reference: torch.nn.Module, optimised: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Every output within :data:`TOLERANCE` of the reference's; returns the worst relative error."""
    worst = 0.0
    for expected, got in zip(outputs(reference, inputs), outputs(optimised, inputs)):
        assert got.shape == expected.shape
        error = ((got - expected).abs().max() / expected.abs().max().clamp(min=1.0)).item()
        assert error <= TOLERANCE, f"relative error {error}"
        worst = max(worst, error)
    return worst


def optimised_copy(neck: pyramidgraph.PyramidNeck, level: str) -> pyramidgraph.PyramidNeck:
    return pyramidgraph.optimize(copy.deepcopy(neck), level, check=True)


def assert_as_accurate(reference: torch.nn.Module, optimised: torch.nn.Module, inputs: list[torch.Tensor]) -> tuple[float, float]:
    """The optimised neck is at most twice as far from the float64 computation of the reference
    as the reference itself in float32, plus 1e-5 (relative to each output's largest
    magnitude): the float32 rounding of a deep neck (NAS-FPN, CARAFE) exceeds a fixed
    tolerance, and a channels-last or folded conv rounds differently, not worse. Returns both
    errors."""
    truth_module = copy.deepcopy(reference).double()
    truth = outputs(truth_module, [x.double() for x in inputs])

    def error(module: torch.nn.Module) -> float:
        got = outputs(module, inputs)
        assert [g.shape for g in got] == [t.shape for t in truth]
        return max(((g.double() - t).abs().max() / t.abs().max().clamp(min=1.0)).item() for g, t in zip(got, truth))

    plain, fast = error(reference), error(optimised)
    assert fast <= 2 * plain + 1e-5, f"optimised error {fast} against float64, unoptimised {plain}"
    return plain, fast


def assert_same_gradients(reference: torch.nn.Module, optimised: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """One training step's loss (the outputs' mean squares) backpropagated through both: every
    parameter's gradient equal within 1e-5 of the largest gradient; returns the worst difference."""
    for module in (reference, optimised):
        module.train()
        sum(o.square().mean() for o in outputs_with_grad(module, inputs)).backward()
    expected = dict(reference.named_parameters())
    scale = max(p.grad.abs().max().item() for p in expected.values() if p.grad is not None)
    worst = max((p.grad - expected[name].grad).abs().max().item() for name, p in optimised.named_parameters() if p.grad is not None)
    assert worst <= 1e-5 * scale, f"gradients differ by {worst} (largest gradient {scale})"
    return worst


def outputs_with_grad(neck: torch.nn.Module, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    result = neck(inputs)
    return list(result.values()) if isinstance(result, dict) else list(result)
