"""Training tests run tiny models: one thread is faster for their small matmuls, and keeps them from
stalling on thread hand-offs when other processes share the cores."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
