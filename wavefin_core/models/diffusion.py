"""A denoising diffusion model over wavelet images (scalograms), built from diffusers' UNet2DModel.

Images arrive as (N, C, H, W) float32 arrays, e.g. C=2 channels (real and imaginary part of a complex Morlet
CWT, scaled dataset-wide), H scales and W time samples. Neither H nor W needs to be a power of two: the UNet halves
the resolution len(block_out_channels) - 1 times, so training and sampling zero-pad each image on the bottom and
right up to `padded_size` and crop the padding away again. The model learns the padded canvas as part of the data
(the padding is always zero), so the reverse process generates a consistent canvas and cropping loses nothing.

The levers, all in `DiffusionConfig`:
- `conditioning="class"`: one model for many series without mixing them; the UNet gets diffusers' class
  embedding (`num_class_embeds`) and every training image its series' label, and sampling asks for a series.
- `prediction_type`: epsilon, v or x0 (diffusers' names), `beta_schedule` and `rescale_betas_zero_snr`.
- LR warm-up then cosine decay (`warmup_steps`, `lr_schedule`), and an EMA of the weights (`ema_decay`) that
  sampling uses.
- `row_loss_weights`: a loss weight per image row (per Haar level), for a level the model under-fits.
Sampling (DDPM / DDIM / DPM-Solver++, with range projection at every step) lives in `diffusion_sampling`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import atomic_directory
from wavefin_core.models.checkpoint import Checkpointing, TrainingState, fingerprint
from wavefin_core.models.diffusion_sampling import (
    CPU_THREADS,
    PREDICTION_TYPES,
    SAMPLERS,
    build_sampling_scheduler,
    cpu_threads,
    padded_for_depth,
    sample_diffusion,
)
from wavefin_core.models.ema import WeightsEMA
from wavefin_core.models.training import (
    ProgressFn,
    batches_from,
    check_finite_loss,
    check_finite_weights,
    check_positive,
    check_scalograms,
    refuse_non_finite_state,
    resolve_device,
    seeded,
)

__all__ = [
    "DiffusionConfig", "DiffusionResult", "SAMPLERS", "build_sampling_scheduler", "build_train_scheduler",
    "build_unet", "load_diffusion", "padded_size", "sample_diffusion", "save_diffusion", "train_diffusion",
]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
CONDITIONINGS = ("class", "none")
LR_SCHEDULES = ("constant", "cosine")
ATTENTION_HEAD_DIM = 8
CLIP_MARGIN = 1.5
FORMAT_NAME = "wavefin-diffusion"
#: 2: unet_ema/ beside unet/, class conditioning, and "series" / "representations" in wavefin.json.
FORMAT_VERSION = 2
EMA_PREFIX = "ema."


@dataclass
class DiffusionConfig:
    """Architecture, noise schedule and optimisation settings of the diffusion model.

    `attention=True` puts self-attention in the lowest-resolution UNet block (and the middle block), where the
    grid is small enough for it to be cheap; `max_steps` caps optimizer steps so tests and the quick profile stay
    short; `grad_clip_norm` (None = off) keeps the early, noisy steps from blowing up the weights.
    `conditioning="class"` adds a class (series) embedding, so `train_diffusion` needs `labels`.
    `prediction_type` is what the UNet predicts (diffusers' names: "epsilon", "v_prediction", "sample");
    `rescale_betas_zero_snr` makes the last timestep pure noise (needs v or x0 prediction). The learning rate
    warms up linearly over `warmup_steps`, then stays (`lr_schedule="constant"`) or decays to 0 along a cosine
    (`"cosine"`). `ema_decay` (None = off) keeps an EMA of the weights, which is what gets sampled.
    `row_loss_weights` (None = plain MSE) weights the squared error of each image row (H; for the Haar image:
    each level, coarse to fine), normalised to mean 1 over the rows, so a level the model under-fits can be
    given more of the loss; the zero padding rows keep weight 1.
    """

    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    attention: bool = False
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 2e-4
    seed: int = 0
    max_steps: int | None = None
    grad_clip_norm: float | None = 1.0
    conditioning: str = "none"
    prediction_type: str = "epsilon"
    rescale_betas_zero_snr: bool = False
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    ema_decay: float | None = None
    row_loss_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        if self.row_loss_weights is not None:
            self.row_loss_weights = tuple(float(w) for w in self.row_loss_weights)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        if self.row_loss_weights is not None:
            data["row_loss_weights"] = list(self.row_loss_weights)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionConfig:
        """Inverse of `to_dict`; unknown keys are a ConfigError so typos do not pass silently."""
        return cls(**_known_fields(cls, data, "DiffusionConfig"))

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        if not self.block_out_channels or any(c <= 0 for c in self.block_out_channels):
            raise ConfigError(
                f"block_out_channels={self.block_out_channels!r} must be a non-empty tuple of positive ints, "
                "e.g. (32, 64, 64)."
            )
        if self.attention and self.block_out_channels[-1] % ATTENTION_HEAD_DIM:
            raise ConfigError(
                f"attention=True needs block_out_channels[-1] to be a multiple of {ATTENTION_HEAD_DIM} "
                f"(got {self.block_out_channels[-1]}); change the last channel count or set attention=False."
            )
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(f"beta_schedule={self.beta_schedule!r} is not one of {BETA_SCHEDULES}.")
        if self.num_train_timesteps < 2:
            raise ConfigError(
                f"num_train_timesteps={self.num_train_timesteps} must be at least 2; 1000 is usual."
            )
        for name, allowed in (("conditioning", CONDITIONINGS), ("prediction_type", PREDICTION_TYPES),
                              ("lr_schedule", LR_SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {allowed}.")
        if self.rescale_betas_zero_snr and self.prediction_type == "epsilon":
            raise ConfigError("rescale_betas_zero_snr=True makes the last timestep pure noise, where an epsilon "
                              "prediction says nothing about the clean sample; use prediction_type='v_prediction' "
                              "(or 'sample') with it, or set rescale_betas_zero_snr=False.")
        for name in ("layers_per_block", "epochs", "batch_size", "learning_rate"):
            check_positive(name, getattr(self, name))
        check_positive("max_steps", self.max_steps, allow_none=True)
        check_positive("grad_clip_norm", self.grad_clip_norm, allow_none=True)
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps={self.warmup_steps!r} must be an int >= 0 (0 = no warm-up).")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay!r} must be in (0, 1), e.g. 0.999, or None (no EMA).")
        if self.row_loss_weights is not None and (
                not self.row_loss_weights or not all(math.isfinite(w) and w > 0 for w in self.row_loss_weights)):
            raise ConfigError(f"row_loss_weights={self.row_loss_weights!r} must be None (plain MSE) or one positive "
                              "finite weight per image row (e.g. per Haar level, coarse to fine).")


@dataclass
class DiffusionResult:
    """What `train_diffusion` returns: the trained UNet (eval mode), its EMA copy (None without EMA), its training
    scheduler, the curves, and the number of classes (None when unconditional)."""

    model: UNet2DModel
    scheduler: DDPMScheduler
    losses: list[float]
    epoch_losses: list[float]
    sample_shape: tuple[int, int, int]
    config: DiffusionConfig
    ema_model: UNet2DModel | None = None
    num_classes: int | None = None
    learning_rates: list[float] | None = None

    @property
    def sampling_model(self) -> UNet2DModel:
        """The weights to sample from: the EMA copy when there is one."""
        return self.ema_model if self.ema_model is not None else self.model


def _known_fields(cls: type, data: dict[str, Any], label: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{label} has unknown field(s) {unknown}; valid fields are {sorted(names)}.")
    return dict(data)


def padded_size(sample_size: tuple[int, int], cfg: DiffusionConfig) -> tuple[int, int]:
    """(H, W) rounded up to the next multiple of 2**(len(block_out_channels) - 1), the UNet's total downsampling."""
    return padded_for_depth(sample_size, len(cfg.block_out_channels))


def _norm_groups(channels: tuple[int, ...]) -> int:
    """The largest GroupNorm group count (<= 32, diffusers' default) that divides every block's channel count."""
    common = math.gcd(*channels)
    return max(g for g in range(1, min(32, common) + 1) if common % g == 0)


def build_unet(
    cfg: DiffusionConfig, in_channels: int, sample_size: tuple[int, int], num_classes: int | None = None
) -> UNet2DModel:
    """A UNet2DModel for images of size `sample_size` = (H, W) with `in_channels` channels.

    `num_classes` (with `cfg.conditioning="class"`) adds diffusers' class embedding: a learned vector per class
    added to the timestep embedding. The model's configured sample size is the padded one (see `padded_size`);
    its weights do not depend on it.
    """
    cfg.validate()
    if cfg.conditioning == "class" and (num_classes is None or num_classes < 1):
        raise ConfigError("conditioning='class' needs the number of classes (series); pass num_classes >= 1.")
    n_blocks = len(cfg.block_out_channels)
    lowest_down = "AttnDownBlock2D" if cfg.attention else "DownBlock2D"
    lowest_up = "AttnUpBlock2D" if cfg.attention else "UpBlock2D"
    return UNet2DModel(
        sample_size=padded_size(sample_size, cfg),
        in_channels=in_channels,
        out_channels=in_channels,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D",) * (n_blocks - 1) + (lowest_down,),
        up_block_types=(lowest_up,) + ("UpBlock2D",) * (n_blocks - 1),
        add_attention=cfg.attention,
        attention_head_dim=ATTENTION_HEAD_DIM,
        norm_num_groups=_norm_groups(cfg.block_out_channels),
        num_class_embeds=int(num_classes) if cfg.conditioning == "class" else None,
    )


def build_train_scheduler(cfg: DiffusionConfig, data_abs_max: float | None = None) -> DDPMScheduler:
    """The DDPM noise schedule used for training, carrying the clean-sample clipping range used when sampling.

    diffusers clips estimated clean samples to [-1, 1] by default, which suits images but would truncate
    scalogram coefficients that legitimately exceed 1 after dataset-wide scaling. Clipping itself is still
    needed: at the last timesteps of the cosine schedule alpha_bar is ~1e-9, and the clean-sample estimate
    derived from an epsilon prediction divides by sqrt(alpha_bar), so a full-length DDPM chain diverges without
    it. Hence the range is `CLIP_MARGIN` times the largest |value| in the training data, which leaves room for
    more extreme values than were seen while still bounding the estimate. It is saved with the scheduler, and
    the sampling loop clamps every x0 estimate to it (see diffusion_sampling).
    """
    clip = data_abs_max is not None and data_abs_max > 0
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        prediction_type=cfg.prediction_type,
        rescale_betas_zero_snr=cfg.rescale_betas_zero_snr,
        clip_sample=clip,
        clip_sample_range=CLIP_MARGIN * float(data_abs_max) if clip else 1.0,
    )


