"""Direction classifiers on scalograms: a small CNN and a small Vision Transformer, with one training loop.

Both take (N, C, S, T) scalograms of any S and T (the CNN through ceil-mode pooling and global average pooling,
the ViT by zero-padding to a multiple of its patch size) and output logits for the next move's direction
(0 = down, 1 = up). Inputs are expected already scaled by the caller, which fits the scaling on the training
split only; standardising here would leak validation statistics into the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.checkpoint import Checkpointing, TrainingState, fingerprint
from wavefin_core.models.training import (
    EarlyStopping,
    ProgressFn,
    batches_from,
    check_finite_loss,
    check_finite_output,
    check_finite_weights,
    check_positive,
    check_scalograms,
    load_weights,
    resolve_device,
    save_weights,
    seeded,
)

ARCHS = ("cnn", "vit")
N_CLASSES = 2
FORMAT_NAME = "wavefin-classifier"
FORMAT_VERSION = 1


@dataclass
class ClassifierConfig:
    """Architecture and optimisation settings of a scalogram direction classifier.

    `patience` epochs without a lower validation loss stop training, and the best epoch's weights are kept.
    `balance_classes` weights the cross-entropy by inverse training-label frequency (see `class_weights`).
    `patch_size`, `embed_dim`, `depth` and `num_heads` only matter for arch="vit", `channels` only for "cnn".
    """

    arch: str = "cnn"
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0
    max_steps: int | None = None
    balance_classes: bool = True
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        data["channels"] = list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        """Inverse of `to_dict`; unknown keys are a ConfigError so typos do not pass silently."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"ClassifierConfig has unknown field(s) {unknown}; valid fields are {sorted(names)}."
            )
        return cls(**data)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        if self.arch not in ARCHS:
            raise ConfigError(f"arch={self.arch!r} is not one of {ARCHS}.")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(
                f"channels={self.channels!r} must be a non-empty tuple of positive ints, e.g. (16, 32, 64)."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1); 0.2 is a good start.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        for name in (
            "epochs",
            "batch_size",
            "learning_rate",
            "patience",
            "patch_size",
            "embed_dim",
            "depth",
            "num_heads",
        ):
            check_positive(name, getattr(self, name))
        check_positive("max_steps", self.max_steps, allow_none=True)
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads}; e.g. embed_dim=64, num_heads=4."
            )


class ScalogramCNN(nn.Module):
    """Conv-BN-ReLU-maxpool blocks, global average pooling, dropout and a linear head.

    Ceil-mode pooling never shrinks a dimension to zero and global pooling removes the dependence on (S, T), so
    any scalogram size works, including a few scales only.
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: int = N_CLASSES,
        channels: tuple[int, ...] = (16, 32, 64),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(previous, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.features(x)).flatten(1)
        return self.head(self.dropout(features))


class ScalogramViT(nn.Module):
    """A small Vision Transformer: Conv2d patch embedding, CLS token, learned positions, pre-norm encoder.

    The input is zero-padded on the bottom/right to a multiple of `patch_size`, and the positional embedding is
    sized for that padded grid, so the model is tied to the (S, T) it was built for.
    """

    def __init__(
        self,
        in_channels: int,
        input_size: tuple[int, int],
        n_outputs: int = N_CLASSES,
        patch_size: int = 8,
        embed_dim: int = 64,
        depth: int = 2,
        num_heads: int = 4,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.patch_size = patch_size
        grid = [math.ceil(size / patch_size) for size in self.input_size]
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0] * grid[1] + 1, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=embed_dim,
            nhead=num_heads,
            dim_feedforward=4 * embed_dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"ScalogramViT was built for (S, T)={self.input_size}, got {tuple(x.shape[-2:])}."
            )
        pad_h = -x.shape[-2] % self.patch_size
        pad_w = -x.shape[-1] % self.patch_size
        x = F.pad(x, (0, pad_w, 0, pad_h))
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, embed_dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        encoded = self.encoder(tokens)
        return self.head(self.norm(encoded[:, 0]))


def build_classifier(
    cfg: ClassifierConfig, input_shape: tuple[int, int, int], n_outputs: int = N_CLASSES
) -> nn.Module:
    """The model `cfg.arch` describes, for inputs shaped `input_shape` = (C, S, T)."""
    cfg.validate()
    channels, height, width = (int(v) for v in input_shape)
    if cfg.arch == "cnn":
        return ScalogramCNN(channels, n_outputs, cfg.channels, cfg.dropout)
    return ScalogramViT(
        channels,
        (height, width),
        n_outputs,
        cfg.patch_size,
        cfg.embed_dim,
        cfg.depth,
        cfg.num_heads,
        cfg.dropout,
    )


@dataclass
class ClassifierResult:
    """What `train_classifier` returns: the model with its best-validation weights (in eval mode) and the curves.

    `history` has one dict per epoch run (epoch, train_loss, val_loss, val_accuracy, val_balanced_accuracy);
    `best_epoch` is the 1-based epoch whose weights the model holds.
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    config: ClassifierConfig
    class_weights: list[float]


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{name} has shape {y.shape}; expected one label per sample, shape ({n},).")
    if y.size and not np.isin(y, (0, 1)).all():
        raise DataError(
            f"{name} must contain direction labels 0 (down) and 1 (up) only; found {np.unique(y)[:5]}."
        )
    return y.astype(np.int64)


