"""Reverse diffusion for the scalogram UNet: DDPM / DDIM / DPM-Solver++ with range projection at every step.

Every sampler step goes through the predicted clean sample x0: the model output is turned into x0 with the
training parameterization (epsilon, v or x0) and the scheduler's alpha_bar at t, x0 is clamped to the saved
clipping range, the padding is cropped, `project` maps x0 to the nearest realizable image (e.g. the range of the
CWT: inverse CWT, then CWT), the canvas is re-padded with zeros, and the scheduler steps with x0 itself: the
sampling schedulers are built with `prediction_type="sample"`, so what they receive is exactly the projected x0
(diffusers' DDPM, DDIM and DPM-Solver++ all accept it; DPM-Solver++ works on x0 internally anyway, see
`DPMSolverMultistepScheduler.convert_model_output`). After the last step the final sample is projected once
more, because DDPM's and DDIM's last update is a mix of x0 and the current noisy sample. So, with `project`,
every returned sample is realizable up to float rounding (relative residual ~1e-7), and the model never drifts
off the set of real scalograms during the chain.

Without `project` the same loop is the plain sampler (feeding x0 instead of epsilon is the same update).
`scheduler_options` pass the diffusers scheduler's own knobs through (e.g. DPM-Solver++'s
`final_sigmas_type`), checked against its signature.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, SchedulerMixin, UNet2DModel

from wavefin_core.errors import ConfigError
from wavefin_core.models.training import ProgressFn, check_positive, cpu_threads, resolve_device

SAMPLERS = {"ddim": DDIMScheduler, "dpmsolver": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")

Projection = Callable[[torch.Tensor], torch.Tensor]

#: Intra-op torch threads for diffusion training and sampling on CPU; None keeps torch's setting (all cores).
#: Measured on 2 vCPUs (bench/bench_diffusion.py and an interleaved A/B of `train_diffusion`): on an idle machine
#: torch's 2 threads are 1.5x faster than 1 (0.20-0.22 vs 0.30-0.34 s per quick step), while on a machine busy
#: with other work 1 thread wins by 3x or more (0.52 vs 1.70 s at load 4, 2.3 vs 24.0 s at load 18). `make run`
#: trains alone, so the default is all cores; pass `threads=1` (or set torch's count) when steps share the cores.
CPU_THREADS: int | None = None




def padded_for_depth(sample_size: tuple[int, int], n_blocks: int) -> tuple[int, int]:
    """(H, W) rounded up to the next multiple of 2**(n_blocks - 1), the UNet's total downsampling."""
    multiple = 2 ** (n_blocks - 1)
    height, width = sample_size
    return (math.ceil(height / multiple) * multiple, math.ceil(width / multiple) * multiple)


def _scheduler_config(train_scheduler: Any) -> dict[str, Any]:
    if train_scheduler is None:
        from wavefin_core.models.diffusion import DiffusionConfig, build_train_scheduler

        return dict(build_train_scheduler(DiffusionConfig()).config)
    config = dict(train_scheduler.config) if hasattr(train_scheduler, "config") else dict(train_scheduler)
    # diffusers' private bookkeeping ("_use_default_values" makes `from_config` drop the keys it lists, which
    # would silently undo the overrides below): an in-memory and a reloaded scheduler must build the same sampler.
    return {key: value for key, value in config.items() if not key.startswith("_")}


def default_spacing(prediction_type: str) -> str:
    """"leading" for epsilon models, "trailing" for v / x0 models.

    With epsilon, the clean-sample estimate at t divides by sqrt(alpha_bar_t): the cosine schedule's last
    timesteps (alpha_bar ~1e-9 at t = T - 1, sqrt = 0.031 at t = 980) turn small epsilon errors into huge x0
    errors, so "leading" spacing (which never visits t > T - T/steps) is the safer one. v- and x0-models
    estimate x0 directly and stay well conditioned at t = T - 1, so "trailing" spacing, which starts from the
    pure-noise end of the schedule the model was trained on, is right for them.
    """
    return "leading" if prediction_type == "epsilon" else "trailing"


