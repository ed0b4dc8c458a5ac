"""What the model trainers share: devices, seeding, input checks, mini-batches, early stopping, the one
save/load pair of the model wrappers (`save_model` / `load_model`: model.safetensors + config.json), and the one
training loop of every neural direction classifier (`TrainingConfig`, `fit_classifier`, `FitResult`) with its
class balancing, ReduceLROnPlateau, prior matching, `count_parameters` and the `overfit_single_batch` check,
and the checkpoint/resume steps that loop shares with the Dense U-Net's (`resume_point`, `epoch_starts`,
`epoch_loop_state`).

They live here so that the diffusion and classifier trainers read the same way and behave the same way on the
points the house rules care about: explicit seeds (same config, same numbers on CPU), user mistakes reported as
`ConfigError`/`DataError` naming the field, and progress reported through one callback shape.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from wavefin_core.device import pick_device
from wavefin_core.errors import ConfigError, DataError, NonFiniteError, TrainingDivergedError
from wavefin_core.io import atomic_directory

if TYPE_CHECKING:  # checkpoint.py imports this module
    from wavefin_core.models.checkpoint import Checkpointer, Checkpointing, TrainingState

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


@dataclass(frozen=True)
class WeightsFormat:
    """What a saved model's config.json says it is (`name`, `version`) and what a load error calls it (`what`)."""

    name: str
    version: int
    what: str


def save_model(
    model: nn.Module,
    cfg: Any,
    directory: str | Path,
    fmt: WeightsFormat,
    caller: str,
    extra: dict[str, Any] | None = None,
    **fields: Any,
) -> Path:
    """Save a model wrapper's weights and meta the one way they all do: `save_weights` of a meta holding
    `format`, `format_version`, the `fields` the wrapper needs to rebuild the model (arch, shapes, ...),
    `config` (`cfg.to_dict()`) and the caller's JSON `extra`. `caller` names the public function in errors."""
    meta = {"format": fmt.name, "format_version": fmt.version, **fields, "config": cfg.to_dict(),
            "extra": extra or {}}
    return save_weights(model, meta, directory, caller)


