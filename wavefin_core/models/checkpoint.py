"""Training checkpoints: save a training loop's complete state every N steps and resume it exactly.

A checkpoint holds everything a loop needs to carry on as if it had never stopped: model weights, optimizer
state (+ LR scheduler state if any), the torch / numpy / python RNG states and the trainer's own data-order
generator, the position in the loop (step, epoch, minibatch within the epoch and that epoch's data order) and
what the loop has recorded so far (losses, history, early-stopping state). So a resumed run performs exactly the
operations an uninterrupted one would: on the same machine and thread count its final weights are bitwise equal.

Tensors go to `state.safetensors` (optimizer state flattened into it, torch RNG states as uint8 tensors, numpy's
MT19937 key as int64) and the rest to `state.json`; no pickle, and `torch.load` is never used. The pair is written with `atomic_directory`, so a
kill during a save leaves the previous checkpoint in place.

A checkpoint carries a fingerprint of the trainer kind, its config and its training data: a checkpoint written
for another config or other data is never resumed (it is ignored with a log line and training starts over).
Checkpoints live under `<directory>/<kind>-<fingerprint>/`; the caller removes them (`Checkpointing.clear`)
once the final model is saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wavefin_core.errors import ConfigError, TrainingDivergedError
from wavefin_core.io import atomic_directory
from wavefin_core.models.training import all_finite

FORMAT_NAME = "wavefin-checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"
FINGERPRINT_CHARS = 16
RNG_TENSORS = ("rng.generator", "rng.torch", "rng.numpy_keys")

LogFn = Callable[[str], None]
_logger = logging.getLogger(__name__)


def fingerprint(kind: str, config: dict[str, Any], *arrays: np.ndarray) -> str:
    """A hex digest of the trainer kind, its config and its training arrays (dtype, shape and bytes).

    Two trainings share a fingerprint only if they would perform the same computation (up to the device), which
    is the condition for one to resume the other's checkpoint.
    """
    digest = hashlib.sha256()
    header = {"kind": kind, "config": config, "checkpoint_format": FORMAT_VERSION}
    digest.update(json.dumps(header, sort_keys=True, default=str).encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


@dataclass
class TrainingState:
    """Where a training loop stands: the part of a checkpoint that is not model, optimizer or RNG state.

    `epoch` is the 0-based epoch in progress, `batch` the number of its minibatches already done and `order` its
    data order (None before the epoch's order is drawn). `done` marks a finished training, whose checkpoint the
    caller can return at once. `extra` (JSON) and `tensors` hold whatever else a trainer records.
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0
    order: torch.Tensor | None = None
    losses: list[float] = field(default_factory=list)
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Checkpointing:
    """The caller's checkpoint policy: where checkpoints live and how many optimizer steps apart.

    One `Checkpointing` may serve several trainings (the forecasters asset trains three models); each gets its
    own sub-directory by kind and fingerprint, and `clear()` removes all of them once the caller has saved the
    final models. `log` receives the human-readable lines ("resuming from step N", ignored checkpoints).
    """

    directory: str | Path
    every: int
    log: LogFn = _logger.info
    bound: list[Path] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if isinstance(self.every, bool) or not isinstance(self.every, (int, np.integer)) or self.every < 1:
            raise ConfigError(
                f"checkpoint_every={self.every!r} must be a positive number of optimizer steps, e.g. 200."
            )

    def bind(self, kind: str, digest: str) -> Checkpointer:
        """The checkpointer of one training (`kind`, fingerprint `digest`); mentions stale siblings in the log."""
        path = Path(self.directory) / f"{kind}-{digest[:FINGERPRINT_CHARS]}"
        if Path(self.directory).is_dir():
            for other in sorted(Path(self.directory).glob(f"{kind}-*")):
                if other != path and other.is_dir() and not other.name.startswith("."):
                    self.log(
                        f"ignoring checkpoint {other}: it was written for a different config or training data "
                        "(its fingerprint differs); it is not resumed."
                    )
        self.bound.append(path)
        return Checkpointer(path, digest, int(self.every), self.log)

    def clear(self) -> None:
        """Remove the checkpoints of every training bound so far (call it after the final model is saved)."""
        for path in self.bound:
            shutil.rmtree(path, ignore_errors=True)
        self.bound.clear()


class Checkpointer:
    """Saves and restores one training's state under `path`; the trainers call it, callers use `Checkpointing`."""

    def __init__(self, path: Path, digest: str, every: int, log: LogFn) -> None:
        self.path = path
        self.fingerprint = digest
        self.every = every
        self.log = log

    def due(self, step: int) -> bool:
        """True when a checkpoint should be written after optimizer step `step`."""
        return step % self.every == 0

    def save(
        self,
        state: TrainingState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        lr_scheduler: Any = None,
    ) -> None:
        """Write the complete training state atomically; refuse (TrainingDivergedError) anything non-finite."""
        tensors: dict[str, torch.Tensor] = {}
        tensors.update(_prefixed("model.", model.state_dict()))
        optimizer_tensors, optimizer_meta = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optimizer_tensors)
        tensors.update(_prefixed("extra.", state.tensors))
        tensors.update(_rng_tensors(generator, model))
        if state.order is not None:
            tensors["order"] = state.order
        # On the CPU these are views of the live tensors (no copy): safetensors writes them before training
        # continues. On a GPU, `.to("cpu")` copies.
        tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in tensors.items()}
        _refuse_non_finite(tensors, state)
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "step": state.step,
            "epoch": state.epoch,
            "batch": state.batch,
            "done": state.done,
            "losses": state.losses,
            "extra": state.extra,
            "optimizer": optimizer_meta,
            "lr_scheduler": lr_scheduler.state_dict() if lr_scheduler is not None else None,
            "rng": _rng_json(),
        }
        with atomic_directory(self.path) as tmp:
            save_file(tensors, str(tmp / TENSORS_FILE), metadata={"format": FORMAT_NAME})
            (tmp / META_FILE).write_text(json.dumps(meta))

    def restore(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        lr_scheduler: Any = None,
    ) -> TrainingState | None:
        """Load the checkpoint into model, optimizer, scheduler and RNGs and return the loop state.

        Returns None (train from scratch) when there is no checkpoint, or when it cannot be used: another
        fingerprint or format, or unreadable files. Those cases are logged, never raised: a checkpoint is an
        optimisation, and the worst outcome of ignoring one is redoing work.
        """
        meta_path, tensors_path = self.path / META_FILE, self.path / TENSORS_FILE
        if not meta_path.is_file() or not tensors_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
                self.log(f"ignoring checkpoint {self.path}: format {meta.get('format')!r} "
                         f"version {meta.get('format_version')!r} is not {FORMAT_NAME!r} {FORMAT_VERSION}.")
                return None
            if meta.get("fingerprint") != self.fingerprint:
                self.log(f"ignoring checkpoint {self.path}: it was written for a different config or training "
                         "data (its fingerprint differs); training starts from step 0.")
                return None
            tensors = load_file(str(tensors_path))
            optimizer_state = _unflatten_optimizer(tensors, meta["optimizer"])
            missing = [key for key in RNG_TENSORS if key not in tensors]
            if missing or not {"numpy", "python"} <= set(meta["rng"]):
                raise KeyError(f"RNG state {missing or sorted(meta['rng'])}")
            state = TrainingState(
                step=int(meta["step"]),
                epoch=int(meta["epoch"]),
                batch=int(meta["batch"]),
                order=tensors.get("order"),
                losses=[float(v) for v in meta["losses"]],
                done=bool(meta["done"]),
                extra=meta["extra"],
                tensors=_unprefixed("extra.", tensors),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
            self.log(f"ignoring unreadable checkpoint {self.path} ({type(exc).__name__}: {exc}); training starts "
                     "from step 0.")
            return None

        model.load_state_dict(_unprefixed("model.", tensors))
        optimizer.load_state_dict(optimizer_state)
        if lr_scheduler is not None and meta.get("lr_scheduler") is not None:
            lr_scheduler.load_state_dict(meta["lr_scheduler"])
        _restore_rng(tensors, meta["rng"], generator, model)
        self.log(f"resuming from step {state.step} (checkpoint {self.path})")
        return state


def _prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}{name}": tensor for name, tensor in tensors.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name[len(prefix) :]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors-ready tensors and a JSON-ready remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{name}"] = value
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = tensor
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    groups = [{**group, "betas": tuple(group["betas"])} if "betas" in group else group
              for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _rng_tensors(generator: torch.Generator, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    tensors = {
        "rng.generator": generator.get_state(),
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
    }
    device = _device_of(model)
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return tensors


def _rng_json() -> dict[str, Any]:
    _, _, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": {"pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def _restore_rng(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], generator: torch.Generator, model: torch.nn.Module
) -> None:
    generator.set_state(tensors["rng.generator"])
    torch.set_rng_state(tensors["rng.torch"])
    device = _device_of(model)
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    numpy_meta = meta["numpy"]
    np.random.set_state((
        "MT19937", tensors["rng.numpy_keys"].numpy().astype(np.uint32), numpy_meta["pos"],
        numpy_meta["has_gauss"], numpy_meta["cached_gaussian"],
    ))
    python_meta = meta["python"]
    random.setstate((python_meta["version"], tuple(python_meta["internal"]), python_meta["gauss_next"]))


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _refuse_non_finite(tensors: dict[str, torch.Tensor], state: TrainingState) -> None:
    for name, tensor in tensors.items():
        if not all_finite(tensor):
            raise TrainingDivergedError(
                f"training diverged by step {state.step}: {name} holds NaN or inf values, so no checkpoint is "
                "written and the last good one stays in place. Lower learning_rate (or set a gradient clip) "
                "and train again."
            )
    bad = [i for i, loss in enumerate(state.losses) if not math.isfinite(loss)]
    if bad:
        raise TrainingDivergedError(
            f"training diverged at step {bad[0] + 1}: the loss is {state.losses[bad[0]]}; no checkpoint is "
            "written. Lower learning_rate and train again."
        )