def build_sampling_scheduler(
    sampler: str, train_scheduler: Any = None, *, timestep_spacing: str | None = None,
    scheduler_options: dict[str, Any] | None = None,
) -> SchedulerMixin:
    """A reverse-process scheduler of kind `sampler` sharing the training noise schedule, fed with x0.

    It is built with `prediction_type="sample"` (the loop hands it the, possibly projected, clean-sample
    estimate) and without its own clipping (the loop clamps x0 to the training scheduler's range before
    projecting, so clipping cannot undo a projection). `timestep_spacing=None` picks `default_spacing` of the
    model's training prediction type. `scheduler_options` are extra constructor arguments of the diffusers
    scheduler (e.g. DPM-Solver++'s `final_sigmas_type`, `lower_order_final`, `euler_at_final`,
    `use_karras_sigmas`, `algorithm_type`); a name the scheduler does not take, or one this loop owns, is a
    ConfigError, so a typo cannot pass silently.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler={sampler!r} is not one of {sorted(SAMPLERS)}; 'dpmsolver' is a good default.")
    config = _scheduler_config(train_scheduler)
    spacing = timestep_spacing or default_spacing(config.get("prediction_type", "epsilon"))
    if spacing not in TIMESTEP_SPACINGS:
        raise ConfigError(f"timestep_spacing={spacing!r} is not one of {TIMESTEP_SPACINGS}.")
    config.update(_checked_scheduler_options(sampler, scheduler_options))
    config.update(prediction_type="sample", clip_sample=False, timestep_spacing=spacing)
    return SAMPLERS[sampler].from_config(config)


#: Scheduler arguments the sampling loop sets itself (see `build_sampling_scheduler`): not user options.
_LOOP_OWNED = ("prediction_type", "clip_sample", "timestep_spacing", "num_train_timesteps", "beta_schedule",
               "trained_betas", "beta_start", "beta_end", "rescale_betas_zero_snr")


def _checked_scheduler_options(sampler: str, options: dict[str, Any] | None) -> dict[str, Any]:
    if not options:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(f"scheduler_options={options!r} must be a dict of {SAMPLERS[sampler].__name__} "
                          "arguments, e.g. {'final_sigmas_type': 'sigma_min'}.")
    accepted = set(inspect.signature(SAMPLERS[sampler].__init__).parameters) - {"self"}
    for name in options:
        if name in _LOOP_OWNED:
            raise ConfigError(f"scheduler_options[{name!r}] is set by the sampling loop (or the training schedule) "
                              "and cannot be overridden; drop it (timestep_spacing has its own argument).")
        if name not in accepted:
            raise ConfigError(f"scheduler_options[{name!r}] is not an argument of {SAMPLERS[sampler].__name__} "
                              f"(sampler={sampler!r}); valid ones include {sorted(accepted - set(_LOOP_OWNED))}.")
    return dict(options)


def predicted_clean(
    model_output: torch.Tensor, sample: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """x0 from a model output of `prediction_type` at noise level alpha_bar (x_t = sqrt(a) x0 + sqrt(1-a) eps)."""
    sqrt_a, sqrt_1ma = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    if prediction_type == "epsilon":
        return (sample - sqrt_1ma * model_output) / sqrt_a
    if prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1-a) x0
        return sqrt_a * sample - sqrt_1ma * model_output
    if prediction_type == "sample":
        return model_output
    raise ConfigError(f"prediction_type={prediction_type!r} is not one of {PREDICTION_TYPES}.")


def class_label_tensor(
    model: UNet2DModel, class_labels: int | Sequence[int] | np.ndarray | None, n: int
) -> torch.Tensor | None:
    """The (n,) long tensor of class labels the model needs, or None for an unconditional model.

    ConfigError when a conditional model gets no labels, an unconditional one gets some, or a label is out of
    the model's range, each saying what to pass instead.
    """
    n_classes = model.config.num_class_embeds
    if n_classes is None:
        if class_labels is not None:
            raise ConfigError("class_labels were given but the model was trained without conditioning "
                              "(conditioning='none'); sample without class_labels or retrain with conditioning.")
        return None
    if class_labels is None:
        raise ConfigError(f"the model is conditioned on {n_classes} series (classes); pass class_labels= "
                          "(an int or one label per sample) naming the series to generate.")
    labels = np.broadcast_to(np.asarray(class_labels, dtype=np.int64).reshape(-1), (n,)) if np.ndim(
        class_labels) == 0 else np.asarray(class_labels, dtype=np.int64)
    if labels.shape != (n,):
        raise ConfigError(f"class_labels has {labels.size} entries for n={n} samples; pass one int or n labels.")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ConfigError(f"class_labels must be in [0, {n_classes}) (the model's classes); got "
                          f"{sorted(set(labels.tolist()))}.")
    return torch.from_numpy(np.ascontiguousarray(labels))


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
    class_labels: int | Sequence[int] | np.ndarray | None = None,
    project: Projection | None = None,
    timestep_spacing: str | None = None,
    threads: int | None = CPU_THREADS,
    scheduler_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Generate `n` images shaped `sample_shape` = (C, H, W); returns float32 (n, C, H, W).

    `train_scheduler` is the training DDPMScheduler or its config (as `load_diffusion` returns it); None means
    the default DiffusionConfig schedule. `class_labels` (one int, or one per sample) names the class (series)
    of a class-conditioned model. `project` maps a batch of cropped x0 estimates (B, C, H, W) to the nearest
    realizable images (same shape and device); it is applied at every step and to the final samples (module
    docstring). The same `seed` gives the same samples for the same `batch_size`. `device=None` samples where
    the model already is. `progress(step, total, {"batch"})` is called after every denoising step. On CPU the
    chain runs with `threads` intra-op threads (`CPU_THREADS`; None: torch's current setting).
    `scheduler_options` go to the diffusers scheduler (see `build_sampling_scheduler`).
    """
    scheduler = build_sampling_scheduler(sampler, train_scheduler, timestep_spacing=timestep_spacing,
                                         scheduler_options=scheduler_options)
    train_config = _scheduler_config(train_scheduler)
    prediction_type = train_config.get("prediction_type", "epsilon")
    clip = float(train_config["clip_sample_range"]) if train_config.get("clip_sample") else None
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
    labels = class_label_tensor(model, class_labels, n)
    if device is None:
        device = next(model.parameters()).device
    else:
        device = resolve_device(device)
        model.to(device)
    padded_h, padded_w = padded_for_depth((height, width), len(model.config.block_out_channels))
    padding = (0, padded_w - width, 0, padded_h - height)
    alphas_cumprod = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)

    def realizable(x0: torch.Tensor) -> torch.Tensor:
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if project is None:
            return x0
        return F.pad(_checked_projection(project, x0[:, :, :height, :width]), padding)

    generator = torch.Generator(device="cpu").manual_seed(seed)
    total = math.ceil(n / batch_size) * num_inference_steps
    out = np.empty((n, channels, height, width), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), cpu_threads(device, threads):
            step = 0
            for batch, start in enumerate(range(0, n, batch_size)):
                size = min(batch_size, n - start)
                batch_labels = labels[start : start + size].to(device) if labels is not None else None
                scheduler.set_timesteps(num_inference_steps, device=device)
                sample = torch.randn((size, channels, padded_h, padded_w), generator=generator).to(device)
                sample = sample * scheduler.init_noise_sigma
                for t in scheduler.timesteps:
                    output = model(scheduler.scale_model_input(sample, t), t, class_labels=batch_labels).sample
                    x0 = realizable(predicted_clean(output, sample, alphas_cumprod[int(t)], prediction_type))
                    sample = scheduler.step(x0, t, sample, generator=generator).prev_sample
                    step += 1
                    if progress is not None:
                        progress(step, total, {"batch": batch + 1})
                final = sample[:, :, :height, :width]
                if project is not None:
                    final = _checked_projection(project, final)
                out[start : start + size] = final.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _checked_projection(project: Projection, images: torch.Tensor) -> torch.Tensor:
    projected = project(images)
    if not torch.is_tensor(projected) or projected.shape != images.shape:
        raise ConfigError(f"project= must return a tensor shaped like its input {tuple(images.shape)}; got "
                          f"{getattr(projected, 'shape', type(projected).__name__)}.")
    return projected.to(images.dtype)
