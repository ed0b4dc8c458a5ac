"""Small helpers shared by the model trainers: devices, seeding, input checks, mini-batches, early stopping.

They live here so that the diffusion and classifier trainers read the same way and behave the same way on the
points the house rules care about: explicit seeds (same config, same numbers on CPU), user mistakes reported as
`ConfigError`/`DataError` naming the field, and progress reported through one callback shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from wavefin_core.device import pick_device
from wavefin_core.errors import ConfigError, DataError
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


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield index tensors covering range(n) in batches; shuffled with `generator` when one is given.

    The last batch may be smaller: with the small datasets of the quick profile, dropping it would waste data.
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


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


def save_weights(model: nn.Module, meta: dict[str, Any], directory: str | Path, caller: str) -> Path:
    """Write `model.safetensors` + `config.json` (`meta`) under `directory`, atomically; no pickle.

    `meta` must carry `format`; `caller` names the public function in the error for a non-JSON `extra`.
    """
    try:
        meta_text = json.dumps(meta, indent=2)
    except TypeError as exc:
        raise ConfigError(f"{caller} extra= must be JSON-serialisable: {exc}") from exc
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
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
