"""Dense U-Net: translates a window's return scalogram into the scalogram of its log volume (seed 002).

Why this model: volume co-moves with the size of returns, and a scalogram puts "how big, at which time, at which
scale" into an image, so predicting the volume scalogram from the return scalogram is an image-to-image
translation. A U-Net keeps fine time/scale detail through its skip connections; dense blocks (every layer sees
the concatenated outputs of the layers before it) reuse features, which keeps the model small (~0.5 M parameters
at the default config) for the few thousand windows a series gives.

Inputs (N, C_in, S, T) and targets (N, C_out, S, T) are expected already scaled by the caller with statistics
fitted on the training windows only (:func:`wavefin_core.evaluation.volume.build_volume_pairs` does that). Any
(S, T) works: the input is edge-padded to a multiple of ``2**levels`` and the output cropped back.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.training import (
    EarlyStopping,
    ProgressFn,
    batches_from,
    check_finite_loss,
    check_finite_output,
    check_finite_weights,
    check_positive,
    check_scalograms,
    count_parameters,
    epoch_loop_state,
    epoch_starts,
    load_weights,
    resolve_device,
    resume_point,
    save_weights,
    seeded,
)

if TYPE_CHECKING:  # checkpoint.py imports the training helpers this module uses
    from wavefin_core.models.checkpoint import Checkpointing

FORMAT_NAME = "wavefin-dense-unet"
FORMAT_VERSION = 1
LOSSES = ("mse", "l1")
CHECKPOINT_KIND = "dense-unet"  # checkpoints live under <checkpoints>/dense-unet-<fingerprint>/


@dataclass
class DenseUNetConfig:
    """Architecture and optimisation settings of the Dense U-Net.

    Architecture: a 3x3 stem of `stem_channels`, then `levels` down steps, each a dense block of
    `layers_per_block` layers of `growth_rate` channels followed by a 1x1 transition (to `compression` of its
    width) and 2x2 average pooling; a dense bottleneck; and `levels` up steps (2x2 transposed convolution,
    concatenation with the skip of the same level, dense block, 1x1 compression). The defaults have ~0.5 M
    parameters.
    Optimisation: AdamW on `loss` ("mse", which PSNR rewards, or "l1", which MAE rewards), ReduceLROnPlateau
    (halves the rate after `lr_patience` epochs without a lower validation loss), and early stopping after
    `patience` such epochs, keeping the best validation epoch's weights.
    """

    stem_channels: int = 32
    growth_rate: int = 14
    layers_per_block: int = 4
    levels: int = 3
    compression: float = 0.5
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    lr_patience: int = 2
    loss: str = "mse"
    seed: int = 0
    max_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseUNetConfig:
        """Inverse of `to_dict`; unknown keys are a ConfigError so typos do not pass silently."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"DenseUNetConfig has unknown field(s) {unknown}; valid fields are {sorted(names)}.")
        return cls(**data)

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        for name in ("stem_channels", "growth_rate", "layers_per_block", "levels", "epochs", "batch_size",
                     "learning_rate", "patience", "lr_patience"):
            check_positive(name, getattr(self, name))
        check_positive("max_steps", self.max_steps, allow_none=True)
        if not 0.0 < self.compression <= 1.0:
            raise ConfigError(f"compression={self.compression} must be in (0, 1]; 0.5 halves each block's width.")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay={self.weight_decay} must be >= 0.")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} must be one of {LOSSES}.")
        if self.levels > 6:
            raise ConfigError(f"levels={self.levels} pools the image by 2**{self.levels}; use 6 or fewer (3 is usual).")


class _DenseLayer(nn.Sequential):
    """BN-ReLU-3x3 conv producing `growth` new feature maps."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, growth, kernel_size=3, padding=1, bias=False),
        )


class DenseBlock(nn.Module):
    """`n_layers` dense layers; each sees the concatenation of the block input and all earlier layers' outputs."""

    def __init__(self, in_channels: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_DenseLayer(in_channels + i * growth, growth) for i in range(n_layers))
        self.out_channels = in_channels + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)


