"""Small helpers shared by the model trainers: devices, seeding, input checks, mini-batches, early stopping.

They live here so that the diffusion and classifier trainers read the same way and behave the same way on the
points the house rules care about: explicit seeds (same config, same numbers on CPU), user mistakes reported as
`ConfigError`/`DataError` naming the field, and progress reported through one callback shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from wavefin_core.device import pick_device
from wavefin_core.errors import ConfigError, DataError, NonFiniteError, TrainingDivergedError
from wavefin_core.io import atomic_directory

ProgressFn = Callable[[int, int, dict], None]
"""`progress(step, total, info)`: called from long loops so the Dagster layer can log and the CLI can use tqdm."""


def resolve_device(device: torch.device | str | None) -> torch.device:
    """Accept a `torch.device`, a preference string ("auto", "cpu", "cuda", "cuda:N") or None (= "auto")."""
    if isinstance(device, torch.device):
        return device
    return pick_device("auto" if device is None else device)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch for a block (weight init, dropout) and restore the caller's RNG state afterwards.

    Yields a CPU `torch.Generator` seeded with `seed` for the random draws the trainers make themselves (shuffling,
    noise, timesteps). Drawing those on the CPU and moving them to `device` makes the draws identical on every
    device, and forking the global RNG keeps a library call from silently changing the caller's random stream.
    """
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield torch.Generator(device="cpu").manual_seed(seed)


def check_positive(field: str, value: float | int | None, *, allow_none: bool = False) -> None:
    """Raise ConfigError unless `value` is > 0 (or None when allowed)."""
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"{field}={value!r} must be a positive number; set it to e.g. 1 or more.")


def check_scalograms(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Return `x` as a C-contiguous float32 array (N, C, S, T), or raise DataError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise DataError(f"{name} has shape {x.shape}; expected scalograms shaped (N, C, S, T).")
    if x.shape[0] == 0:
        raise DataError(f"{name} is empty (0 samples); produce at least one window before training.")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{name} has dtype {x.dtype}; expected floating-point scalograms.")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"{name} contains NaN or inf values; clean or drop those windows before training.")
    return x


def batches_from(order: torch.Tensor, batch_size: int, first_batch: int = 0) -> Iterator[torch.Tensor]:
    """The minibatches of one epoch's data `order`, starting at batch `first_batch` (to resume mid-epoch).

    Trainers draw `order` themselves (`torch.randperm(n, generator=...)`) so a checkpoint can store it: a run
    resumed mid-epoch then visits exactly the samples the interrupted one had left, in the same order.
    """
    for start in range(first_batch * batch_size, len(order), batch_size):
        yield order[start : start + batch_size]


def check_finite_loss(loss: float, step: int, what: str, learning_rate: float, loss_name: str = "loss") -> None:
    """Raise TrainingDivergedError when training step `step` of `what` produced a NaN or infinite loss.

    Called before the optimizer applies the step, so nothing non-finite reaches the weights or a checkpoint.
    """
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"{what} training diverged at step {step}: the {loss_name} is {loss}. Nothing was saved and the last good "
            f"model stays in place. Lower learning_rate (it is {learning_rate:g}; values around 1e-4 to 1e-3 "
            "are usual) and train again."
        )


def all_finite(tensor: torch.Tensor) -> bool:
    """True unless a floating-point `tensor` holds NaN or inf.

    CPU tensors are checked through numpy: one `torch.isfinite` call per tensor wakes torch's intra-op thread
    pool every time, which on a busy 2-core machine took 220 ms for the quick UNet's 144 tensors (numpy: 1 ms).
    """
    if not tensor.is_floating_point():
        return True
    if tensor.device.type == "cpu" and tensor.dtype in (torch.float16, torch.float32, torch.float64):
        return bool(np.isfinite(tensor.detach().numpy()).all())
    return bool(torch.isfinite(tensor).all())


