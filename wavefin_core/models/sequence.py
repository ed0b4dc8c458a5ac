"""LSTM direction classifiers on return windows: the "LSTM" and "Haar-wavelet-denoised LSTM" baselines.

Both read windows of returns shaped (N, T) that end at the forecast origin and predict the next move's direction
(0 = down, 1 = up). The LSTM sees two features per time step, the return and its absolute value, and classifies
from its last hidden state. With `denoise_level` set, every window first goes through causal Haar denoising
(`haar_denoise(..., causal=True)`): the input at step t is a function of the window's samples up to t only, so
the denoising adds no look-ahead (whole-series DWT denoising would: every output would use later samples).

As with the scalogram classifiers, windows are expected already scaled by the caller (standardised with
training-split statistics); standardising here would leak validation statistics into the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.checkpoint import Checkpointing
from wavefin_core.models.classifier import (
    N_CLASSES,
    _check_labels,
    fit_direction_model,
    softmax_proba,
)
from wavefin_core.models.training import (
    ProgressFn,
    check_positive,
    load_weights,
    resolve_device,
    save_weights,
)
from wavefin_core.wavelets.haar import haar_denoise

N_FEATURES = 2  # the return and its absolute value
FORMAT_NAME = "wavefin-sequence-classifier"
FORMAT_VERSION = 1


@dataclass
class SequenceConfig:
    """Architecture and optimisation settings of an LSTM direction classifier on return windows.

    `denoise_level=None` is the plain LSTM; an int L >= 1 is the Haar-LSTM, whose inputs are the windows
    causally Haar-denoised over trailing blocks of 2**L samples. `patience` epochs without a lower validation
    loss stop training, and the best epoch's weights are kept. `balance_classes` weights the cross-entropy by
    inverse training-label frequency (see `class_weights`). `dropout` applies between stacked LSTM layers and
    to the last hidden state.
    """

    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 3
    seed: int = 0
    max_steps: int | None = None
    denoise_level: int | None = None
    balance_classes: bool = True

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceConfig:
        """Inverse of `to_dict`; unknown keys are a ConfigError so typos do not pass silently."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"SequenceConfig has unknown field(s) {unknown}; valid fields are {sorted(names)}."
            )
        return cls(**data)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        for name in ("hidden_size", "num_layers", "epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
            check_positive(name, value)
        check_positive("learning_rate", self.learning_rate)
        check_positive("max_steps", self.max_steps, allow_none=True)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1); 0.0 or 0.2 are good starts.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        level = self.denoise_level
        if level is not None and (
            isinstance(level, bool) or not isinstance(level, (int, np.integer)) or level < 1
        ):
            raise ConfigError(
                f"denoise_level={level!r} must be None (plain LSTM) or an integer >= 1 (Haar-LSTM, e.g. 2)."
            )