def class_weights(y: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Inverse-frequency weights n / (n_classes * count_c), mean 1 over the samples.

    Weighting the cross-entropy this way counters class imbalance: an unweighted loss on a 70/30 split is
    minimised by leaning towards the majority class, which inflates accuracy without any predictive skill.
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
    if (counts == 0).any():
        missing = [c for c in range(n_classes) if counts[c] == 0]
        raise DataError(
            f"y_train has no samples of class {missing}; both directions must occur in the training split "
            "(use a longer training period or a different horizon)."
        )
    return counts.sum() / (n_classes * counts.astype(np.float64))


def _logits(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int) -> torch.Tensor:
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start : start + batch_size]).to(device)
            outputs.append(model(batch).float().cpu())
    return torch.cat(outputs)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: ClassifierConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
) -> ClassifierResult:
    """Train `cfg.arch` on binary direction labels with class-weighted cross-entropy and AdamW.

    Validation loss (same weighted cross-entropy) drives early stopping; the returned model holds the weights of
    the best validation epoch. Deterministic for a given `cfg.seed` on CPU. `progress(epoch, cfg.epochs, row)`
    is called after every epoch with that epoch's history row. `checkpointing` saves and resumes the training
    state (see `fit_direction_model`).
    """
    cfg.validate()
    x_train = check_scalograms(x_train, "x_train")
    x_val = check_scalograms(x_val, "x_val")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"x_val samples are shaped {x_val.shape[1:]} but x_train samples {x_train.shape[1:]}."
        )
    y_train = _check_labels(y_train, len(x_train), "y_train")
    y_val = _check_labels(y_val, len(x_val), "y_val")
    model, history, best_epoch, weights = fit_direction_model(
        lambda: build_classifier(cfg, x_train.shape[1:]), x_train, y_train, x_val, y_val, cfg,
        resolve_device(device), progress, eval_batch_size=256, checkpointing=checkpointing,
        kind=f"classifier-{cfg.arch}",
    )
    return ClassifierResult(
        model=model, history=history, best_epoch=best_epoch, config=cfg,
        class_weights=[float(w) for w in weights],
    )


