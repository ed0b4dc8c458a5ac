"""Run profiles: the defaults every asset `Config` starts from.

`quick` (the default) sizes everything for a laptop CPU: the whole graph materializes in minutes. `full` is
GPU-sized. Pick one with `WAVEFIN_PROFILE=quick|full` before Dagster loads the definitions; any single knob can
still be overridden per run through Dagster run config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wavefin_core.errors import ConfigError

PROFILE_ENV = "WAVEFIN_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    # raw_prices (Merton jump diffusion series)
    mjd_days: int
    mjd_freq: str
    # segments
    window: int
    stride: int
    # scalograms
    num_scales: int
    # diffusion_model
    unet_channels: tuple[int, ...]
    unet_attention: bool
    diffusion_epochs: int
    diffusion_batch_size: int
    diffusion_max_steps: int | None
    diffusion_learning_rate: float
    # synthetic_series
    n_synthetic: int
    inference_steps: int
    # forecasters
    classifier_epochs: int
    classifier_arch: str
    # diffusion_model, forecasters: optimizer steps between training checkpoints; model versions kept on disk
    checkpoint_every: int = 200
    keep_versions: int = 3
    # synthetic_series: the sampler (and batch) of the generated windows, and how many windows each sampler of
    # the samplers table draws when it is not the main one (DDPM runs 1000 network calls per window)
    sampler: str = "dpmsolver"
    sampling_batch_size: int = 64  # CPU: 64 was 2x faster per window than 256 here (activations fit in cache)
    # synthetic_series: time DDPM(1000), DDIM(50), DPM-Solver++(20) on the trained model (the samplers table);
    # off in quick (it was ~25% of `make run`): bench/bench_diffusion.py measures the same table on demand
    benchmark_samplers: bool = True
    bench_ddpm_samples: int = 16
    bench_ddim_samples: int = 128
    # diffusion_model levers (issue 8): the image representation, per-series class conditioning, the training
    # objective, LR warm-up + cosine decay, EMA of the weights, the stride of the training windows (1 = every
    # shift of the train returns); synthetic_series: range projection at every sampler step
    # haar: the best discriminative score of the three in the ablation (bench/bench_generation_ablation.py)
    diffusion_representation: str = "haar"  # complex | logmag_phase | haar
    diffusion_conditioning: str = "class"  # class | none (none: one series per model)
    diffusion_prediction_type: str = "v_prediction"  # epsilon | v_prediction | sample
    diffusion_warmup_steps: int = 25
    diffusion_lr_schedule: str = "cosine"  # cosine | constant
    diffusion_ema_decay: float | None = 0.995
    diffusion_train_stride: int = 1
    # volatility-regime conditioning (wavefin_core.models.regimes): realized-volatility quantile buckets per series
    # (0 = off) and the window normalisation (none | window | bucket); measured in bench/bench_generation_ablation.py
    # --ladder regimes. On: K=4 with each window divided by its own volatility halved sp500's discriminative score
    # (0.411 -> 0.214, better on all 5 seeds) and lowered mjd's (0.130 -> 0.079, within noise), at no extra cost
    diffusion_vol_buckets: int = 4
    diffusion_vol_normalize: str = "window"
    sampling_projection: bool = True
    # synthetic_series (issue 8): scale each Haar level of a series' generated images so its mean square is the
    # train windows' (haar representation only; exactly realizable still). bench/bench_generation_ablation.py
    # --ladder levels: the 300-step model under-fills the coarse levels (0.6-0.7x the train energy), which made
    # the lag-1 ACF negative; calibrated, it is back within 0.05 of the real one. False: the raw samples
    sampling_level_calibration: bool = True
    # synthetic_series.scale_draw: "drift" draws each sample's volatility from its bucket's train windows of a
    # similar normalised drift instead of independently of its shape (sampling only). bench/results/
    # ablation_leverage.json (CPU, 600 steps, training seeds 0/1): sp500 leverage (mean over 20 scale draws)
    # -0.021/-0.017 -> -0.031/-0.030 (real -0.084; GARCH-t 0.002), discriminative +0.016 +- 0.047 (noise),
    # mjd unchanged. It restores the across-window part; the model's shapes still lack the within-window part
    sampling_scale_draw: str = "drift"
    # synthetic_series.shape_calibration: none | rms | marginal (wavefin_core.models.regimes.SHAPE_CALIBRATIONS).
    # bench/results/ablation_shapes.json and ablation_shapes_bucket.json (600 steps, training seeds 0 / 1):
    # "marginal" (per volatility bucket) moved sp500's discriminative score 0.248 / 0.269 -> 0.179 / 0.259, its
    # shape-only score 0.118 / 0.160 -> 0.037 / 0.129 (GARCH-t 0.216 / 0.110) and its facts 7 / 8 -> 9 / 9 of 13;
    # mjd within noise (0.017 / 0.036 -> 0.025 / 0.028); lag-1 ACF unchanged. "rms" alone changed nothing.
    # "marginal_leverage" (bench/results/ablation_leverage_calibration.json, same seeds): the within-window
    # leverage fitted to the train shapes' (wavefin_core.models.leverage) moved sp500's leverage -0.037 / -0.037
    # -> -0.054 / -0.064 (real test -0.084: reproduced), its discriminative score 0.178 / 0.256 -> 0.161 / 0.138
    # and its shape-only score 0.040 / 0.126 -> 0.034 / 0.042; over training seeds 0-3 the score paired -0.062 +-
    # 0.019 se (lower on every seed), vs GARCH-t -0.053 +- 0.018 se; mjd within noise (theta 0, 0, -0.05, -0.25)
    sampling_shape_calibration: str = "marginal_leverage"
    # raw_prices `planted` partition: daily bars of the planted-signal series (wavefin_core.data.simulate)
    planted_days: int = 6000
    # forecasters: the models fitted (wavefin_core.forecast_suite.ALL_MODELS), the augmentation experiment and
    # the walk-forward folds (0 = off)
    forecast_models: tuple[str, ...] = ("scalogram", "lstm", "haar_lstm", "cnn1d", "cnn1d_attention", "logistic",
                                        "logistic_wavelet", "gbm", "arima", "ridge", "gbm_return")
    forecast_augment: bool = False
    walk_forward_folds: int = 0
    # ARIMA (p, q) fixed, or None: chosen by AIC on each series' train returns (9 fits per series: ~100 s on
    # the quick series under load, against ~10 s for one fixed order)
    arima_order: tuple[int, int] | None = None
    # generation_report: seeds of the post-hoc discriminative and TSTR predictive scores
    discriminative_seeds: int = 5
    predictive_seeds: int = 3
    # generation_report: "does synthetic data help a forecaster?" (wavefin_core.evaluation.augmentation): seeds
    # (0 = off) and epochs of the 1-D CNN of both arms, the stride of the real train examples over the contiguous
    # train returns (1 = every window, what the generator trained on) and generated examples per real one
    augmentation_seeds: int = 3
    augmentation_epochs: int = 8
    augmentation_train_stride: int = 1
    augmentation_synthetic_ratio: float = 1.0
    # forecasters: the Dense U-Net volume translation (return scalogram -> log-volume scalogram, issue 9) on
    # every series with a usable volume column. The defaults are wavefin_core's DenseUNetConfig (~0.5 M
    # parameters, 30 epochs with early stopping); volume_test_stride scores every k-th (stride-1) test window.
    volume_translation: bool = True
    volume_unet_stem_channels: int = 32
    volume_unet_growth_rate: int = 14
    volume_unet_layers_per_block: int = 4
    volume_unet_levels: int = 3
    volume_epochs: int = 30
    volume_max_steps: int | None = None
    volume_batch_size: int = 32
    volume_learning_rate: float = 1e-3
    volume_test_stride: int = 1


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        mjd_days=8,
        mjd_freq="minute",
        window=64,
        stride=8,
        num_scales=16,  # condition number 6.4 (window 64); half the UNet cost of 32 scales
        unet_channels=(16, 32, 64),
        unet_attention=False,
        diffusion_epochs=60,
        diffusion_batch_size=32,
        # 600 steps (warm-up 50) scored better than 300 on both series and both training seeds (bench/results/
        # ablation_objective.json: -0.013 mjd, -0.035 sp500); the grouped report networks paid for the ~60 s
        diffusion_max_steps=600,
        diffusion_warmup_steps=50,
        diffusion_learning_rate=1e-3,
        n_synthetic=500,  # per series (the report draws as many windows from every classical generator)
        benchmark_samplers=False,
        inference_steps=10,  # DPM-Solver++(10)
        bench_ddpm_samples=10,  # the fewest the discriminative classifier accepts
        bench_ddim_samples=32,
        classifier_epochs=8,
        classifier_arch="cnn",
        # every model but the 1-D CNN + attention (35 s, 5x the plain 1-D CNN here); ARIMA at a fixed order
        forecast_models=("scalogram", "lstm", "haar_lstm", "cnn1d", "logistic", "logistic_wavelet", "gbm", "arima",
                         "ridge", "gbm_return"),
        arima_order=(1, 1),
        walk_forward_folds=3,
        # Dense U-Net volume translation within the ~20 s `make run` can spare for 3 series: a 14 k-parameter
        # U-Net (2 levels) for 40 steps of 16 windows per series, scored on every 8th test window; measured
        # 19 CPU-s for mjd + sp500 + planted (30 steps of 32: 26 s and a worse sp500 score). The full profile
        # keeps the ~0.5 M-parameter default.
        volume_unet_stem_channels=8,
        volume_unet_growth_rate=6,
        volume_unet_layers_per_block=2,
        volume_unet_levels=2,
        volume_max_steps=40,
        volume_batch_size=16,
        volume_learning_rate=3e-3,
        volume_test_stride=8,
        # real train examples every 8 returns (the segments' stride): stride 1 took ~4x longer than the ~20 s
        # `make run` can spare here; 3 seeds x 2 arms x 2 series = 12 small 1-D CNN fits
        augmentation_train_stride=8,
        # TSTR over 2 seeds (full: 3): 14 generator scorings x 0.9 s per seed was what kept `make run` above
        # 5 minutes here (5 min 08 s with 3)
        predictive_seeds=2,
    ),
    "full": Profile(
        name="full",
        checkpoint_every=1000,  # a full-size UNet checkpoint (weights + AdamW moments) is ~0.2 GB
        mjd_days=30,
        mjd_freq="minute",
        window=256,
        stride=16,
        num_scales=64,
        unet_channels=(64, 128, 256, 256),
        unet_attention=True,
        diffusion_epochs=60,
        diffusion_batch_size=64,
        diffusion_max_steps=None,
        diffusion_learning_rate=2e-4,
        diffusion_warmup_steps=500,  # ~24,000 steps at stride 1 (60 epochs); not measured on a GPU yet
        diffusion_ema_decay=0.999,
        n_synthetic=4096,  # per series
        inference_steps=20,  # DPM-Solver++(20)
        sampling_batch_size=1024,
        bench_ddpm_samples=512,
        bench_ddim_samples=2048,
        classifier_epochs=30,
        classifier_arch="cnn",
        forecast_augment=True,
        walk_forward_folds=5,
        augmentation_seeds=5,
        augmentation_epochs=20,
    ),
}


def active_profile() -> Profile:
    """The profile named by `WAVEFIN_PROFILE` (default `quick`)."""
    name = os.environ.get(PROFILE_ENV, "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise ConfigError(f"{PROFILE_ENV}={name!r} is not a profile; use one of {sorted(PROFILES)}.")
    return PROFILES[name]


PROFILE = active_profile()
