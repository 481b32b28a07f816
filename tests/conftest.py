"""Settings for the whole suite.

The suite runs in parallel (pytest-xdist, ``-n auto`` in pyproject's addopts, at most four
workers): on the two cores of CI it took 18.7 minutes in one process and 7.7 in two. Each
worker runs torch on one thread, so that the workers do not contend for the cores that torch's
own thread pool would also take.
"""

from __future__ import annotations

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