def check_finite_weights(model: nn.Module, step: int, what: str, learning_rate: float) -> None:
    """Raise TrainingDivergedError when any weight or buffer of `model` is NaN or infinite after step `step`."""
    for name, tensor in model.state_dict().items():
        if not all_finite(tensor):
            raise TrainingDivergedError(
                f"{what} training diverged by step {step}: weight {name!r} holds NaN or inf values. Nothing "
                f"was saved and the last good model stays in place. Lower learning_rate (it is "
                f"{learning_rate:g}; values around 1e-4 to 1e-3 are usual) and train again."
            )


def check_finite_output(
    values: np.ndarray,
    what: str,
    fix: str = "the model's weights are unusable: retrain it (with a lower learning_rate if its training diverged)",
) -> np.ndarray:
    """Return `values`, or raise NonFiniteError when a model output (predictions, probabilities) is NaN/inf."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0]) if values.ndim else 0
        raise NonFiniteError(
            f"{what}: {int(bad.sum())} of {values.size} values are NaN or inf (first at row {first}); {fix}."
        )
    return values


class EarlyStopping:
    """Track the best validation loss, keep a copy of the best weights, and say when to stop.

    Stops after `patience` epochs without improvement; `restore(model)` puts the best weights back, so the model
    returned by a trainer is the one that validated best rather than the last one trained.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.best_loss = float("inf")
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self._epochs_without_improvement = 0

    def update(self, val_loss: float, model: nn.Module, epoch: int) -> bool:
        """Record epoch `epoch`'s validation loss; return True when training should stop."""
        if val_loss < self.best_loss - self.min_delta:
            self.best_loss = val_loss
            self.best_epoch = epoch
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self._epochs_without_improvement = 0
            return False
        self._epochs_without_improvement += 1
        return self._epochs_without_improvement >= self.patience

    def restore(self, model: nn.Module) -> None:
        """Load the best weights seen so far into `model` (no-op before the first update)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)  # copies into the existing parameters

    def checkpoint_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON part, tensors) of this tracker, for a training checkpoint."""
        meta = {
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self._epochs_without_improvement,
        }
        tensors = {f"best.{name}": tensor for name, tensor in (self.best_state or {}).items()}
        return meta, tensors

    def load_checkpoint_state(self, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of `checkpoint_state`."""
        self.best_loss = float(meta["best_loss"])
        self.best_epoch = int(meta["best_epoch"])
        self._epochs_without_improvement = int(meta["epochs_without_improvement"])
        best = {name[len("best.") :]: tensor for name, tensor in tensors.items() if name.startswith("best.")}
        self.best_state = best or None


def save_weights(model: nn.Module, meta: dict[str, Any], directory: str | Path, caller: str) -> Path:
    """Write `model.safetensors` + `config.json` (`meta`) under `directory`, atomically; no pickle.

    `meta` must carry `format`; `caller` names the public function in the error for a non-JSON `extra`.
    """
    try:
        meta_text = json.dumps(meta, indent=2)
    except TypeError as exc:
        raise ConfigError(f"{caller} extra= must be JSON-serialisable: {exc}") from exc
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    refuse_non_finite_state(state, directory)
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": meta["format"]})
        (tmp / "config.json").write_text(meta_text)
    return directory


def load_weights(
    directory: str | Path, format_name: str, format_version: int, what: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read what `save_weights` wrote: (meta, state dict), checking the format name and version."""
    directory = Path(directory)
    meta_path = directory / "config.json"
    weights_path = directory / "model.safetensors"
    if not meta_path.is_file() or not weights_path.is_file():
        raise DataError(f"{directory} is not a saved wavefin {what} (config.json or model.safetensors missing).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != format_name or meta.get("format_version", 0) > format_version:
        raise DataError(
            f"{meta_path} has format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this wavefin reads {format_name!r} up to version {format_version}."
        )
    return meta, load_file(str(weights_path))


def refuse_non_finite_state(state: dict[str, torch.Tensor], directory: str | Path) -> None:
    """Raise NonFiniteError before a model with NaN/inf weights is written to `directory` (nothing is written)."""
    for name, tensor in state.items():
        if not all_finite(tensor):
            raise NonFiniteError(
                f"refusing to save a model with NaN or inf weights ({name!r}) to {directory}; any model already "
                "there stays in place. Retrain with a lower learning_rate."
            )
