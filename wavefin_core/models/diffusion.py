"""A denoising diffusion model (DDPM) over complex scalograms, built from diffusers' UNet2DModel.

Scalograms arrive as (N, C, S, T) float32 arrays: C=2 channels (real and imaginary part of a complex Morlet CWT,
scaled dataset-wide), S scales and T time samples. Neither S nor T needs to be a power of two: the UNet halves the
resolution len(block_out_channels) - 1 times, so training and sampling zero-pad each scalogram on the bottom and
right up to `padded_size` and crop the padding away again. The model learns the padded canvas as part of the data
(the padding is always zero), so the reverse process generates a consistent canvas and cropping loses nothing.

Training uses the standard epsilon (noise-prediction) objective with a DDPMScheduler; sampling can swap in a
faster solver (DDIM, DPM-Solver++) built from the same training schedule, as diffusers' pipelines do.
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
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, SchedulerMixin, UNet2DModel

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import atomic_directory
from wavefin_core.models.checkpoint import Checkpointing, TrainingState, fingerprint
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

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SAMPLERS = {"ddim": DDIMScheduler, "dpmsolver": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
ATTENTION_HEAD_DIM = 8
CLIP_MARGIN = 1.5
FORMAT_NAME = "wavefin-diffusion"
FORMAT_VERSION = 1


@dataclass
class DiffusionConfig:
    """Architecture, noise schedule and optimisation settings of the scalogram diffusion model.

    `attention=True` puts self-attention in the lowest-resolution UNet block (and the middle block), where the
    grid is small enough for it to be cheap; `max_steps` caps optimizer steps so tests and the quick profile stay
    short; `grad_clip_norm` (None = off) keeps the early, noisy steps from blowing up the weights.
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

    def __post_init__(self) -> None:
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        data = asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
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
        for name in ("layers_per_block", "epochs", "batch_size", "learning_rate"):
            check_positive(name, getattr(self, name))
        check_positive("max_steps", self.max_steps, allow_none=True)
        check_positive("grad_clip_norm", self.grad_clip_norm, allow_none=True)


@dataclass
class DiffusionResult:
    """What `train_diffusion` returns: the trained UNet (in eval mode), its training scheduler and the curves."""

    model: UNet2DModel
    scheduler: DDPMScheduler
    losses: list[float]
    epoch_losses: list[float]
    sample_shape: tuple[int, int, int]
    config: DiffusionConfig


def _known_fields(cls: type, data: dict[str, Any], label: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{label} has unknown field(s) {unknown}; valid fields are {sorted(names)}.")
    return dict(data)


def _padded_for_depth(sample_size: tuple[int, int], n_blocks: int) -> tuple[int, int]:
    multiple = 2 ** (n_blocks - 1)
    height, width = sample_size
    return (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)


def padded_size(sample_size: tuple[int, int], cfg: DiffusionConfig) -> tuple[int, int]:
    """(S, T) rounded up to the next multiple of 2**(len(block_out_channels) - 1), the UNet's total downsampling."""
    return _padded_for_depth(sample_size, len(cfg.block_out_channels))


def _norm_groups(channels: tuple[int, ...]) -> int:
    """The largest GroupNorm group count (<= 32, diffusers' default) that divides every block's channel count."""
    common = math.gcd(*channels)
    return max(g for g in range(1, min(32, common) + 1) if common % g == 0)


def build_unet(cfg: DiffusionConfig, in_channels: int, sample_size: tuple[int, int]) -> UNet2DModel:
    """A UNet2DModel predicting noise for scalograms of size `sample_size` = (S, T) with `in_channels` channels.

    The model's configured sample size is the padded one (see `padded_size`); its weights do not depend on it.
    """
    cfg.validate()
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
    )


def build_train_scheduler(cfg: DiffusionConfig, data_abs_max: float | None = None) -> DDPMScheduler:
    """The DDPM noise schedule used for training, carrying the clean-sample clipping range used when sampling.

    diffusers clips estimated clean samples to [-1, 1] by default, which suits images but would truncate
    scalogram coefficients that legitimately exceed 1 after dataset-wide scaling. Clipping itself is still
    needed: at the last timesteps of the cosine schedule alpha_bar is ~1e-9, and the clean-sample estimate
    derived from an epsilon prediction divides by sqrt(alpha_bar), so a full-length DDPM chain diverges without
    it. Hence the range is `CLIP_MARGIN` times the largest |value| in the training data, which leaves room for
    more extreme values than were seen while still bounding the estimate. It is saved with the scheduler, so
    DDIM/DDPM samplers built from this config inherit it (DPM-Solver does not clip; see build_sampling_scheduler).
    """
    clip = data_abs_max is not None and data_abs_max > 0
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        prediction_type="epsilon",
        clip_sample=clip,
        clip_sample_range=CLIP_MARGIN * float(data_abs_max) if clip else 1.0,
    )


