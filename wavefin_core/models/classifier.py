"""Direction classifiers on scalograms: a small CNN and a small Vision Transformer (seed 000's models).

Both take the stored (N, 2, S, T) real+imag scalograms of any S and T (the CNN through ceil-mode pooling and
global average pooling, the ViT by zero-padding to a multiple of its patch size) and output logits for the next
move's direction: 2 classes (0 = down, 1 = up) or 3 (0 = down, 1 = flat, 2 = up).

- `input_channels="magnitude"` makes the model's first operation |real + i imag| (one channel), so callers pass
  the same stored images either way and a saved model knows its own representation.
- Optional numeric indicators (returns, realized volatility, volume features: an (N, F) array) are
  standardised with the TRAIN split's mean and std, which the model keeps as buffers (saved with the weights),
  and concatenated with the pooled image features before the classification head.

Images are expected already scaled by the caller, which fits the scaling on the training split only. Training
is the shared loop of `training.fit_classifier` (class balancing, ReduceLROnPlateau, early stopping, prior
matching).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.checkpoint import Checkpointing
from wavefin_core.models.training import (
    FitResult,
    ProgressFn,
    TrainingConfig,
    WeightsFormat,
    check_positive,
    check_scalograms,
    check_split_labels,
    class_weights,
    fit_classifier,
    load_model,
    predict_softmax,
    resolve_device,
    save_model,
)

ARCHS = ("cnn", "vit")
INPUT_CHANNELS = ("real_imag", "magnitude")
N_CLASSES = 2
FORMAT_NAME = "wavefin-classifier"
FORMAT_VERSION = 1
FORMAT = WeightsFormat(FORMAT_NAME, FORMAT_VERSION, "classifier")

__all__ = [
    "ClassifierConfig", "ClassifierResult", "ScalogramCNN", "ScalogramViT", "build_classifier", "class_weights",
    "load_classifier", "predict_proba", "save_classifier", "standardize_indicators", "train_classifier",
]

ClassifierResult = FitResult
"""`train_classifier`'s result (see `FitResult`: model, history, best_epoch, params, train_seconds, ...)."""


@dataclass
class ClassifierConfig(TrainingConfig):
    """Architecture of a scalogram direction classifier, plus the shared optimisation settings.

    `channels` are the CNN's conv widths (arch="cnn"); `patch_size`, `embed_dim`, `depth` and `num_heads` only
    matter for arch="vit". `input_channels` is "real_imag" (both channels, phase kept) or "magnitude".
    """

    arch: str = "cnn"
    channels: tuple[int, ...] = (16, 32, 64)
    dropout: float = 0.2
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    input_channels: str = "real_imag"

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        if self.arch not in ARCHS:
            raise ConfigError(f"arch={self.arch!r} is not one of {ARCHS}.")
        if self.input_channels not in INPUT_CHANNELS:
            raise ConfigError(f"input_channels={self.input_channels!r} is not one of {INPUT_CHANNELS}.")
        if not self.channels or any(c <= 0 for c in self.channels):
            raise ConfigError(
                f"channels={self.channels!r} must be a non-empty tuple of positive ints, e.g. (16, 32, 64)."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1); 0.2 is a good start.")
        super().validate()
        for name in ("patch_size", "embed_dim", "depth", "num_heads"):
            check_positive(name, getattr(self, name))
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim={self.embed_dim} must be divisible by num_heads={self.num_heads}; e.g. embed_dim=64, num_heads=4."
            )


class ScalogramInput(nn.Module):
    """The fixed front end: real+imag channels as they are, or their magnitude (one channel)."""

    def __init__(self, input_channels: str = "real_imag") -> None:
        super().__init__()
        if input_channels not in INPUT_CHANNELS:
            raise ConfigError(f"input_channels={input_channels!r} is not one of {INPUT_CHANNELS}.")
        self.input_channels = input_channels

    def out_channels(self, in_channels: int) -> int:
        return 1 if self.input_channels == "magnitude" else in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_channels == "real_imag":
            return x
        if x.shape[1] != 2:
            raise ValueError(f"input_channels='magnitude' needs (N, 2, S, T) real+imag images, got {tuple(x.shape)}.")
        return torch.sqrt(x[:, 0:1] ** 2 + x[:, 1:2] ** 2)