def fit_direction_model(
    build_model: Callable[[], nn.Module],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: Any,
    device: torch.device,
    progress: ProgressFn | None = None,
    eval_batch_size: int = 256,
    checkpointing: Checkpointing | None = None,
    kind: str = "classifier",
) -> tuple[nn.Module, list[dict[str, float]], int, np.ndarray]:
    """The training loop every direction classifier shares (scalogram CNN/ViT, LSTMs).

    Class-weighted cross-entropy (`cfg.balance_classes`) with AdamW; validation loss with the same weights drives
    early stopping, and the returned model holds the best validation epoch's weights. `cfg` needs `seed`,
    `epochs`, `batch_size`, `learning_rate`, `weight_decay`, `patience`, `max_steps`, `balance_classes` and
    `to_dict()`. With `checkpointing`, the loop's complete state (early stopping included) is saved every
    `checkpointing.every` optimizer steps under `kind` and a checkpoint of the same config and data is resumed
    exactly. A NaN/inf training or validation loss raises TrainingDivergedError naming the step.
    Returns (model, history, best_epoch, class weights).
    """
    weights = class_weights(y_train) if cfg.balance_classes else np.ones(N_CLASSES)
    n = len(x_train)
    batch_size = min(cfg.batch_size, n)
    data, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    val_labels = torch.from_numpy(y_val)
    stopper = EarlyStopping(cfg.patience)
    checkpointer = None
    if checkpointing is not None:
        digest = fingerprint(kind, cfg.to_dict(), x_train, y_train, x_val, y_val)
        checkpointer = checkpointing.bind(kind, digest)

    with seeded(cfg.seed, device) as generator:
        model = build_model().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        weight_tensor = torch.tensor(weights, dtype=torch.float32)
        criterion = nn.CrossEntropyLoss(weight=weight_tensor.to(device))
        state = checkpointer.restore(model, optimizer, generator) if checkpointer is not None else None
        state = state or TrainingState()
        history: list[dict[str, float]] = list(state.extra.get("history", []))
        if "stopper" in state.extra:
            stopper.load_checkpoint_state(state.extra["stopper"], state.tensors)
        steps = state.step

        def snapshot(**position: Any) -> TrainingState:
            stopper_meta, stopper_tensors = stopper.checkpoint_state()
            extra = {"history": history, "stopper": stopper_meta, **position.pop("extra", {})}
            return TrainingState(step=steps, extra=extra, tensors=stopper_tensors, **position)

        for epoch_index in range(state.epoch, cfg.epochs):
            if state.done:
                break
            epoch = epoch_index + 1
            resuming = epoch_index == state.epoch and state.order is not None
            order = state.order if resuming else torch.randperm(n, generator=generator)
            first_batch = state.batch if resuming else 0
            loss_sum = float(state.extra["loss_sum"]) if resuming else 0.0
            seen = int(state.extra["seen"]) if resuming else 0
            model.train()
            for batch, index in enumerate(batches_from(order, batch_size, first_batch), start=first_batch + 1):
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
                logits = model(data[index].to(device))
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
                    checkpointer.save(snapshot(epoch=epoch_index, batch=batch, order=order, extra=position),
                                      model, optimizer, generator)
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break

            model.eval()
            val_logits = _logits(model, x_val, device, max(batch_size, eval_batch_size))
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / seen,
                "val_loss": F.cross_entropy(val_logits, val_labels, weight=weight_tensor).item(),
                **_accuracies(val_logits.argmax(1).numpy(), y_val),
            }
            check_finite_loss(row["val_loss"], steps, kind, cfg.learning_rate, loss_name="validation loss")
            history.append(row)
            if progress is not None:
                progress(epoch, cfg.epochs, row)
            should_stop = stopper.update(row["val_loss"], model, epoch)
            if should_stop or (cfg.max_steps is not None and steps >= cfg.max_steps):
                break
        stopper.restore(model)
        model.eval()
        check_finite_weights(model, steps, kind, cfg.learning_rate)
        if checkpointer is not None and not state.done:
            checkpointer.save(snapshot(epoch=cfg.epochs, done=True), model, optimizer, generator)
    return model, history, stopper.best_epoch, weights


def _accuracies(predicted: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, and balanced accuracy (mean per-class recall), which a majority-class guess cannot inflate."""
    recalls = [float((predicted[y == c] == c).mean()) for c in range(N_CLASSES) if (y == c).any()]
    return {"val_accuracy": float((predicted == y).mean()), "val_balanced_accuracy": float(np.mean(recalls))}


def predict_proba(
    model: nn.Module, x: np.ndarray, device: torch.device | str | None = None, batch_size: int = 256
) -> np.ndarray:
    """Class probabilities (N, 2) as float32; column 1 is P(up). `device=None` uses the model's device."""
    x = check_scalograms(x)
    check_positive("batch_size", batch_size)
    return softmax_proba(model, x, device, batch_size)


def softmax_proba(
    model: nn.Module, x: np.ndarray, device: torch.device | str | None, batch_size: int
) -> np.ndarray:
    """Softmax of `model` over prepared inputs `x`, in eval mode, restoring the model's train/eval state."""
    if device is None:
        device = _model_device(model)
    else:
        device = resolve_device(device)
        model.to(device)
    was_training = model.training
    model.eval()
    try:
        proba = torch.softmax(_logits(model, x, device, batch_size), dim=1).numpy().astype(np.float32)
        return check_finite_output(proba, f"{type(model).__name__} probabilities")
    finally:
        model.train(was_training)


def save_classifier(
    model: nn.Module,
    cfg: ClassifierConfig,
    input_shape: tuple[int, int, int],
    directory: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save weights (model.safetensors) and config.json under `directory`, atomically (temp dir, then rename)."""
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": cfg.arch,
        "config": cfg.to_dict(),
        "input_shape": [int(v) for v in input_shape],
        "n_outputs": int(getattr(model, "n_outputs", N_CLASSES)),
        "extra": extra or {},
    }
    return save_weights(model, meta, directory, "save_classifier")


def load_classifier(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[nn.Module, ClassifierConfig, dict[str, Any]]:
    """Load what `save_classifier` wrote: (model in eval mode, config, meta with input_shape as a tuple)."""
    meta, state = load_weights(directory, FORMAT_NAME, FORMAT_VERSION, "classifier")
    cfg = ClassifierConfig.from_dict(meta["config"])
    meta["input_shape"] = tuple(meta["input_shape"])
    model = build_classifier(cfg, meta["input_shape"], meta["n_outputs"])
    model.load_state_dict(state)
    model.to(resolve_device(device))
    model.eval()
    return model, cfg, meta