def train_diffusion(
    x: np.ndarray,
    cfg: DiffusionConfig,
    device: torch.device | str | None = None,
    progress: ProgressFn | None = None,
    checkpointing: Checkpointing | None = None,
) -> DiffusionResult:
    """Train a noise-predicting UNet on scalograms `x` (N, C, S, T) with MSE loss and AdamW.

    Deterministic for a given `cfg.seed` on CPU: weight init, shuffling, noise and timesteps all come from it.
    `progress(step, total, {"epoch", "loss"})` is called after every optimizer step. With `checkpointing`, the
    complete training state is saved every `checkpointing.every` steps and a checkpoint of the same config and
    data is resumed ("resuming from step N" in its log), giving the same final weights as an uninterrupted run.
    A NaN/inf loss or weight raises TrainingDivergedError naming the step; nothing non-finite is checkpointed.
    """
    x = check_scalograms(x)
    cfg.validate()
    device = resolve_device(device)
    n, channels, height, width = x.shape
    padded_h, padded_w = padded_size((height, width), cfg)
    padding = (0, padded_w - width, 0, padded_h - height)  # F.pad order: last dim first
    data = torch.from_numpy(x)

    batch_size = min(cfg.batch_size, n)
    total_steps = cfg.epochs * math.ceil(n / batch_size)
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    checkpointer = None
    if checkpointing is not None:
        checkpointer = checkpointing.bind("diffusion", fingerprint("diffusion", cfg.to_dict(), x))

    with seeded(cfg.seed, device) as generator:
        model = build_unet(cfg, channels, (height, width)).to(device)
        scheduler = build_train_scheduler(cfg, data_abs_max=float(np.abs(x).max()))
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
        state = checkpointer.restore(model, optimizer, generator) if checkpointer is not None else None
        state = state or TrainingState()
        losses = state.losses
        epoch_losses: list[float] = [float(v) for v in state.extra.get("epoch_losses", [])]
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
                loss = F.mse_loss(model(noisy, timesteps).sample, noise)
                check_finite_loss(loss.item(), len(losses) + 1, "diffusion", cfg.learning_rate)

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
                optimizer.step()

                losses.append(loss.item())
                if progress is not None:
                    progress(len(losses), total_steps, {"epoch": epoch + 1, "loss": losses[-1]})
                if checkpointer is not None and checkpointer.due(len(losses)):
                    checkpointer.save(
                        TrainingState(step=len(losses), epoch=epoch, batch=batch, order=order, losses=losses,
                                      extra={"epoch_losses": epoch_losses}),
                        model, optimizer, generator,
                    )
                if len(losses) >= total_steps:
                    break
            epoch_losses.append(float(np.mean(losses[epoch_start:])))
        model.eval()
        check_finite_weights(model, len(losses), "diffusion", cfg.learning_rate)
        if checkpointer is not None and not state.done:
            checkpointer.save(
                TrainingState(step=len(losses), epoch=cfg.epochs, losses=losses, done=True,
                              extra={"epoch_losses": epoch_losses}),
                model, optimizer, generator,
            )

    return DiffusionResult(
        model=model,
        scheduler=scheduler,
        losses=losses,
        epoch_losses=epoch_losses,
        sample_shape=(channels, height, width),
        config=cfg,
    )


def _scheduler_config(train_scheduler: Any) -> dict[str, Any]:
    if train_scheduler is None:
        return dict(build_train_scheduler(DiffusionConfig()).config)
    if hasattr(train_scheduler, "config"):
        return dict(train_scheduler.config)
    return dict(train_scheduler)


