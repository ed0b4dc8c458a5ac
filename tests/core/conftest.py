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


class Interrupt(Exception):
    """Stands for a crash of the training process in the in-process resume tests (the SIGKILL test does it for
    real)."""


def crash_resume_and_rerun(train, tmp_path, every: int, resumed_at: int) -> tuple:
    """The resume scenario every epoch-loop trainer must pass: (uninterrupted, resumed, again).

    `train(checkpointing=None, progress=None)` trains from scratch each call. It runs once uninterrupted, once
    with checkpoints every `every` steps and a crash after epoch 2's validation, once more to resume (which
    must log `resuming from step <resumed_at>`), and a last time after finishing, which must return at once
    from the final checkpoint without training (no progress call). The caller compares the three results.
    """
    from wavefin_core.models.checkpoint import Checkpointing

    def crash_after_epoch_2(epoch, total, row):
        if epoch == 2:
            raise Interrupt

    uninterrupted = train()
    logs: list[str] = []
    checkpointing = Checkpointing(tmp_path, every, log=logs.append)
    with pytest.raises(Interrupt):
        train(checkpointing, crash_after_epoch_2)
    resumed = train(checkpointing)
    assert logs == [f"resuming from step {resumed_at} (checkpoint {checkpointing.bound[0]})"]
    progress_calls: list[tuple] = []
    again = train(checkpointing, lambda *args: progress_calls.append(args))
    assert not progress_calls
    checkpointing.clear()
    assert not list(tmp_path.iterdir())
    return uninterrupted, resumed, again