def lr_factor(step: int, cfg: DiffusionConfig, total_steps: int) -> float:
    """The learning-rate multiplier before optimizer step `step` (0-based): linear warm-up, then 1 or cosine."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _target(cfg: DiffusionConfig, scheduler: DDPMScheduler, clean: torch.Tensor, noise: torch.Tensor,
            timesteps: torch.Tensor) -> torch.Tensor:
    if cfg.prediction_type == "epsilon":
        return noise
    if cfg.prediction_type == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    return clean


def _row_weights(cfg: DiffusionConfig, height: int, padded_height: int) -> torch.Tensor | None:
    """(padded_height, 1) loss weights per image row, mean 1 over the image rows, 1 on the padding; None = MSE."""
    if cfg.row_loss_weights is None:
        return None
    if len(cfg.row_loss_weights) != height:
        raise ConfigError(f"row_loss_weights has {len(cfg.row_loss_weights)} weights but the images have {height} "
                          "rows; give one weight per row (Haar image: level + 1, coarse to fine) or None.")
    weights = torch.ones(padded_height, 1)
    given = torch.tensor(cfg.row_loss_weights, dtype=torch.float32)
    weights[:height, 0] = given / given.mean()
    return weights


def _weighted_mse(output: torch.Tensor, target: torch.Tensor, row_weights: torch.Tensor | None) -> torch.Tensor:
    if row_weights is None:
        return F.mse_loss(output, target)
    return torch.mean(row_weights.to(output.device) * (output - target) ** 2)


def _checked_labels(labels: np.ndarray | None, n: int, cfg: DiffusionConfig) -> tuple[torch.Tensor | None, int | None]:
    if cfg.conditioning == "none":
        if labels is not None:
            raise ConfigError("labels were given but conditioning='none'; set conditioning='class' to use them "
                              "(or train one model per series without labels).")
        return None, None
    if labels is None:
        raise ConfigError("conditioning='class' needs labels: one class (series) index per training image.")
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or (n and labels.min() < 0):
        raise DataError(f"labels has shape {labels.shape} and dtype {labels.dtype}; it must be ({n},) "
                        "non-negative integers, one class (series) index per training image.")
    return torch.from_numpy(labels.astype(np.int64)), int(labels.max()) + 1


def train_diffusion(
    x: np.ndarray,
    cfg: DiffusionConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
    labels: np.ndarray | None = None,
    num_classes: int | None = None,
    threads: int | None = CPU_THREADS,
) -> DiffusionResult:
    """Train a UNet on images `x` (N, C, H, W) with the MSE of `cfg.prediction_type` and AdamW.

    With `cfg.conditioning="class"`, `labels` (N,) gives each image's class (series) index and `num_classes`
    the size of the embedding (default: max label + 1; pass it when a class may have no images).
    Deterministic for a given `cfg.seed` on CPU: weight init, shuffling, noise and timesteps all come from it.
    `progress(step, total, {"epoch", "loss", "lr"})` is called after every optimizer step. With `checkpointing`,
    the complete training state (weights, EMA weights, AdamW, LR schedule, RNGs, data position) is saved every
    `checkpointing.every` steps and a checkpoint of the same config and data is resumed ("resuming from step N"
    in its log), giving the same final weights as an uninterrupted run. A NaN/inf loss or weight raises
    TrainingDivergedError naming the step; nothing non-finite is checkpointed. On CPU it trains with `threads`
    intra-op threads (`CPU_THREADS`, measured fastest on a shared machine; None: torch's current setting).
    """
    x = check_scalograms(x)
    cfg.validate()
    device = resolve_device(device)
    n, channels, height, width = x.shape
    label_tensor, seen_classes = _checked_labels(labels, n, cfg)
    if label_tensor is not None:
        num_classes = seen_classes if num_classes is None else int(num_classes)
        if num_classes < seen_classes:
            raise ConfigError(f"num_classes={num_classes} but labels go up to {seen_classes - 1}.")
    padded_h, padded_w = padded_size((height, width), cfg)
    padding = (0, padded_w - width, 0, padded_h - height)  # F.pad order: last dim first
    data = torch.from_numpy(x)
    row_weights = _row_weights(cfg, height, padded_h)

    batch_size = min(cfg.batch_size, n)
    total_steps = cfg.epochs * math.ceil(n / batch_size)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    checkpointer = None
    if checkpointing is not None:
        arrays = (x,) if label_tensor is None else (x, label_tensor.numpy())
        checkpointer = checkpointing.bind("diffusion", fingerprint("diffusion", cfg.to_dict(), *arrays))

    with seeded(cfg.seed, device) as generator, cpu_threads(device, threads):
        model = build_unet(cfg, channels, (height, width), num_classes).to(device)
        ema = WeightsEMA(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        scheduler = build_train_scheduler(cfg, data_abs_max=float(np.abs(x).max()))
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
        lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, total_steps))
        state = checkpointer.restore(model, optimizer, generator, lr_scheduler) if checkpointer else None
        state = state or TrainingState()
        if ema is not None and state.step:
            ema.load_state({k[len(EMA_PREFIX):]: v for k, v in state.tensors.items() if k.startswith(EMA_PREFIX)},
                           state.extra["ema_updates"])
        losses = state.losses
        epoch_losses: list[float] = [float(v) for v in state.extra.get("epoch_losses", [])]
        learning_rates: list[float] = [float(v) for v in state.extra.get("learning_rates", [])]

        def snapshot(**position: Any) -> TrainingState:
            extra = {"epoch_losses": epoch_losses, "learning_rates": learning_rates}
            tensors = {}
            if ema is not None:
                extra["ema_updates"] = ema.updates
                tensors = {EMA_PREFIX + k: v for k, v in ema.state_tensors().items()}
            return TrainingState(step=len(losses), losses=losses, extra=extra, tensors=tensors, **position)

        model.train()
        for epoch in range(state.epoch, cfg.epochs):
            resuming = epoch == state.epoch and state.order is not None
            if state.done or (not resuming and len(losses) >= total_steps):
                break
            order = state.order if resuming else torch.randperm(n, generator=generator)
            first_batch = state.batch if resuming else 0
            epoch_start = len(losses) - first_batch
            for batch, index in enumerate(batches_from(order, batch_size, first_batch), start=first_batch + 1):
                if len(losses) >= total_steps:
                    break
                clean = F.pad(data[index], padding).to(device)
                noise = torch.randn(clean.shape, generator=generator).to(device)
                timesteps = torch.randint(0, cfg.num_train_timesteps, (len(index),), generator=generator)
                timesteps = timesteps.to(device)
                noisy = scheduler.add_noise(clean, noise, timesteps)
                batch_labels = label_tensor[index].to(device) if label_tensor is not None else None
                output = model(noisy, timesteps, class_labels=batch_labels).sample
                loss = _weighted_mse(output, _target(cfg, scheduler, clean, noise, timesteps), row_weights)
                check_finite_loss(loss.item(), len(losses) + 1, "diffusion", cfg.learning_rate)

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
                learning_rates.append(float(optimizer.param_groups[0]["lr"]))
                optimizer.step()
                lr_scheduler.step()
                if ema is not None:
                    ema.update(model)

                losses.append(loss.item())
                if progress is not None:
                    progress(len(losses), total_steps,
                             {"epoch": epoch + 1, "loss": losses[-1], "lr": learning_rates[-1]})
                if checkpointer is not None and checkpointer.due(len(losses)):
                    checkpointer.save(snapshot(epoch=epoch, batch=batch, order=order), model, optimizer, generator,
                                      lr_scheduler)
                if len(losses) >= total_steps:
                    break
            epoch_losses.append(float(np.mean(losses[epoch_start:])))
        model.eval()
        check_finite_weights(model, len(losses), "diffusion", cfg.learning_rate)
        if ema is not None:
            check_finite_weights(ema.shadow, len(losses), "diffusion (EMA weights)", cfg.learning_rate)
        if checkpointer is not None and not state.done:
            checkpointer.save(snapshot(epoch=cfg.epochs, done=True), model, optimizer, generator, lr_scheduler)

    return DiffusionResult(
        model=model,
        scheduler=scheduler,
        losses=losses,
        epoch_losses=epoch_losses,
        sample_shape=(channels, height, width),
        config=cfg,
        ema_model=ema.shadow if ema is not None else None,
        num_classes=num_classes,
        learning_rates=learning_rates,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def save_diffusion(
    result: DiffusionResult | tuple[UNet2DModel, DDPMScheduler],
    directory: str | Path,
    extra: dict[str, Any] | None = None,
    *,
    config: DiffusionConfig | None = None,
    sample_shape: tuple[int, int, int] | None = None,
    series: list[str] | None = None,
    representations: dict[str, dict[str, Any]] | None = None,
    regimes: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Save model, EMA model, scheduler and metadata under `directory`, atomically.

    Layout: `unet/` (the trained weights) and, with EMA, `unet_ema/` (the averaged ones), both diffusers
    `save_pretrained` directories (safetensors) that `UNet2DModel.from_pretrained` loads; `scheduler/`; and
    `wavefin.json` with the config, the sample shape, `series` (class index -> series name, for a conditioned
    model), `representations` (series -> its representation's `to_dict()`, to decode samples) and `extra`
    (caller metadata; numpy scalars and arrays become JSON), and `regimes` (series -> its volatility regimes'
    `VolRegimes.to_dict()`, see `regimes`: the class label is then (series, bucket), series-major). `result` is a DiffusionResult, or a (model,
    scheduler) pair together with `config` and `sample_shape`. Everything is written to a temporary sibling
    directory and renamed into place, so a failed save leaves any previous model untouched.
    """
    if isinstance(result, DiffusionResult):
        model, scheduler, ema_model = result.model, result.scheduler, result.ema_model
        config, sample_shape = result.config, result.sample_shape
    else:
        (model, scheduler), ema_model = result, None
        if config is None or sample_shape is None:
            raise TypeError("save_diffusion((model, scheduler), ...) also needs config= and sample_shape=.")
    n_classes = model.config.num_class_embeds
    per_series = max([max(int(r.get("k", 0)), 1) for r in (regimes or {}).values()] or [1])
    if series is not None and n_classes is not None and len(series) * per_series != n_classes:
        raise ConfigError(f"series= names {len(series)} series with {per_series} volatility bucket(s) each but "
                          f"the model has {n_classes} classes; pass the series in class-index order (and regimes= "
                          "for a model conditioned on volatility buckets).")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "sample_shape": [int(v) for v in sample_shape],
        "series": list(series) if series is not None else None,
        "representations": representations or {},
        "regimes": regimes or {},
        "ema": ema_model is not None,
        "extra": extra or {},
    }
    try:
        meta_text = json.dumps(meta, indent=2, default=_json_default)
    except TypeError as exc:
        raise ConfigError(f"save_diffusion extra= and representations= must be JSON-serialisable: {exc}") from exc

    directory = Path(directory)
    refuse_non_finite_state(model.state_dict(), directory)
    if ema_model is not None:
        refuse_non_finite_state(ema_model.state_dict(), directory)
    with atomic_directory(directory) as tmp:
        model.save_pretrained(tmp / "unet", safe_serialization=True)
        if ema_model is not None:
            ema_model.save_pretrained(tmp / "unet_ema", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        (tmp / "wavefin.json").write_text(meta_text)
    return directory


def load_diffusion(
    directory: str | Path, device: torch.device | str | None = "cpu", *, weights: str = "ema"
) -> tuple[UNet2DModel, DDPMScheduler, dict[str, Any]]:
    """Load what `save_diffusion` wrote: (model in eval mode, training scheduler, meta).

    `weights="ema"` loads the EMA weights when the model has them (what sampling should use), else the trained
    ones; `weights="trained"` always loads `unet/`. meta has "config" (a DiffusionConfig dict), "sample_shape"
    (a tuple), "series", "representations", "regimes" ({} without), "ema" and "extra" (the caller's dict), plus "weights" (which
    directory was loaded). Models saved by an older wavefin are refused with a DataError saying to retrain.
    """
    if weights not in ("ema", "trained"):
        raise ConfigError(f"weights={weights!r} must be 'ema' or 'trained'.")
    directory = Path(directory)
    meta_path = directory / "wavefin.json"
    if not meta_path.is_file():
        raise DataError(f"{directory} is not a saved wavefin diffusion model ({meta_path.name} is missing).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{meta_path} has format {meta.get('format')!r} version {meta.get('format_version')!r}; this wavefin "
            f"reads {FORMAT_NAME!r} version {FORMAT_VERSION} only. Re-materialize diffusion_model (retrain) to get "
            "a model in the current format."
        )
    subdir = "unet_ema" if weights == "ema" and (directory / "unet_ema").is_dir() else "unet"
    model = UNet2DModel.from_pretrained(directory / subdir, low_cpu_mem_usage=False, use_safetensors=True).to(
        resolve_device(device)
    )
    model.eval()
    scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")
    meta["sample_shape"] = tuple(meta["sample_shape"])
    meta["weights"] = subdir
    return model, scheduler, meta
