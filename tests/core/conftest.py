"""Fixtures shared by the library's tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One intra-op torch thread for a whole test module, restored afterwards.

    Tiny tensors run fastest on one thread (on a shared 2-core box, intra-op threads spin and run ~10x slower),
    and tests that compare a run with its resumed or repeated self need the very same computation in both.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