def load_model(
    directory: str | Path,
    fmt: WeightsFormat,
    config_type: Any,
    build: Callable[[Any, dict[str, Any]], nn.Module],
    device: torch.device | str | None = "cpu",
    upgrade: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Load what `save_model` wrote: (model in eval mode on `device`, config, meta).

    `build(cfg, meta)` makes the untrained model from the config and the saved fields; `upgrade(state)` may
    adapt the state dict of an older save (e.g. buffers added since) before the weights are loaded.
    """
    meta, state = load_weights(directory, fmt.name, fmt.version, fmt.what)
    cfg = config_type.from_dict(meta["config"])
    model = build(cfg, meta)
    model.load_state_dict(upgrade(state) if upgrade is not None else state)
    model.to(resolve_device(device))
    model.eval()
    return model, cfg, meta


def refuse_non_finite_state(state: dict[str, torch.Tensor], directory: str | Path) -> None:
    """Raise NonFiniteError before a model with NaN/inf weights is written to `directory` (nothing is written)."""
    for name, tensor in state.items():
        if not all_finite(tensor):
            raise NonFiniteError(
                f"refusing to save a model with NaN or inf weights ({name!r}) to {directory}; any model already "
                "there stays in place. Retrain with a lower learning_rate."
            )


# ------------------------------------------------------------------------------------- direction classifiers
BALANCE_METHODS = ("weights", "sampler")
CLASS_NAMES = {2: ("down", "up"), 3: ("down", "flat", "up")}
"""Label meaning by number of classes: "up" is always the last class, so P(up) is `proba[:, -1]`."""


@dataclass
class TrainingConfig:
    """Optimisation settings every neural direction classifier shares (scalogram CNN/ViT, LSTMs, 1-D CNNs).

    - `patience` epochs without a lower validation loss stop training; the best epoch's weights are kept.
    - `balance_classes` counters class imbalance, by `balance_method`: "weights" (cross-entropy weighted by
      inverse training-label frequency) or "sampler" (each epoch draws n samples with replacement, every class
      equally likely, unweighted loss). Either way the validation loss is the class-balanced one.
    - `lr_patience` / `lr_factor`: ReduceLROnPlateau on the validation loss (multiply the learning rate by
      `lr_factor` after `lr_patience` + 1 epochs without improvement).
    - `prior_matching`: after training, shift the head's biases so that the classes predicted for the training
      windows occur as often as their labels' classes (the decision threshold moves to the matching quantile).
      A classifier whose logits barely vary otherwise predicts one class for every window: the "collapse" a
      balanced loss alone does not prevent, since with no signal any bias at all tips every argmax the same
      way. Where the model separates the training classes the shift stays inside the gap and changes nothing.
    """

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0
    max_steps: int | None = None
    balance_classes: bool = True
    balance_method: str = "weights"
    lr_patience: int = 1
    lr_factor: float = 0.5
    prior_matching: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Inverse of `to_dict`; unknown keys are a ConfigError so typos do not pass silently."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has unknown field(s) {unknown}; valid fields are {sorted(names)}."
            )
        return cls(**data)

    def validate(self) -> None:
        """Raise ConfigError naming the first optimisation field that cannot work."""
        for name in ("epochs", "batch_size", "patience", "lr_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
        for name in ("epochs", "batch_size", "learning_rate", "patience"):
            check_positive(name, getattr(self, name))
        check_positive("max_steps", self.max_steps, allow_none=True)
        if self.lr_patience < 0:
            raise ConfigError(f"lr_patience={self.lr_patience} must be >= 0 epochs; 1 is a good start.")
        if not 0.0 < self.lr_factor < 1.0:
            raise ConfigError(f"lr_factor={self.lr_factor} must be in (0, 1); 0.5 halves the learning rate.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        if self.balance_method not in BALANCE_METHODS:
            raise ConfigError(f"balance_method={self.balance_method!r} must be one of {BALANCE_METHODS}.")


@dataclass
class FitResult:
    """What every direction-classifier trainer returns.

    `model` holds the best validation epoch's weights (1-based `best_epoch`), in eval mode, with the prior-matching
    offsets (`logit_offset`, zeros when off) already added to its head's biases. `history` has one row per epoch
    (epoch, train_loss, val_loss, val_accuracy, val_balanced_accuracy, lr), measured before prior matching;
    `calibrated` holds the validation accuracy and balanced accuracy of the returned model. `params` counts the
    trainable parameters, `train_seconds` is the wall time of the whole fit (0 when a finished checkpoint was
    returned at once).
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    config: Any
    class_weights: list[float]
    n_classes: int = 2
    params: int = 0
    train_seconds: float = 0.0
    logit_offset: list[float] = field(default_factory=list)
    calibrated: dict[str, float] = field(default_factory=dict)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable parameters of `model` (what a report's "params" column shows)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def infer_n_classes(y: np.ndarray, n_classes: int | None) -> int:
    """`n_classes` when given (2 or 3), else 3 when the labels contain a 2 (down/flat/up), else 2 (down/up)."""
    if n_classes is None:
        y = np.asarray(y)
        n_classes = 3 if y.size and np.issubdtype(y.dtype, np.number) and (y == 2).any() else 2
    if n_classes not in CLASS_NAMES:
        raise ConfigError(f"n_classes={n_classes!r} must be 2 (down/up) or 3 (down/flat/up).")
    return int(n_classes)


def check_labels(y: np.ndarray, n: int, name: str, n_classes: int = 2) -> np.ndarray:
    """Return the direction labels `y` as int64, or raise DataError naming `name` and the valid labels."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{name} has shape {y.shape}; expected one label per sample, shape ({n},).")
    valid = tuple(range(n_classes))
    if y.size and not np.isin(y, valid).all():
        meaning = ", ".join(f"{k} ({label})" for k, label in enumerate(CLASS_NAMES[n_classes]))
        raise DataError(f"{name} must contain direction labels {meaning} only; found {np.unique(y)[:5]}.")
    return y.astype(np.int64)


def check_split_labels(
    y_train: np.ndarray, y_val: np.ndarray, n_train: int, n_val: int, n_classes: int | None = None
) -> tuple[int, np.ndarray, np.ndarray]:
    """(n_classes, y_train, y_val) for a trainer: the class count (`infer_n_classes` from the training labels
    when None) and both splits' labels checked against it and their sample counts (`check_labels`)."""
    n_classes = infer_n_classes(y_train, n_classes)
    return (n_classes, check_labels(y_train, n_train, "y_train", n_classes),
            check_labels(y_val, n_val, "y_val", n_classes))


def class_weights(y: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """Inverse-frequency weights n / (n_classes * count_c), mean 1 over the samples.

    Weighting the cross-entropy this way counters class imbalance: an unweighted loss on a 70/30 split is
    minimised by leaning towards the majority class, which inflates accuracy without any predictive skill.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    if (counts == 0).any():
        missing = [c for c in range(n_classes) if counts[c] == 0]
        raise DataError(
            f"y_train has no samples of class {missing}; every class ({', '.join(CLASS_NAMES[n_classes])}) must "
            "occur in the training split (use a longer training period, a different horizon or a narrower "
            "flat band)."
        )
    return counts.sum() / (n_classes * counts.astype(np.float64))


def balanced_order(y: torch.Tensor, weights: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """One epoch's sample order for the balanced sampler: len(y) draws with replacement, each class equally likely."""
    sample_weights = torch.as_tensor(weights, dtype=torch.float64)[y]
    return torch.multinomial(sample_weights, len(y), replacement=True, generator=generator)


def prior_matching_offsets(logits: np.ndarray, target: np.ndarray, iterations: int = 300) -> np.ndarray:
    """Per-class offsets b such that argmax(logits + b) predicts class k for about `target[k]` of the rows.

    Two classes: exact, a quantile of the logit difference. More: iterative proportional fitting of the biases
    (log target / predicted frequency, with a shrinking step), keeping the offsets that came closest. Only the
    inputs' logits are used, never their labels, so validation inputs can set it without leaking their labels.
    """
    logits = np.asarray(logits, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64) / np.sum(target)
    n, k = logits.shape
    if k == 2:
        diff = logits[:, 1] - logits[:, 0]
        # Predict "up" for the top target[1] fraction: threshold halfway between two neighbouring order statistics.
        ordered = np.sort(diff)
        cut = int(round(n * target[0]))
        if cut <= 0:
            threshold = ordered[0] - 1.0
        elif cut >= n:
            threshold = ordered[-1] + 1.0
        else:
            threshold = 0.5 * (ordered[cut - 1] + ordered[cut])
        return np.array([0.0, -threshold])
    offsets = -logits.mean(axis=0)
    best, best_gap = offsets.copy(), np.inf
    spread = float(np.std(logits)) + 1e-6
    for iteration in range(iterations):
        counts = np.bincount(np.argmax(logits + offsets, axis=1), minlength=k) / n
        gap = float(np.abs(counts - target).sum())
        if gap < best_gap:
            best, best_gap = offsets.copy(), gap
        if gap <= 1.0 / n:
            break
        step = spread / (1.0 + 0.05 * iteration)
        offsets = offsets + step * (np.log(target + 1e-3) - np.log(counts + 1e-3))
    return best - best.mean()


def accuracies(predicted: np.ndarray, y: np.ndarray, n_classes: int = 2) -> dict[str, float]:
    """Accuracy, and balanced accuracy (mean per-class recall), which a majority-class guess cannot inflate."""
    recalls = [float((predicted[y == c] == c).mean()) for c in range(n_classes) if (y == c).any()]
    return {"val_accuracy": float((predicted == y).mean()), "val_balanced_accuracy": float(np.mean(recalls))}


def model_logits(
    model: nn.Module, inputs: tuple[np.ndarray, ...], device: torch.device, batch_size: int
) -> torch.Tensor:
    """`model(*batch)` over prepared float32 `inputs` (each shaped (N, ...)), in batches, as CPU float32 logits."""
    outputs = []
    n = len(inputs[0])
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = [torch.from_numpy(part[start : start + batch_size]).to(device) for part in inputs]
            outputs.append(model(*batch).float().cpu())
    return torch.cat(outputs)


def predict_softmax(
    model: nn.Module,
    inputs: np.ndarray | tuple[np.ndarray, ...],
    device: torch.device | str | None,
    batch_size: int,
) -> np.ndarray:
    """Softmax of `model` over prepared inputs, in eval mode, restoring the model's train/eval state.

    `inputs` is one array or a tuple of arrays (the model's positional arguments); `device=None` uses the
    model's device. Returns float32 (N, n_classes); a NaN/inf output raises NonFiniteError.
    """
    check_positive("batch_size", batch_size)
    if not isinstance(inputs, tuple):
        inputs = (inputs,)
    if device is None:
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    else:
        device = resolve_device(device)
        model.to(device)
    was_training = model.training
    model.eval()
    try:
        proba = torch.softmax(model_logits(model, inputs, device, batch_size), dim=1).numpy().astype(np.float32)
        return check_finite_output(proba, f"{type(model).__name__} probabilities")
    finally:
        model.train(was_training)


def resume_point(
    checkpointer: Checkpointer | None,
    stopper: EarlyStopping,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    scheduler: Any,
) -> tuple[TrainingState, list[dict[str, float]]]:
    """Where an epoch loop with early stopping starts (`fit_classifier`, `train_dense_unet`): (state, history).

    With a usable checkpoint, model, optimizer, scheduler, RNGs and `stopper` are restored in place and the
    checkpoint's position and per-epoch history are returned; otherwise a fresh state and an empty history.
    One function, so that what such a loop saves (`epoch_loop_state`) and what it resumes cannot drift apart.
    """
    from wavefin_core.models.checkpoint import TrainingState

    state = checkpointer.restore(model, optimizer, generator, scheduler) if checkpointer is not None else None
    state = state or TrainingState()
    if "stopper" in state.extra:
        stopper.load_checkpoint_state(state.extra["stopper"], state.tensors)
    return state, list(state.extra.get("history", []))


def epoch_loop_state(
    steps: int, history: list[dict[str, float]], stopper: EarlyStopping, **position: Any
) -> TrainingState:
    """The checkpoint state of such a loop after `steps` optimizer steps (what `resume_point` reads back).

    `position` holds `TrainingState`'s epoch / batch / order / done, and `extra` the loop's own JSON values
    (the running loss sums of the epoch in progress).
    """
    from wavefin_core.models.checkpoint import TrainingState

    stopper_meta, stopper_tensors = stopper.checkpoint_state()
    extra = {"history": history, "stopper": stopper_meta, **position.pop("extra", {})}
    return TrainingState(step=steps, extra=extra, tensors=stopper_tensors, **position)


def epoch_starts(
    state: TrainingState, epochs: int, draw_order: Callable[[], torch.Tensor]
) -> Iterator[tuple[int, torch.Tensor, int, float, int]]:
    """The epochs such a loop still runs from `state`, each as (epoch index, data order, first batch, loss sum,
    samples seen): the epoch a checkpoint stopped in goes on with its saved order and running sums, every later
    one calls `draw_order()` at its start (so the trainer's generator is drawn at the same points as in an
    uninterrupted run). None after a finished training (`state.done`).
    """
    if state.done:
        return
    for epoch_index in range(state.epoch, epochs):
        if epoch_index == state.epoch and state.order is not None:
            yield epoch_index, state.order, state.batch, float(state.extra["loss_sum"]), int(state.extra["seen"])
        else:
            yield epoch_index, draw_order(), 0, 0.0, 0


def fit_classifier(
    build_model: Callable[[], nn.Module],
    train_inputs: tuple[np.ndarray, ...],
    y_train: np.ndarray,
    val_inputs: tuple[np.ndarray, ...],
    y_val: np.ndarray,
    cfg: TrainingConfig,
    device: torch.device,
    *,
    n_classes: int = 2,
    progress: ProgressFn | None = None,
    eval_batch_size: int = 256,
    checkpointing: Checkpointing | None = None,
    kind: str = "classifier",
) -> FitResult:
    """The training loop every neural direction classifier shares (scalogram CNN/ViT, LSTMs, 1-D CNNs).

    `build_model()` returns a module whose `forward(*inputs)` gives `n_classes` logits and whose last layer is a
    `head` nn.Linear (prior matching adds its offsets to the head's biases). `train_inputs` / `val_inputs` are
    tuples of prepared float32 arrays (N, ...), e.g. (scalograms,) or (scalograms, indicators). Labels are
    already checked (`check_labels`).

    AdamW; class-balanced cross-entropy or a balanced sampler (`cfg.balance_classes`, `cfg.balance_method`);
    ReduceLROnPlateau and early stopping on the class-balanced validation loss; the returned model holds the best
    validation epoch's weights, then prior matching (`cfg.prior_matching`). Deterministic for `cfg.seed` on CPU.
    With `checkpointing` (a `Checkpointing`), the loop's complete state (scheduler and early stopping included)
    is saved every `checkpointing.every` optimizer steps under `kind`, and a checkpoint of the same config and
    data is resumed exactly. A NaN/inf training or validation loss raises TrainingDivergedError naming the step.
    """
    from wavefin_core.models.checkpoint import fingerprint

    started = time.perf_counter()
    cfg.validate()
    weights = class_weights(y_train, n_classes) if cfg.balance_classes else np.ones(n_classes)
    sampler = cfg.balance_classes and cfg.balance_method == "sampler"
    n = len(y_train)
    batch_size = min(cfg.batch_size, n)
    data = tuple(torch.from_numpy(part) for part in train_inputs)
    labels, val_labels = torch.from_numpy(y_train), torch.from_numpy(y_val)
    stopper = EarlyStopping(cfg.patience)
    checkpointer = None
    if checkpointing is not None:
        digest = fingerprint(kind, cfg.to_dict(), *train_inputs, y_train, *val_inputs, y_val)
        checkpointer = checkpointing.bind(kind, digest)

    with seeded(cfg.seed, device) as generator:
        model = build_model().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
        )
        weight_tensor = torch.tensor(weights, dtype=torch.float32)
        criterion = nn.CrossEntropyLoss(weight=None if sampler else weight_tensor.to(device))
        state, history = resume_point(checkpointer, stopper, model, optimizer, generator, scheduler)
        finished_before = state.done
        steps = state.step

        def draw_order() -> torch.Tensor:
            return balanced_order(labels, weights, generator) if sampler else torch.randperm(n, generator=generator)

        for epoch_index, order, first_batch, loss_sum, seen in epoch_starts(state, cfg.epochs, draw_order):
            epoch = epoch_index + 1
            model.train()
            for batch, index in enumerate(batches_from(order, batch_size, first_batch), start=first_batch + 1):
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
                logits = model(*(part[index].to(device) for part in data))
                loss = criterion(logits, labels[index].to(device))
                check_finite_loss(loss.item(), steps + 1, kind, cfg.learning_rate)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(index)
                seen += len(index)
                steps += 1
                if checkpointer is not None and checkpointer.due(steps):
                    position = {"loss_sum": loss_sum, "seen": seen}
                    checkpointer.save(
                        epoch_loop_state(steps, history, stopper, epoch=epoch_index, batch=batch, order=order,
                                         extra=position),
                        model, optimizer, generator, scheduler)
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break

            model.eval()
            val_logits = model_logits(model, val_inputs, device, max(batch_size, eval_batch_size))
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "val_loss": F.cross_entropy(val_logits, val_labels, weight=weight_tensor).item(),
                **accuracies(val_logits.argmax(1).numpy(), y_val, n_classes),
                "lr": float(optimizer.param_groups[0]["lr"]),
            }
            check_finite_loss(row["val_loss"], steps, kind, cfg.learning_rate, loss_name="validation loss")
            history.append(row)
            if progress is not None:
                progress(epoch, cfg.epochs, row)
            scheduler.step(row["val_loss"])
            should_stop = stopper.update(row["val_loss"], model, epoch)
            if should_stop or (cfg.max_steps is not None and steps >= cfg.max_steps):
                break
        stopper.restore(model)
        model.eval()
        check_finite_weights(model, steps, kind, cfg.learning_rate)
        if checkpointer is not None and not state.done:
            checkpointer.save(epoch_loop_state(steps, history, stopper, epoch=cfg.epochs, done=True),
                              model, optimizer, generator, scheduler)

    offsets = np.zeros(n_classes)
    val_logits = model_logits(model, val_inputs, device, max(batch_size, eval_batch_size)).numpy()
    if cfg.prior_matching:
        train_logits = model_logits(model, train_inputs, device, max(batch_size, eval_batch_size)).numpy()
        target = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        offsets = prior_matching_offsets(train_logits, target)
        add_head_bias(model, offsets)
    calibrated = accuracies(np.argmax(val_logits + offsets, axis=1), y_val, n_classes)
    return FitResult(
        model=model,
        history=history,
        best_epoch=stopper.best_epoch,
        config=cfg,
        class_weights=[float(w) for w in weights],
        n_classes=n_classes,
        params=count_parameters(model),
        train_seconds=0.0 if finished_before else time.perf_counter() - started,
        logit_offset=[float(v) for v in offsets],
        calibrated=calibrated,
    )


def add_head_bias(model: nn.Module, offsets: np.ndarray) -> None:
    """Add per-class `offsets` to the biases of `model.head` (an nn.Linear), so saved weights carry them."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or head.bias is None:
        raise TypeError(f"{type(model).__name__} needs a `head` nn.Linear with a bias for prior matching.")
    with torch.no_grad():
        head.bias.add_(torch.as_tensor(offsets, dtype=head.bias.dtype, device=head.bias.device))


def overfit_single_batch(
    model_builder: Callable[[], nn.Module],
    x: np.ndarray | torch.Tensor | tuple[np.ndarray | torch.Tensor, ...],
    y: np.ndarray | torch.Tensor,
    steps: int = 200,
    learning_rate: float = 1e-2,
    seed: int = 0,
) -> float:
    """Train a fresh `model_builder()` on the one batch (x, y) for `steps` Adam steps; return the final loss.

    The sanity check every model family must pass (seed 004's single-batch overfit): a model that cannot drive
    the cross-entropy of a handful of samples to ~0 has a wiring bug (detached graph, wrong head, frozen
    weights), whatever its accuracy on real data says. Runs in train mode (batch-norm on batch statistics), so
    build the model without dropout. `x` may be a tuple of the model's positional inputs.
    """
    check_positive("steps", steps)
    parts = x if isinstance(x, tuple) else (x,)
    inputs = tuple(torch.as_tensor(np.asarray(p, dtype=np.float32)) for p in parts)
    labels = torch.as_tensor(np.asarray(y, dtype=np.int64))
    loss_value = float("nan")
    with seeded(seed, torch.device("cpu")):
        model = model_builder()
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        for _ in range(int(steps)):
            loss = F.cross_entropy(model(*inputs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
    return loss_value


@contextmanager
def cpu_threads(device: torch.device | str | None, threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op torch threads if `device` is the CPU, then restore the previous count.

    `threads=None` leaves torch's setting alone (e.g. all cores of an otherwise idle many-core machine).
    """
    if threads is None or torch.device(device or "cpu").type != "cpu":
        yield
        return
    check_positive("threads", threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