class IndicatorHead(nn.Module):
    """Joins the pooled image features with the standardised indicators (then dropout) for the linear head.

    The indicators' train mean and std are buffers, so they travel with the weights (safetensors) and a loaded
    model standardises new indicators exactly as in training.
    """

    def __init__(self, n_indicators: int, dropout: float) -> None:
        super().__init__()
        self.n_indicators = n_indicators
        self.register_buffer("indicator_mean", torch.zeros(n_indicators))
        self.register_buffer("indicator_std", torch.ones(n_indicators))
        self.dropout = nn.Dropout(dropout)

    def join(self, features: torch.Tensor, indicators: torch.Tensor | None) -> torch.Tensor:
        if self.n_indicators == 0:
            if indicators is not None and indicators.shape[-1] > 0:
                raise ValueError("this model was built without indicators; pass indicators=None.")
            return self.dropout(features)
        if indicators is None or indicators.shape != (features.shape[0], self.n_indicators):
            shape = None if indicators is None else tuple(indicators.shape)
            raise ValueError(f"this model needs indicators shaped (N, {self.n_indicators}), got {shape}.")
        scaled = (indicators.to(features.dtype) - self.indicator_mean) / self.indicator_std
        return self.dropout(torch.cat([features, scaled], dim=1))


class ScalogramCNN(nn.Module):
    """Conv-BN-ReLU-maxpool blocks, global average pooling, [+ standardised indicators], dropout, linear head.

    Ceil-mode pooling never shrinks a dimension to zero and global pooling removes the dependence on (S, T), so
    any scalogram size works, including a few scales only.
    """

    def __init__(
        self,
        in_channels: int,
        n_outputs: int = N_CLASSES,
        channels: tuple[int, ...] = (16, 32, 64),
        dropout: float = 0.2,
        input_channels: str = "real_imag",
        n_indicators: int = 0,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.front = ScalogramInput(input_channels)
        blocks: list[nn.Module] = []
        previous = self.front.out_channels(in_channels)
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
        self.indicators = IndicatorHead(n_indicators, dropout)
        self.head = nn.Linear(previous + n_indicators, n_outputs)

    def forward(self, x: torch.Tensor, indicators: torch.Tensor | None = None) -> torch.Tensor:
        features = self.pool(self.features(self.front(x))).flatten(1)
        return self.head(self.indicators.join(features, indicators))


class ScalogramViT(nn.Module):
    """A small Vision Transformer: Conv2d patch embedding, CLS token, learned positions, pre-norm encoder,
    [+ standardised indicators], linear head.

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
        input_channels: str = "real_imag",
        n_indicators: int = 0,
    ) -> None:
        super().__init__()
        self.n_outputs = n_outputs
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.patch_size = patch_size
        self.front = ScalogramInput(input_channels)
        grid = [math.ceil(size / patch_size) for size in self.input_size]
        self.patch_embed = nn.Conv2d(
            self.front.out_channels(in_channels), embed_dim, kernel_size=patch_size, stride=patch_size
        )
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
        self.indicators = IndicatorHead(n_indicators, 0.0)
        self.head = nn.Linear(embed_dim + n_indicators, n_outputs)

    def forward(self, x: torch.Tensor, indicators: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(
                f"ScalogramViT was built for (S, T)={self.input_size}, got {tuple(x.shape[-2:])}."
            )
        x = self.front(x)
        pad_h = -x.shape[-2] % self.patch_size
        pad_w = -x.shape[-1] % self.patch_size
        x = F.pad(x, (0, pad_w, 0, pad_h))
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, patches, embed_dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.pos_embed
        encoded = self.encoder(tokens)
        return self.head(self.indicators.join(self.norm(encoded[:, 0]), indicators))


def build_classifier(
    cfg: ClassifierConfig, input_shape: tuple[int, int, int], n_outputs: int = N_CLASSES, n_indicators: int = 0
) -> nn.Module:
    """The model `cfg.arch` describes, for images shaped `input_shape` = (C, S, T) and `n_indicators` columns."""
    cfg.validate()
    channels, height, width = (int(v) for v in input_shape)
    if cfg.arch == "cnn":
        return ScalogramCNN(channels, n_outputs, cfg.channels, cfg.dropout, cfg.input_channels, n_indicators)
    return ScalogramViT(
        channels, (height, width), n_outputs, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads,
        cfg.dropout, cfg.input_channels, n_indicators,
    )


def check_indicators(indicators: np.ndarray | None, n: int, name: str) -> np.ndarray | None:
    """Return `indicators` as float32 (n, F), None for None, or raise DataError naming `name`."""
    if indicators is None:
        return None
    values = np.asarray(indicators)
    if values.ndim != 2 or values.shape[0] != n:
        raise DataError(f"{name} has shape {values.shape}; expected one row of numeric indicators per "
                        f"sample, shape ({n}, F).")
    if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise DataError(f"{name} must be finite numbers; fill or drop the windows with NaN/inf indicators.")
    return np.ascontiguousarray(values, dtype=np.float32)


def standardize_indicators(train_indicators: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the TRAIN indicators per column; a constant column gets std 1 (it then adds nothing)."""
    values = np.asarray(train_indicators, dtype=np.float64)
    mean, std = values.mean(axis=0), values.std(axis=0)
    std[~(std > 1e-12)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def train_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: ClassifierConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
    *,
    indicators_train: np.ndarray | None = None,
    indicators_val: np.ndarray | None = None,
    n_classes: int | None = None,
) -> FitResult:
    """Train `cfg.arch` on scalograms (N, C, S, T) and direction labels (2 or 3 classes; inferred when None).

    With `indicators_train` / `indicators_val` ((N, F) arrays), the indicators are standardised with the train
    split's statistics and joined before the head. The loop is `fit_classifier`'s (class balancing,
    ReduceLROnPlateau, early stopping on validation, prior matching); deterministic for `cfg.seed` on CPU.
    `progress(epoch, cfg.epochs, row)` is called after every epoch; `checkpointing` saves and resumes.
    """
    cfg.validate()
    x_train = check_scalograms(x_train, "x_train")
    x_val = check_scalograms(x_val, "x_val")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"x_val samples are shaped {x_val.shape[1:]} but x_train samples {x_train.shape[1:]}."
        )
    if cfg.input_channels == "magnitude" and x_train.shape[1] != 2:
        raise DataError(f"input_channels='magnitude' needs real+imag scalograms (N, 2, S, T); x_train has "
                        f"{x_train.shape[1]} channel(s). Pass the stored two-channel images.")
    n_classes, y_train, y_val = check_split_labels(y_train, y_val, len(x_train), len(x_val), n_classes)
    ind_train = check_indicators(indicators_train, len(x_train), "indicators_train")
    ind_val = check_indicators(indicators_val, len(x_val), "indicators_val")
    if (ind_train is None) != (ind_val is None) or (
        ind_train is not None and ind_train.shape[1] != ind_val.shape[1]
    ):
        raise DataError("indicators_train and indicators_val must both be given, with the same columns, or both "
                        "be None.")
    n_indicators = 0 if ind_train is None else ind_train.shape[1]
    mean, std = standardize_indicators(ind_train) if n_indicators else (None, None)

    def build() -> nn.Module:
        model = build_classifier(cfg, x_train.shape[1:], n_classes, n_indicators)
        if n_indicators:
            model.indicators.indicator_mean.copy_(torch.from_numpy(mean))
            model.indicators.indicator_std.copy_(torch.from_numpy(std))
        return model

    train_inputs = (x_train,) if ind_train is None else (x_train, ind_train)
    val_inputs = (x_val,) if ind_val is None else (x_val, ind_val)
    return fit_classifier(
        build, train_inputs, y_train, val_inputs, y_val, cfg, resolve_device(device), n_classes=n_classes,
        progress=progress, eval_batch_size=256, checkpointing=checkpointing, kind=f"classifier-{cfg.arch}",
    )