def build_sampling_scheduler(sampler: str, train_scheduler: Any = None) -> SchedulerMixin:
    """A reverse-process scheduler of kind `sampler` sharing the training noise schedule.

    Timesteps are spaced "leading" (t = T - T/steps, ..., 0), not "trailing": the cosine schedule caps its last
    beta at 0.999, so alpha_bar at t = T - 1 is ~1e-9 and turning an epsilon prediction into a clean-sample
    estimate there divides by sqrt(alpha_bar) ~ 5e-5, amplifying any prediction error ~20000-fold. (Only a
    1000-step DDPM chain still visits that timestep; the clipping range saved in the scheduler bounds it.)
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler={sampler!r} is not one of {sorted(SAMPLERS)}; 'ddim' is a good default.")
    return SAMPLERS[sampler].from_config(_scheduler_config(train_scheduler), timestep_spacing="leading")


def sample_diffusion(
    model: UNet2DModel,
    sample_shape: tuple[int, int, int],
    n: int,
    *,
    sampler: str = "ddim",
    num_inference_steps: int = 50,
    seed: int = 0,
    device: torch.device | str | None = None,
    train_scheduler: Any = None,
    batch_size: int = 64,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Generate `n` scalograms shaped `sample_shape` = (C, S, T); returns float32 (n, C, S, T).

    `train_scheduler` is the training DDPMScheduler or its config (as returned by `load_diffusion`); None means
    the default DiffusionConfig schedule, which is only right if the model was trained with it. The same `seed`
    gives the same samples for the same `batch_size`. `device=None` samples where the model already is;
    otherwise the model is moved there. `progress(step, total, {"batch"})` is called after every denoising step.
    """
    scheduler = build_sampling_scheduler(sampler, train_scheduler)
    check_positive("n", n)
    check_positive("batch_size", batch_size)
    max_steps = scheduler.config.num_train_timesteps
    if not 1 <= num_inference_steps <= max_steps:
        raise ConfigError(
            f"num_inference_steps={num_inference_steps} must be between 1 and the {max_steps} training timesteps."
        )
    channels, height, width = (int(v) for v in sample_shape)
    if channels != model.config.in_channels:
        raise ConfigError(
            f"sample_shape={tuple(sample_shape)} has {channels} channels but the model was trained with "
            f"{model.config.in_channels}; pass the sample_shape saved with the model."
        )
    if device is None:
        device = next(model.parameters()).device
    else:
        device = resolve_device(device)
        model.to(device)
    padded_h, padded_w = _padded_for_depth((height, width), len(model.config.block_out_channels))

    generator = torch.Generator(device="cpu").manual_seed(seed)
    n_batches = math.ceil(n / batch_size)
    total = n_batches * num_inference_steps
    out = np.empty((n, channels, height, width), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            step = 0
            for batch, start in enumerate(range(0, n, batch_size)):
                size = min(batch_size, n - start)
                scheduler.set_timesteps(num_inference_steps, device=device)
                sample = torch.randn((size, channels, padded_h, padded_w), generator=generator).to(device)
                sample = sample * scheduler.init_noise_sigma
                for t in scheduler.timesteps:
                    noise_pred = model(scheduler.scale_model_input(sample, t), t).sample
                    sample = scheduler.step(noise_pred, t, sample, generator=generator).prev_sample
                    step += 1
                    if progress is not None:
                        progress(step, total, {"batch": batch + 1})
                out[start : start + size] = sample[:, :, :height, :width].float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


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
) -> Path:
    """Save model, scheduler and metadata under `directory` (unet/, scheduler/, wavefin.json), atomically.

    `result` is a DiffusionResult, or a (model, scheduler) pair together with `config` and `sample_shape`.
    `extra` holds caller metadata such as the scaling statistics needed to undo the scalogram scaling; numpy
    scalars and arrays in it are converted to JSON. Everything is written to a temporary sibling directory and
    renamed into place, so a failed save leaves any previous model untouched and nothing half-written.
    """
    if isinstance(result, DiffusionResult):
        model, scheduler = result.model, result.scheduler
        config, sample_shape = result.config, result.sample_shape
    else:
        model, scheduler = result
        if config is None or sample_shape is None:
            raise TypeError("save_diffusion((model, scheduler), ...) also needs config= and sample_shape=.")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "sample_shape": [int(v) for v in sample_shape],
        "extra": extra or {},
    }
    try:
        meta_text = json.dumps(meta, indent=2, default=_json_default)
    except TypeError as exc:
        raise ConfigError(f"save_diffusion extra= must be JSON-serialisable: {exc}") from exc

    directory = Path(directory)
    refuse_non_finite_state(model.state_dict(), directory)
    with atomic_directory(directory) as tmp:
        model.save_pretrained(tmp / "unet", safe_serialization=True)
        scheduler.save_pretrained(tmp / "scheduler")
        (tmp / "wavefin.json").write_text(meta_text)
    return directory


def load_diffusion(
    directory: str | Path, device: torch.device | str | None = "cpu"
) -> tuple[UNet2DModel, DDPMScheduler, dict[str, Any]]:
    """Load what `save_diffusion` wrote: (model in eval mode, training scheduler, meta).

    meta has "config" (a DiffusionConfig dict), "sample_shape" (a tuple) and "extra" (the caller's dict).
    """
    directory = Path(directory)
    meta_path = directory / "wavefin.json"
    if not meta_path.is_file():
        raise DataError(f"{directory} is not a saved wavefin diffusion model ({meta_path.name} is missing).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT_NAME or meta.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(
            f"{meta_path} has format {meta.get('format')!r} version {meta.get('format_version')!r}; "
            f"this wavefin reads {FORMAT_NAME!r} up to version {FORMAT_VERSION}."
        )
    model = UNet2DModel.from_pretrained(directory / "unet", low_cpu_mem_usage=False, use_safetensors=True).to(
        resolve_device(device)
    )
    model.eval()
    scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")
    meta["sample_shape"] = tuple(meta["sample_shape"])
    return model, scheduler, meta
