"""1-D CNN direction classifiers on raw return windows, with or without multi-head self-attention (seed 004).

Why both: a 1-D CNN sees local patterns of consecutive returns (a shock, a run), and self-attention over the
conv features lets a pattern early in the window interact with the most recent returns, the thing a
scalogram's fixed scales and an LSTM's decaying memory each approximate differently.

Input: standardised return windows (N, T) that end at the forecast origin (scaled by the caller with
train-split statistics). Each step carries (r, |r|), as for the LSTMs. Conv-BN-ReLU blocks keep the length
(same padding, no pooling: windows are short and the last steps matter most); the attention variant adds fixed
sinusoidal positions and one pre-norm multi-head self-attention block with a residual. The head reads the
mean over time and the last step's features, so the most recent returns are never averaged away. Training is
the shared loop of `training.fit_classifier`.
"""

from __future__ import annotations

import math
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

ARCHS = ("cnn1d", "cnn1d_attention")
N_FEATURES = 2  # the return and its absolute value
FORMAT_NAME = "wavefin-conv1d-classifier"
FORMAT_VERSION = 1
FORMAT = WeightsFormat(FORMAT_NAME, FORMAT_VERSION, "1-D CNN classifier")

__all__ = [
    "Conv1dConfig", "ReturnCNN1d", "build_conv1d", "load_conv1d", "predict_conv1d_proba", "prepare_windows",
    "save_conv1d", "train_conv1d",
]


@dataclass
class Conv1dConfig(TrainingConfig):
    """Architecture of a 1-D CNN (arch="cnn1d") or 1-D CNN + self-attention ("cnn1d_attention") classifier.

    `channels` are the conv widths, `kernel_size` an odd kernel length; `num_heads` must divide the last width
    (attention variant only). Optimisation settings are `TrainingConfig`'s.
    """

    arch: str = "cnn1d"
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 5
    num_heads: int = 4
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        if self.arch not in ARCHS:
            raise ConfigError(f"arch={self.arch!r} is not one of {ARCHS}.")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(f"channels={self.channels!r} must be a non-empty tuple of positive ints, e.g. (16, 32).")
        if isinstance(self.kernel_size, bool) or not isinstance(self.kernel_size, (int, np.integer)) or (
            self.kernel_size < 1 or self.kernel_size % 2 == 0
        ):
            raise ConfigError(f"kernel_size={self.kernel_size!r} must be an odd positive integer, e.g. 5.")
        check_positive("num_heads", self.num_heads)
        if self.arch == "cnn1d_attention" and self.channels[-1] % self.num_heads:
            raise ConfigError(
                f"num_heads={self.num_heads} must divide the last conv width channels[-1]={self.channels[-1]}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1); 0.1 is a good start.")
        super().validate()


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine position code (Vaswani et al.), (length, dim): any window length works."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    code = torch.zeros(length, dim)
    code[:, 0::2] = torch.sin(position * rate)
    code[:, 1::2] = torch.cos(position * rate)[:, : dim // 2]
    return code


class ReturnCNN1d(nn.Module):
    """Conv1d-BN-ReLU blocks (same length), optional self-attention block, [mean over time, last step], head."""

    def __init__(
        self,
        n_outputs: int = 2,
        channels: tuple[int, ...] = (16, 32),
        kernel_size: int = 5,
        attention: bool = False,
        num_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        blocks: list[nn.Module] = []
        previous = N_FEATURES
        for width in channels:
            blocks += [
                nn.Conv1d(previous, width, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.attention = None
        if attention:
            self.norm = nn.LayerNorm(previous)
            self.attention = nn.MultiheadAttention(previous, num_heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * previous, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = torch.stack([x, x.abs()], dim=-1)
        if x.dim() != 3 or x.shape[-1] != N_FEATURES:
            raise ValueError(
                f"ReturnCNN1d takes returns (N, T) or features (N, T, {N_FEATURES}), got {tuple(x.shape)}."
            )
        hidden = self.features(x.transpose(1, 2)).transpose(1, 2)  # (N, T, C)
        if self.attention is not None:
            tokens = self.norm(hidden + sinusoidal_positions(hidden.shape[1], hidden.shape[2]).to(hidden))
            attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
            hidden = hidden + attended
        summary = torch.cat([hidden.mean(dim=1), hidden[:, -1]], dim=1)
        return self.head(self.dropout(summary))


def build_conv1d(cfg: Conv1dConfig, n_outputs: int = 2) -> ReturnCNN1d:
    """The model `cfg` describes."""
    cfg.validate()
    return ReturnCNN1d(n_outputs, cfg.channels, cfg.kernel_size, cfg.arch == "cnn1d_attention", cfg.num_heads,
                       cfg.dropout)


def prepare_windows(windows: np.ndarray, name: str = "windows") -> np.ndarray:
    """Return windows (N, T) as the model's float32 (N, T, 2) inputs (r, |r|), or raise DataError naming `name`."""
    x = np.asarray(windows)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"{name} has shape {x.shape}; expected a non-empty array of return windows (N, T).")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise DataError(f"{name} must hold finite floating-point returns; clean or drop NaN/inf windows first.")
    x = x.astype(np.float32)
    return np.ascontiguousarray(np.stack([x, np.abs(x)], axis=-1))


def train_conv1d(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: Conv1dConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
    *,
    n_classes: int | None = None,
) -> FitResult:
    """Train a 1-D CNN (or CNN + attention) on return windows (N, T) and direction labels (2 or 3 classes).

    The loop is `fit_classifier`'s (class balancing, ReduceLROnPlateau, early stopping on validation, prior
    matching); deterministic for `cfg.seed` on CPU.
    """
    cfg.validate()
    data_train, data_val = prepare_windows(x_train, "x_train"), prepare_windows(x_val, "x_val")
    n_classes, y_train, y_val = check_split_labels(y_train, y_val, len(data_train), len(data_val), n_classes)
    return fit_classifier(
        lambda: build_conv1d(cfg, n_classes), (data_train,), y_train, (data_val,), y_val, cfg,
        resolve_device(device), n_classes=n_classes, progress=progress, eval_batch_size=512,
        checkpointing=checkpointing, kind=cfg.arch,
    )


def predict_conv1d_proba(
    model: nn.Module, windows: np.ndarray, device: torch.device | str | None = None, batch_size: int = 512
) -> np.ndarray:
    """Class probabilities (N, n_classes) as float32 for return windows (N, T); the last column is P(up)."""
    return predict_softmax(model, prepare_windows(windows), device, batch_size)


def save_conv1d(model: nn.Module, cfg: Conv1dConfig, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save weights (model.safetensors) and config.json under `directory`, atomically."""
    return save_model(model, cfg, directory, FORMAT, "save_conv1d", extra, arch=cfg.arch,
                      n_outputs=int(getattr(model, "n_outputs", 2)))


def load_conv1d(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[nn.Module, Conv1dConfig, dict[str, Any]]:
    """Load what `save_conv1d` wrote: (model in eval mode, config, meta)."""
    return load_model(directory, FORMAT, Conv1dConfig, lambda cfg, meta: build_conv1d(cfg, meta["n_outputs"]),
                      device)
