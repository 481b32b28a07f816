"""The shared pass checker (as torch.fx's ``test_cse_pass``): op-count change, idempotence,
invariants and identical outputs of the compiled module with and without the pass."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import pytest
import torch

import pyramidgraph
from pyramidgraph.ir import IRGraph
from pyramidgraph.passes import PASSES, PassResult


def op_counts(ir: IRGraph) -> Counter:
    """How many IR ops of each op class (``Upsample``, ``Sum``, ``Conv``...)."""
    return Counter(type(op.op).__name__ for op in ir.ops)


def output_shapes(ir: IRGraph) -> list:
    values = ir.values()
    return [(name, values[value]) for name, value in ir.outputs]


def check_pass(name: str, ir: IRGraph, delta: dict[str, int]) -> PassResult:
    """Run pass ``name`` on ``ir``: the op counts change by ``delta`` (op class -> change; a
    pass that finds nothing gets ``{}``), ``changed`` says so, the IR stays valid with the same
    output shapes, the input IR is untouched, and a second run changes nothing."""
    run: Callable[[IRGraph], PassResult] = PASSES[name]
    before = op_counts(ir)
    ops_before = list(ir.ops)
    result = run(ir)
    after = op_counts(result.graph)
    change = {k: after[k] - before[k] for k in before | after if after[k] != before[k]}
    assert change == delta
    assert result.changed is bool(delta)
    result.graph.check()
    assert output_shapes(result.graph) == output_shapes(ir)
    assert ir.ops == ops_before  # passes return a new graph
    again = run(result.graph)
    assert again.changed is False
    assert [op.name for op in again.graph.ops] == [op.name for op in result.graph.ops]
    return result


def check_outputs_match(spec, passes: tuple[str, ...], in_channels=None, image=(64, 96), **params) -> None:
    """compile(..., passes=()) and compile(..., passes=passes) give identical outputs on the
    same weights (the state_dict of one loaded into the other)."""
    torch.manual_seed(0)
    plain = pyramidgraph.compile(spec, in_channels, passes=(), **params)
    optimised = pyramidgraph.compile(spec, in_channels, passes=passes, **params)
    assert list(optimised.state_dict()) == list(plain.state_dict())
    optimised.load_state_dict(plain.state_dict())
    plain.eval()
    optimised.eval()
    torch.manual_seed(1)
    inputs = plain.example_inputs(batch=2, image=image)
    with torch.no_grad():
        a, b = plain(inputs), optimised(inputs)
    a = list(a.values()) if isinstance(a, dict) else list(a)
    b = list(b.values()) if isinstance(b, dict) else list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.fixture
def checker():
    class Checker:
        counts = staticmethod(op_counts)
        run = staticmethod(check_pass)
        outputs_match = staticmethod(check_outputs_match)

    return Checker
