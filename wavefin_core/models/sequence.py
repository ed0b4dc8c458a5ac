"""LSTM direction classifiers on return windows: the "LSTM" and "Haar-wavelet-denoised LSTM" baselines.

Both read windows of returns shaped (N, T) that end at the forecast origin and predict the next move's direction
(0 = down, 1 = up; or 0 = down, 1 = flat, 2 = up). The LSTM sees two features per time step, the return and its absolute value, and classifies
from its last hidden state. With `denoise_level` set, every window first goes through causal Haar denoising
(`haar_denoise(..., causal=True)`): the input at step t is a function of the window's samples up to t only, so
the denoising adds no look-ahead (whole-series DWT denoising would: every output would use later samples).

As with the scalogram classifiers, windows are expected already scaled by the caller (standardised with
training-split statistics); standardising here would leak validation statistics into the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.checkpoint import Checkpointing
from wavefin_core.models.training import (
    FitResult,
    ProgressFn,
    TrainingConfig,
    WeightsFormat,
    check_positive,
    check_split_labels,
    fit_classifier,
    load_model,
    predict_softmax,
    resolve_device,
    save_model,
)
from wavefin_core.wavelets.haar import haar_denoise

N_CLASSES = 2
N_FEATURES = 2  # the return and its absolute value
FORMAT_NAME = "wavefin-sequence-classifier"
FORMAT_VERSION = 1
FORMAT = WeightsFormat(FORMAT_NAME, FORMAT_VERSION, "sequence classifier")


@dataclass
class SequenceConfig(TrainingConfig):
    """Architecture of an LSTM direction classifier on return windows, plus the shared optimisation settings.

    `denoise_level=None` is the plain LSTM; an int L >= 1 is the Haar-LSTM, whose inputs are the windows
    causally Haar-denoised over trailing blocks of 2**L samples. `dropout` applies between stacked LSTM layers
    and to the last hidden state. Class balancing, ReduceLROnPlateau, early stopping and prior matching are
    `TrainingConfig`'s.
    """

    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    denoise_level: int | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"{name}={value!r} must be a positive integer.")
            check_positive(name, value)
        super().validate()
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1); 0.0 or 0.2 are good starts.")
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


SequenceResult = FitResult
"""`train_sequence_classifier`'s result (see `FitResult`: model, history, best_epoch, params, train_seconds, ...)."""


def train_sequence_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: SequenceConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
    *,
    n_classes: int | None = None,
) -> FitResult:
    """Train a `ReturnLSTM` on return windows (N, T) and direction labels (2 or 3 classes; inferred when None).

    Windows go through `prepare_sequences` (causal Haar denoising when `cfg.denoise_level` is set). The loop is
    `fit_classifier`'s (class balancing, ReduceLROnPlateau, early stopping on validation, prior matching);
    deterministic for `cfg.seed` on CPU. `progress(epoch, cfg.epochs, row)` is called after every epoch;
    `checkpointing` saves and resumes the training state.
    """
    cfg.validate()
    data_train = _prepare(x_train, cfg, "x_train")
    data_val = _prepare(x_val, cfg, "x_val")
    n_classes, y_train, y_val = check_split_labels(y_train, y_val, len(data_train), len(data_val), n_classes)
    return fit_classifier(
        lambda: _build(cfg, n_classes), (data_train,), y_train, (data_val,), y_val, cfg, resolve_device(device),
        n_classes=n_classes, progress=progress, eval_batch_size=512, checkpointing=checkpointing,
        kind="lstm" if cfg.denoise_level is None else "haar-lstm",
    )


def predict_sequence_proba(
    model: nn.Module,
    windows: np.ndarray,
    cfg: SequenceConfig,
    device: torch.device | str | None = None,
    batch_size: int = 512,
) -> np.ndarray:
    """Class probabilities (N, n_classes) as float32 for return windows (N, T); the last column is P(up).

    `cfg` must be the config the model was trained with (it decides the denoising). `device=None` uses the
    model's device.
    """
    check_positive("batch_size", batch_size)
    x = prepare_sequences(windows, cfg)
    return predict_softmax(model, x, device, batch_size)


def save_sequence_classifier(
    model: nn.Module,
    cfg: SequenceConfig,
    directory: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save weights (model.safetensors) and config.json under `directory`, atomically (temp dir, then rename)."""
    return save_model(model, cfg, directory, FORMAT, "save_sequence_classifier", extra,
                      arch="lstm" if cfg.denoise_level is None else "haar-lstm",
                      n_outputs=int(getattr(model, "n_outputs", N_CLASSES)))


def load_sequence_classifier(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[nn.Module, SequenceConfig, dict[str, Any]]:
    """Load what `save_sequence_classifier` wrote: (model in eval mode, config, meta)."""
    return load_model(directory, FORMAT, SequenceConfig, lambda cfg, meta: _build(cfg, meta["n_outputs"]), device)
