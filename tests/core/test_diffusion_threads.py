"""Diffusion training and sampling run on CPU with the `threads` they are given (default `CPU_THREADS`: torch's
own setting) and restore the caller's count.

Why: bench/bench_diffusion.py measured a training step 8-10x slower with torch's default of all cores than with one
thread on a 2-core machine busy with other work (what Dagster running other steps looks like), so the library
pins the count while it trains or samples, and must leave the process as it found it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wavefin_core.errors import ConfigError
from wavefin_core.models import DiffusionConfig, sample_diffusion, train_diffusion
from wavefin_core.models.diffusion_sampling import CPU_THREADS, cpu_threads

SHAPE = (1, 4, 8)
TINY = DiffusionConfig(block_out_channels=(8, 16), batch_size=4, epochs=1, max_steps=2)


@pytest.fixture
def two_threads():
    """The caller's setting is 2 threads (restored to what it was after the test)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _images(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, *SHAPE)).astype(np.float32)


@pytest.mark.usefixtures("two_threads")
def test_training_and_sampling_use_cpu_threads_then_restore_the_callers_count():
    seen = []
    result = train_diffusion(_images(), TINY, "cpu", threads=1,
                             progress=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [1] * 2 and torch.get_num_threads() == 2
    seen.clear()
    sample_diffusion(result.model, SHAPE, 2, num_inference_steps=2, device="cpu", threads=1,
                     train_scheduler=result.scheduler, progress=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [1] * 2 and torch.get_num_threads() == 2
    seen.clear()
    train_diffusion(_images(), TINY, "cpu", progress=lambda *_: seen.append(torch.get_num_threads()))
    assert seen == [CPU_THREADS or 2] * 2  # the default: torch's own setting (the caller's 2) unless CPU_THREADS


@pytest.mark.usefixtures("two_threads")
def test_threads_none_leaves_torchs_setting_and_other_devices_are_untouched():
    with cpu_threads("cpu", None):  # what train_diffusion / sample_diffusion(threads=None) run under
        assert torch.get_num_threads() == 2
    with cpu_threads("cuda", 1):  # a GPU's speed does not depend on the CPU's intra-op threads
        assert torch.get_num_threads() == 2
    with cpu_threads(torch.device("cpu"), 3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == 2


def test_cpu_threads_restores_the_count_after_an_error_and_refuses_zero():
    previous = torch.get_num_threads()
    with pytest.raises(RuntimeError), cpu_threads("cpu", 1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == previous
    with pytest.raises(ConfigError, match="threads=0"), cpu_threads("cpu", 0):
        pass