def predict_proba(
    model: nn.Module,
    x: np.ndarray,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    indicators: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities (N, n_classes) as float32; the last column is P(up). `device=None` uses the model's
    device. Pass `indicators` ((N, F), raw: the model standardises them) when the model was trained with them."""
    x = check_scalograms(x)
    check_positive("batch_size", batch_size)
    ind = check_indicators(indicators, len(x), "indicators")
    return predict_softmax(model, (x,) if ind is None else (x, ind), device, batch_size)


def save_classifier(
    model: nn.Module,
    cfg: ClassifierConfig,
    input_shape: tuple[int, int, int],
    directory: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save weights (model.safetensors, with the indicator statistics) and config.json under `directory`,
    atomically (temp dir, then rename)."""
    return save_model(
        model, cfg, directory, FORMAT, "save_classifier", extra, arch=cfg.arch,
        input_shape=[int(v) for v in input_shape], n_outputs=int(getattr(model, "n_outputs", N_CLASSES)),
        n_indicators=int(getattr(getattr(model, "indicators", None), "n_indicators", 0)),
    )


def load_classifier(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[nn.Module, ClassifierConfig, dict[str, Any]]:
    """Load what `save_classifier` wrote: (model in eval mode, config, meta with input_shape as a tuple)."""

    def build(cfg: ClassifierConfig, meta: dict[str, Any]) -> nn.Module:
        return build_classifier(cfg, meta["input_shape"], meta["n_outputs"], int(meta.get("n_indicators", 0)))

    model, cfg, meta = load_model(directory, FORMAT, ClassifierConfig, build, device, upgrade=_upgrade_state)
    meta["input_shape"] = tuple(meta["input_shape"])
    return model, cfg, meta


def _upgrade_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Models saved before the indicator head lack its (identity) buffers: add them so they still load."""
    if "indicators.indicator_mean" not in state:
        state = {**state, "indicators.indicator_mean": torch.zeros(0), "indicators.indicator_std": torch.ones(0)}
    return state
