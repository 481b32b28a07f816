"""Deterministic values for a sweep's weights and inputs, the same in any environment.

A sweep records hundreds of configurations. Storing each reference's ``state_dict`` and inputs
would take tens of megabytes, so the recorder (``record.py``, in the peers environment) and the
test (``test_sweeps.py``, in the project's) both draw them from this module, keyed by name:
numpy's legacy ``RandomState`` stream, which numpy keeps identical across versions, seeded with
a CRC of the entry's name. Only the outputs (and buffers the reference computes itself, such as
a positional embedding) are stored.

Numbers: what ``../shared/peers/make_fixtures.py``'s ``randomise`` gives, so every parameter
and norm statistic is non-trivial (a swapped key, a wrong padding or a wrong op order shows):
kernels ``N(0, 1/fan_in)``, norm scales ``U(0.5, 1.5)``, fusion weights ``U(0.2, 1.5)``, running
variances ``U(0.5, 1.5)``, biases and means ``N(0, 0.01)``.

Pure Python and numpy: no torch here, so both environments import the same code.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

__all__ = ["FILLED_BUFFERS", "is_filled", "weight_values", "input_values"]

FILLED_BUFFERS = ("running_mean", "running_var")
"""Buffers drawn like parameters; every other buffer is recorded as the reference computed it."""


def _stream(seed: str) -> np.random.RandomState:
    return np.random.RandomState(zlib.crc32(seed.encode()))


def is_filled(key: str, is_parameter: bool) -> bool:
    """Whether the value under ``key`` is drawn here (parameters and norm statistics)."""
    return is_parameter or key.rsplit(".", 1)[-1] in FILLED_BUFFERS


def weight_values(key: str, shape: Sequence[int], seed: int = 1234) -> np.ndarray:
    """The float32 value of the parameter or norm statistic named ``key`` (the reference's name)."""
    rng = _stream(f"{seed}:{key}")
    shape = tuple(int(s) for s in shape)
    last = key.rsplit(".", 1)[-1]
    if last == "running_var":
        value = rng.random_sample(shape) + 0.5
    elif last == "running_mean":
        value = rng.standard_normal(shape) * 0.1
    elif len(shape) >= 2:
        fan_in = int(np.prod(shape[1:])) or 1
        value = rng.standard_normal(shape) / np.sqrt(fan_in)
    elif key.endswith("edge_weights") or "weight_" in last or key.endswith(".w"):
        value = rng.random_sample(shape) * 1.3 + 0.2
    elif last == "weight":  # a norm's scale
        value = rng.random_sample(shape) + 0.5
    else:
        value = rng.standard_normal(shape) * 0.1
    return np.ascontiguousarray(value, dtype=np.float32)


def input_values(case_id: str, index: int, shape: Sequence[int]) -> np.ndarray:
    """Input ``index`` of one run of ``case_id``: ``N(0, 1)``, float32."""
    rng = _stream(f"input:{case_id}:{index}:{'x'.join(str(int(s)) for s in shape)}")
    return np.ascontiguousarray(rng.standard_normal(tuple(int(s) for s in shape)), dtype=np.float32)