class ReturnLSTM(nn.Module):
    """LSTM over time on (return, |return|), last hidden state, dropout, linear head to `n_outputs` logits.

    `forward` takes standardised returns (N, T), from which it builds the two features, or already prepared
    features (N, T, 2) as `prepare_sequences` returns. Any T >= 1 works.
    """

    def __init__(
        self,
        hidden_size: int = 32,
        num_layers: int = 1,
        dropout: float = 0.0,
        n_outputs: int = N_CLASSES,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.lstm = nn.LSTM(
            input_size=N_FEATURES,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,  # nn.LSTM only drops between layers
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = torch.stack([x, x.abs()], dim=-1)
        if x.dim() != 3 or x.shape[-1] != N_FEATURES:
            raise ValueError(
                f"ReturnLSTM takes returns (N, T) or features (N, T, {N_FEATURES}), got {tuple(x.shape)}."
            )
        _, (hidden, _) = self.lstm(x)
        return self.head(self.dropout(hidden[-1]))


def _build(cfg: SequenceConfig, n_outputs: int = N_CLASSES) -> ReturnLSTM:
    cfg.validate()
    return ReturnLSTM(cfg.hidden_size, cfg.num_layers, cfg.dropout, n_outputs)


def _check_windows(windows: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(windows)
    if x.ndim != 2:
        raise DataError(f"{name} has shape {x.shape}; expected return windows shaped (N, T).")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{name} has shape {x.shape}; it needs at least one window of at least one return.")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{name} has dtype {x.dtype}; expected floating-point returns.")
    if not np.isfinite(x).all():
        raise DataError(f"{name} contains NaN or inf values; clean or drop those windows first.")
    return x


def prepare_sequences(windows: np.ndarray, cfg: SequenceConfig) -> np.ndarray:
    """The model's inputs for return windows (N, T): float32 (N, T, 2) holding (r, |r|) per step.

    With `cfg.denoise_level` set, r is the causally Haar-denoised window (each window on its own, all at once),
    so feature values at step t depend on the window's samples up to t only.
    """
    return _prepare(windows, cfg, "windows")


def _prepare(windows: np.ndarray, cfg: SequenceConfig, name: str) -> np.ndarray:
    cfg.validate()
    x = _check_windows(windows, name).astype(np.float64, copy=False)
    if cfg.denoise_level is not None:
        x = haar_denoise(x, int(cfg.denoise_level), causal=True)
    return np.ascontiguousarray(np.stack([x, np.abs(x)], axis=-1), dtype=np.float32)


@dataclass
class SequenceResult:
    """What `train_sequence_classifier` returns: the best-validation model (in eval mode) and the curves.

    `history` has one dict per epoch run (epoch, train_loss, val_loss, val_accuracy, val_balanced_accuracy);
    `best_epoch` is the 1-based epoch whose weights the model holds; `class_weights` are the loss weights used.
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    config: SequenceConfig
    class_weights: list[float]


def train_sequence_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: SequenceConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
) -> SequenceResult:
    """Train a `ReturnLSTM` on return windows (N, T) and binary direction labels, like `train_classifier`.

    Windows go through `prepare_sequences` (causal Haar denoising when `cfg.denoise_level` is set). The loss is
    cross-entropy weighted by inverse training-label frequency (`balance_classes`), optimised with AdamW;
    validation loss (same weights) drives early stopping and the returned model holds the best validation
    epoch's weights. Deterministic for a given `cfg.seed` on CPU. `progress(epoch, cfg.epochs, row)` is called
    after every epoch with that epoch's history row. `checkpointing` saves and resumes the training state (see
    `fit_direction_model`).
    """
    cfg.validate()
    data_train = _prepare(x_train, cfg, "x_train")
    data_val = _prepare(x_val, cfg, "x_val")
    y_train = _check_labels(y_train, len(data_train), "y_train")
    y_val = _check_labels(y_val, len(data_val), "y_val")
    model, history, best_epoch, weights = fit_direction_model(
        lambda: _build(cfg), data_train, y_train, data_val, y_val, cfg, resolve_device(device), progress,
        eval_batch_size=512, checkpointing=checkpointing,
        kind="lstm" if cfg.denoise_level is None else "haar-lstm",
    )
    return SequenceResult(
        model=model, history=history, best_epoch=best_epoch, config=cfg,
        class_weights=[float(w) for w in weights],
    )


def predict_sequence_proba(
    model: nn.Module,
    windows: np.ndarray,
    cfg: SequenceConfig,
    device: torch.device | str | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Class probabilities (N, 2) as float32 for return windows (N, T); column 1 is P(up).

    `cfg` must be the config the model was trained with (it decides the denoising). `device=None` uses the
    model's device.
    """
    check_positive("batch_size", batch_size)
    x = prepare_sequences(windows, cfg)
    return softmax_proba(model, x, device, batch_size)


def save_sequence_classifier(
    model: nn.Module,
    cfg: SequenceConfig,
    directory: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save weights (model.safetensors) and config.json under `directory`, atomically (temp dir, then rename)."""
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "arch": "lstm" if cfg.denoise_level is None else "haar-lstm",
        "config": cfg.to_dict(),
        "n_outputs": int(getattr(model, "n_outputs", N_CLASSES)),
        "extra": extra or {},
    }
    return save_weights(model, meta, directory, "save_sequence_classifier")


def load_sequence_classifier(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[nn.Module, SequenceConfig, dict[str, Any]]:
    """Load what `save_sequence_classifier` wrote: (model in eval mode, config, meta)."""
    meta, state = load_weights(directory, FORMAT_NAME, FORMAT_VERSION, "sequence classifier")
    cfg = SequenceConfig.from_dict(meta["config"])
    model = _build(cfg, meta["n_outputs"])
    model.load_state_dict(state)
    model.to(resolve_device(device))
    model.eval()
    return model, cfg, meta