def _transition(in_channels: int, out_channels: int) -> nn.Sequential:
    """BN-ReLU-1x1 conv: compresses a dense block's growing width."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), nn.Conv2d(in_channels, out_channels, 1, bias=False)
    )


class DenseUNet(nn.Module):
    """U-Net whose encoder and decoder stages are dense blocks; see `DenseUNetConfig` for the layout."""

    def __init__(self, in_channels: int, out_channels: int = 1, cfg: DenseUNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or DenseUNetConfig()
        cfg.validate()
        self.in_channels, self.out_channels, self.levels = int(in_channels), int(out_channels), cfg.levels
        growth, n_layers = cfg.growth_rate, cfg.layers_per_block

        def compressed(width: int) -> int:
            return max(1, int(math.floor(width * cfg.compression)))

        self.stem = nn.Conv2d(in_channels, cfg.stem_channels, kernel_size=3, padding=1, bias=False)
        self.down_blocks = nn.ModuleList()
        self.down_transitions = nn.ModuleList()
        skip_widths = []
        width = cfg.stem_channels
        for _ in range(cfg.levels):
            block = DenseBlock(width, growth, n_layers)
            skip_width = compressed(block.out_channels)
            self.down_blocks.append(block)
            self.down_transitions.append(_transition(block.out_channels, skip_width))
            skip_widths.append(skip_width)
            width = skip_width
        self.bottleneck = DenseBlock(width, growth, n_layers)
        width = compressed(self.bottleneck.out_channels)
        self.bottleneck_transition = _transition(self.bottleneck.out_channels, width)

        self.upsamplers = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        self.up_transitions = nn.ModuleList()
        for skip_width in reversed(skip_widths):
            self.upsamplers.append(nn.ConvTranspose2d(width, width, kernel_size=2, stride=2, bias=False))
            block = DenseBlock(width + skip_width, growth, n_layers)
            self.up_blocks.append(block)
            width = compressed(block.out_channels)
            self.up_transitions.append(_transition(block.out_channels, width))
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.levels
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_h or pad_w:  # edge padding: zeros would look like a quiet market at the image border
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        h = self.stem(x)
        skips = []
        for block, transition in zip(self.down_blocks, self.down_transitions, strict=True):
            h = transition(block(h))
            skips.append(h)
            h = F.avg_pool2d(h, 2)
        h = self.bottleneck_transition(self.bottleneck(h))
        for upsample, block, transition, skip in zip(
            self.upsamplers, self.up_blocks, self.up_transitions, reversed(skips), strict=True
        ):
            h = transition(block(torch.cat([upsample(h), skip], dim=1)))
        return self.head(h)[..., :height, :width]


@dataclass
class DenseUNetResult:
    """What `train_dense_unet` returns: the model with its best-validation weights (eval mode) and the curves.

    `history` has one dict per epoch run (epoch, train_loss, val_loss, val_mae, learning_rate); `best_epoch`
    is the 1-based epoch whose weights the model holds; `train_seconds` the wall time of the whole fit.
    """

    model: DenseUNet
    history: list[dict[str, float]]
    best_epoch: int
    config: DenseUNetConfig
    n_parameters: int
    train_seconds: float


def _check_pairs(x: np.ndarray, y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    x = check_scalograms(x, f"x_{name}")
    y = check_scalograms(y, f"y_{name}")
    if len(x) != len(y) or x.shape[2:] != y.shape[2:]:
        raise DataError(
            f"x_{name} {x.shape} and y_{name} {y.shape} must hold the same windows (N) on the same (S, T) grid; "
            "build both with build_volume_pairs."
        )
    return x, y


def _loss_fn(name: str):
    return F.mse_loss if name == "mse" else F.l1_loss


def _predict(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int) -> np.ndarray:
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            outputs.append(model(torch.from_numpy(x[start : start + batch_size]).to(device)).float().cpu().numpy())
    return np.concatenate(outputs)


def train_dense_unet(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: DenseUNetConfig | None = None,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
    checkpoint_kind: str = CHECKPOINT_KIND,
) -> DenseUNetResult:
    """Fit a Dense U-Net mapping `x_*` (N, C_in, S, T) to `y_*` (N, C_out, S, T); returns the best-validation model.

    Deterministic for a given `cfg.seed` on CPU (shuffles are drawn from a seeded CPU generator, and the caller's
    torch RNG state is restored afterwards). `progress(epoch, cfg.epochs, row)` is called after every epoch.
    With `checkpointing` (a `Checkpointing`), the loop's complete state (optimizer, ReduceLROnPlateau, early
    stopping, RNGs, the epoch's data order and position) is saved every `checkpointing.every` optimizer steps
    under `checkpoint_kind` (one per training when a caller trains several, e.g. one per series, so their
    checkpoints are not reported as stale siblings), and a checkpoint of the same config and data is resumed
    exactly: a run killed and resumed ends with the weights an uninterrupted run has (same machine and thread
    count). A finished training leaves a final checkpoint, so calling again returns the same model at once
    (train_seconds 0).
    A NaN/inf loss raises TrainingDivergedError naming the step; the model itself is not saved here.
    """
    from wavefin_core.models.checkpoint import fingerprint

    cfg = cfg or DenseUNetConfig()
    cfg.validate()
    x_train, y_train = _check_pairs(x_train, y_train, "train")
    x_val, y_val = _check_pairs(x_val, y_val, "val")
    if x_val.shape[1:] != x_train.shape[1:] or y_val.shape[1:] != y_train.shape[1:]:
        raise DataError(f"validation pairs {x_val.shape[1:]}->{y_val.shape[1:]} differ in shape from the training "
                        f"pairs {x_train.shape[1:]}->{y_train.shape[1:]}; build both splits with the same config.")
    device = resolve_device(device)
    loss_fn = _loss_fn(cfg.loss)
    n = len(x_train)
    batch_size = min(cfg.batch_size, n)
    data, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)
    stopper = EarlyStopping(cfg.patience)
    checkpointer = None
    if checkpointing is not None:
        digest = fingerprint(checkpoint_kind, cfg.to_dict(), x_train, y_train, x_val, y_val)
        checkpointer = checkpointing.bind(checkpoint_kind, digest)
    started = time.perf_counter()
    with seeded(cfg.seed, device) as generator:
        model = DenseUNet(x_train.shape[1], y_train.shape[1], cfg).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=cfg.lr_patience)
        state, history = resume_point(checkpointer, stopper, model, optimizer, generator, scheduler)
        finished_before = state.done
        steps = state.step

        def draw_order() -> torch.Tensor:
            return torch.randperm(n, generator=generator)

        for epoch_index, order, first_batch, loss_sum, seen in epoch_starts(state, cfg.epochs, draw_order):
            epoch = epoch_index + 1
            model.train()
            for batch, index in enumerate(batches_from(order, batch_size, first_batch), start=first_batch + 1):
                if cfg.max_steps is not None and steps >= cfg.max_steps:
                    break
                if len(index) < 2 < n:  # BatchNorm cannot normalise a batch of one sample
                    continue
                loss = loss_fn(model(data[index].to(device)), targets[index].to(device))
                check_finite_loss(loss.item(), steps + 1, CHECKPOINT_KIND, cfg.learning_rate)
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
            prediction = torch.from_numpy(_predict(model, x_val, device, max(batch_size, 256)))
            truth = torch.from_numpy(y_val)
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "val_loss": loss_fn(prediction, truth).item(),
                "val_mae": F.l1_loss(prediction, truth).item(),
                "learning_rate": optimizer.param_groups[0]["lr"],
            }
            check_finite_loss(row["val_loss"], steps, CHECKPOINT_KIND, cfg.learning_rate,
                              loss_name="validation loss")
            history.append(row)
            if progress is not None:
                progress(epoch, cfg.epochs, row)
            scheduler.step(row["val_loss"])
            if stopper.update(row["val_loss"], model, epoch) or (cfg.max_steps is not None and steps >= cfg.max_steps):
                break
        stopper.restore(model)
        model.eval()
        check_finite_weights(model, steps, CHECKPOINT_KIND, cfg.learning_rate)
        if checkpointer is not None and not state.done:
            checkpointer.save(epoch_loop_state(steps, history, stopper, epoch=cfg.epochs, done=True),
                              model, optimizer, generator, scheduler)
    return DenseUNetResult(model=model, history=history, best_epoch=stopper.best_epoch, config=cfg,
                           n_parameters=count_parameters(model),
                           train_seconds=0.0 if finished_before else time.perf_counter() - started)


def predict_dense_unet(
    model: DenseUNet, x: np.ndarray, device: torch.device | str | None = None, batch_size: int = 256
) -> np.ndarray:
    """Predicted target scalograms (N, C_out, S, T) float32, in eval mode; `device=None` uses the model's device."""
    x = check_scalograms(x)
    check_positive("batch_size", batch_size)
    if x.shape[1] != model.in_channels:
        raise DataError(f"x has {x.shape[1]} channel(s) but the model was trained on {model.in_channels}; build "
                        "the inputs with the same input_mode ('magnitude' = 1 channel, 'real_imag' = 2).")
    if device is None:
        device = next(model.parameters()).device
    else:
        device = resolve_device(device)
        model.to(device)
    was_training = model.training
    model.eval()
    try:
        return check_finite_output(_predict(model, x, device, batch_size), "DenseUNet predictions")
    finally:
        model.train(was_training)


def save_dense_unet(
    model: DenseUNet, cfg: DenseUNetConfig, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write model.safetensors + config.json under `directory`, atomically; `extra` must be JSON-serialisable."""
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "in_channels": model.in_channels,
        "out_channels": model.out_channels,
        "n_parameters": count_parameters(model),
        "extra": extra or {},
    }
    return save_weights(model, meta, directory, "save_dense_unet")


def load_dense_unet(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[DenseUNet, DenseUNetConfig, dict[str, Any]]:
    """Load what `save_dense_unet` wrote: (model in eval mode, config, meta)."""
    meta, state = load_weights(directory, FORMAT_NAME, FORMAT_VERSION, "Dense U-Net")
    cfg = DenseUNetConfig.from_dict(meta["config"])
    model = DenseUNet(meta["in_channels"], meta["out_channels"], cfg)
    model.load_state_dict(state)
    model.to(resolve_device(device))
    model.eval()
    return model, cfg, meta
