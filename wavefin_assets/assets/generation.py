"""Generative assets: diffusion_model → synthetic_series → generation_report."""

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wavefin_assets import tracking
from wavefin_assets.assets.common import (
    GPU_ASSET_KWARGS,
    MODEL_GROUP,
    REPORT_GROUP,
    checkpointing,
    local_manifest_dir,
    local_model_dir,
    log_progress,
    manifest_of_this_run,
    model_version,
    publish_model_version,
    select_series,
    stored_location,
)
from wavefin_assets.metadata import add_report_metadata, image_md, scalar_metadata
from wavefin_assets.profiles import PROFILE
from wavefin_assets.resources import DeviceResource, MLflowResource, StorageResource
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.versions import check_keep_versions, write_manifest

if TYPE_CHECKING:  # torch/diffusers load with these: the functions import them when they run
    from wavefin_core.evaluation.augmentation import SyntheticAugmentationConfig
    from wavefin_core.evaluation.reports import SeriesGeneration
    from wavefin_core.scalograms import ScalogramSet


class DiffusionModelConfig(dg.Config):
    series: list[str] = []  # empty: every materialized series
    block_out_channels: list[int] = list(PROFILE.unet_channels)
    layers_per_block: int = 1
    attention: bool = PROFILE.unet_attention
    num_train_timesteps: int = 1000
    epochs: int = PROFILE.diffusion_epochs
    batch_size: int = PROFILE.diffusion_batch_size
    learning_rate: float = PROFILE.diffusion_learning_rate
    max_steps: int | None = PROFILE.diffusion_max_steps
    seed: int = 0
    checkpoint_every: int = PROFILE.checkpoint_every  # optimizer steps between checkpoints (resumed after a crash)
    keep_versions: int = PROFILE.keep_versions  # model versions (one per run) kept under models/diffusion_model/
    # issue 8's levers. `representation`: how a window becomes an image (complex | logmag_phase | haar), fitted
    # per series on its train windows. `conditioning`: "class" trains one model over the selected series with a
    # series embedding; "none" needs exactly one series (series are never pooled unconditionally).
    representation: str = PROFILE.diffusion_representation
    conditioning: str = PROFILE.diffusion_conditioning
    prediction_type: str = PROFILE.diffusion_prediction_type  # epsilon | v_prediction | sample
    beta_schedule: str = "squaredcos_cap_v2"
    rescale_betas_zero_snr: bool = False
    warmup_steps: int = PROFILE.diffusion_warmup_steps
    lr_schedule: str = PROFILE.diffusion_lr_schedule  # cosine | constant
    ema_decay: float | None = PROFILE.diffusion_ema_decay  # None: no EMA (sample from the trained weights)
    train_stride: int = PROFILE.diffusion_train_stride  # training windows every `train_stride` train returns
    # Volatility-regime conditioning (wavefin_core.models.regimes): `vol_buckets` realized-volatility quantile
    # buckets per series (train windows only; 0 = off), the class label becomes (series, bucket) and sampling draws
    # buckets from the train frequencies. `vol_normalize`: none | window (divide each window by its own volatility,
    # rescale samples by an empirical draw from their bucket) | bucket (by the bucket's median volatility).
    vol_buckets: int = PROFILE.diffusion_vol_buckets
    vol_normalize: str = PROFILE.diffusion_vol_normalize


@dg.asset(
    group_name=MODEL_GROUP,
    description="One UNet2DModel (class-conditioned on the series) + DDPMScheduler trained on every series' "
    "train windows at stride `train_stride`, each encoded by its own representation fitted on its train split; "
    "v / epsilon / x0 objective, LR warm-up + cosine decay, EMA weights; checkpointed every `checkpoint_every` steps and resumed after a crash; saved with save_pretrained "
    "(safetensors) into a new version directory per run, models/diffusion_model/<run id>/.",
    **GPU_ASSET_KWARGS,
)
def diffusion_model(
    context: dg.AssetExecutionContext,
    config: DiffusionModelConfig,
    scalograms: dict[str, pa.Table],
    device: DeviceResource,
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    from wavefin_core.evaluation.plots import plot_training_curve, save_figure
    from wavefin_core.models import DiffusionConfig, save_diffusion, train_diffusion
    sets = select_series(scalograms, config.series)
    if config.conditioning == "none" and len(sets) > 1:
        raise ConfigError(f"diffusion_model.conditioning='none' with {len(sets)} series {list(sets)} would pool "
                          "them into one unconditional distribution; set conditioning='class' or select one "
                          "series (diffusion_model.series=[...]).")
    cfg = DiffusionConfig(
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        attention=config.attention, num_train_timesteps=config.num_train_timesteps, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
        max_steps=config.max_steps, conditioning=config.conditioning, prediction_type=config.prediction_type,
        beta_schedule=config.beta_schedule, rescale_betas_zero_snr=config.rescale_betas_zero_snr,
        warmup_steps=config.warmup_steps, lr_schedule=config.lr_schedule, ema_decay=config.ema_decay,
    )
    cfg.validate()
    if config.vol_buckets and config.conditioning != "class":
        raise ConfigError(f"diffusion_model.vol_buckets={config.vol_buckets} conditions the UNet on (series, "
                          "volatility bucket) and needs conditioning='class'; set conditioning='class' or "
                          "vol_buckets=0.")
    train_images, labels, representations, regimes = _regime_training_images(
        sets, config.representation, config.train_stride, config.vol_buckets, config.vol_normalize)
    per_series = max(config.vol_buckets, 1)
    counts = {name: int((labels // per_series == i).sum()) for i, name in enumerate(sets)}
    torch_device = device.torch_device()
    context.log.info(f"Training on {len(train_images)} {config.representation} images {train_images.shape[1:]} "
                     f"(train windows at stride {config.train_stride}: {counts}) on {device.describe()}")
    check_keep_versions(config.keep_versions)
    checkpoints = checkpointing(storage, "diffusion_model", config.checkpoint_every, context)
    model_dir = model_version(storage, "diffusion_model", context)
    with mlflow.start_run("diffusion_model", tags={"asset": "diffusion_model", "profile": PROFILE.name},
                          context=context) as run:
        run.log_params({**cfg.to_dict(), "series": ",".join(sets), "n_train": len(train_images),
                        "representation": config.representation, "train_stride": config.train_stride,
                        "vol_buckets": config.vol_buckets, "vol_normalize": config.vol_normalize,
                        "device": device.describe(), "checkpoint_every": config.checkpoint_every})
        result = train_diffusion(train_images, cfg, torch_device, progress=log_progress(context, "step", 50),
                                 checkpointing=checkpoints,
                                 labels=labels if cfg.conditioning == "class" else None,
                                 num_classes=len(sets) * per_series if cfg.conditioning == "class" else None)
        run.log_metric_history("train_loss", result.losses)
        save_diffusion(result, model_dir, series=list(sets),
                       representations={name: rep.to_dict() for name, rep in representations.items()},
                       regimes={name: r.to_dict() for name, r in regimes.items()} if config.vol_buckets else None,
                       extra={"train_stride": config.train_stride, "train_windows": counts})
        curve = storage.workdir("models", "plots") / "diffusion_loss.png"
        save_figure(plot_training_curve(result.losses), curve)
        storage.publish("models", "plots")
        run.log_artifact(curve)
        run.log_artifact(model_dir, "diffusion_model")
        first, last = float(np.mean(result.losses[:20])), float(np.mean(result.losses[-20:]))
        run.log_metrics({"loss_first20": first, "loss_last20": last})
        registered = tracking.register_diffusion(run, model_dir, list(sets), {"loss_last20": last})
        run_id = run.run_id
    manifest = {"path": stored_location(storage, model_dir), "version": context.run_id, "series": list(sets),
                "sample_shape": list(result.sample_shape), "mlflow_run_id": run_id, "device": device.describe(),
                "registered_model": registered}
    write_manifest(model_dir, manifest)
    checkpoints.clear()
    publish_model_version(context, storage, model_dir, config.keep_versions)  # uploaded when storage is remote
    return dg.Output(
        manifest,
        metadata={
            "mlflow_run_id": run_id,
            "mlflow_run": run.url_metadata(),
            "registered_model": f"{registered['name']} version {registered['version']}",
            "model_version": context.run_id,
            "device": device.describe(),
            "train_scalograms": len(train_images),
            "train_windows_per_series": dg.MetadataValue.json(counts),
            "representation": config.representation,
            "vol_buckets": config.vol_buckets,
            "vol_normalize": config.vol_normalize,
            "levers": dg.MetadataValue.json({k: cfg.to_dict()[k] for k in (
                "conditioning", "prediction_type", "warmup_steps", "lr_schedule", "ema_decay")}),
            "steps": len(result.losses),
            "loss_first20": first,
            "loss_last20": last,
            "model_path": dg.MetadataValue.path(manifest["path"]),
            "loss_curve": image_md(curve, "loss"),
        },
    )


def _training_images(sets: dict[str, "ScalogramSet"], representation: str, stride: int):
    """(images, class labels, representation per series), without volatility regimes (see below)."""
    return _regime_training_images(sets, representation, stride)[:3]


def _regime_training_images(sets: dict[str, "ScalogramSet"], representation: str, stride: int,
                            vol_buckets: int = 0, vol_normalize: str = "none"):
    """(images, class labels, representation per series, volatility regimes per series): every series' train
    windows at `stride`, encoded by a `representation` fitted on those train windows only (its own scaling, so
    series of different units never share one). Stride 1 is time-shift augmentation: every window of the
    contiguous train returns. With `vol_buckets`, labels are (series, volatility bucket) and the windows are
    normalised as `vol_normalize` says, all fitted on the train windows (wavefin_core.models.regimes)."""
    from wavefin_core.data.memory import check_allocation
    from wavefin_core.models.regimes import check_regime_config, encode_training_windows
    from wavefin_core.scalograms import contiguous_returns
    from wavefin_core.wavelets.representations import make_representation

    check_regime_config(vol_buckets, vol_normalize)
    if isinstance(stride, bool) or stride < 1:
        raise ConfigError(f"diffusion_model.train_stride={stride} must be an integer >= 1 (1 = every window).")
    windows, representations = {}, {}
    for name, s in sets.items():
        train = contiguous_returns(s, "train")
        width = s.windows.shape[1]
        windows[name] = np.lib.stride_tricks.sliding_window_view(train, width)[::stride]
        representations[name] = make_representation(representation, width, scales=s.scales, wavelet=s.wavelet)
    shapes = {name: rep.image_shape for name, rep in representations.items()}
    if len(set(shapes.values())) > 1:
        raise ConfigError(f"series have images of different shapes {shapes}; re-materialize them with the same "
                          "`window` and `num_scales`, or select series of one shape with diffusion_model.series.")
    shape = next(iter(shapes.values()))
    total = sum(len(w) for w in windows.values())
    check_allocation(f"diffusion_model training images ({representation})", total * int(np.prod(shape)) * 4 * 2,
                     f"{total} windows x {shape} x float32, twice while stacking",
                     "Raise diffusion_model.train_stride (fewer windows) or lower scalograms.num_scales.")
    images, labels, regimes = encode_training_windows(windows, representations, vol_buckets, vol_normalize)
    return images, labels, representations, regimes


class SyntheticSeriesConfig(dg.Config):
    n_samples: int = PROFILE.n_synthetic  # windows per series
    sampler: str = PROFILE.sampler  # dpmsolver (DPM-Solver++) | ddim | ddpm
    num_inference_steps: int = PROFILE.inference_steps
    batch_size: int = PROFILE.sampling_batch_size
    seed: int = 0
    series: list[str] = []  # empty: every series the model was trained on
    # The samplers table: DDPM(1000), DDIM(50) and DPM-Solver++(20) timed on this model, each scored against the
    # first series' test windows; a sampler that is not the main one draws this many windows.
    benchmark_samplers: bool = PROFILE.benchmark_samplers
    bench_ddpm_samples: int = PROFILE.bench_ddpm_samples
    bench_ddim_samples: int = PROFILE.bench_ddim_samples
    bench_discriminative_seeds: int = PROFILE.discriminative_seeds
    # Range projection at every sampler step (each series' own representation.project): samples are realizable
    # by construction (projection_residual ~0). False samples without it (the ablation's baseline).
    project: bool = PROFILE.sampling_projection
    # Per-level variance calibration (haar representation only; others sample unchanged and say so): each Haar
    # level of a series' generated images is scaled to the train windows' mean square, all its samples together
    # (HaarRepresentation.calibrate_levels). Samples stay exactly realizable. False: the raw samples.
    level_calibration: bool = PROFILE.sampling_level_calibration
    # How each sample's volatility is drawn (vol_normalize="window" models): "independent" of its generated shape,
    # or "drift": from its bucket's train windows of a similar normalised drift, which keeps the leverage effect
    # (falling windows are the volatile ones). Sampling only (wavefin_core.models.regimes.SCALE_DRAWS).
    scale_draw: str = PROFILE.sampling_scale_draw
    # The decoded shapes before scaling (vol_normalize="window" models): "none"; "rms" (each set to RMS 1, as every
    # train shape is); "marginal" (also mapped onto the distribution of the train shapes of the same volatility
    # bucket, the order of the values in each window kept): the quick model's shapes are near-Gaussian inside a
    # window where sp500's are not; "marginal_leverage": "marginal" after an asymmetric volatility response to the
    # window's own past, fitted so the shapes carry the train shapes' within-window leverage effect
    # (wavefin_core.models.leverage). Sampling only (wavefin_core.models.regimes.SHAPE_CALIBRATIONS).
    shape_calibration: str = PROFILE.sampling_shape_calibration


@dg.asset(
    group_name=MODEL_GROUP,
    description="Per series the model was trained on: n_samples synthetic images (own seed per series, the "
    "series' class label, projected onto that series' realizable images at every sampler step), decoded to log "
    "returns with that series' own representation (least-squares inverse), and the price "
    "path from its last train close. One row per window: series, sample, returns, price, projection_residual. "
    "Also times DDPM(1000) / DDIM(50) / DPM-Solver++(20) on the model (the report's samplers table).",
    **GPU_ASSET_KWARGS,
)
def synthetic_series(
    context: dg.AssetExecutionContext,
    config: SyntheticSeriesConfig,
    diffusion_model: dict,
    scalograms: dict[str, pa.Table],
    clean_prices: dict[str, pd.DataFrame],
    device: DeviceResource,
    storage: StorageResource,
) -> dg.Output[pa.Table]:
    from wavefin_core.evaluation.reports import derived_seed
    from wavefin_core.models import load_diffusion
    manifest = manifest_of_this_run(context, diffusion_model)
    _check_synthetic_config(config)
    torch_device = device.torch_device()
    model, scheduler, meta = load_diffusion(local_model_dir(storage, manifest["path"]), device=torch_device)
    names = list(config.series) or list(manifest["series"])
    unknown = [name for name in names if name not in meta["representations"]]
    if unknown:
        raise ConfigError(f"synthetic_series.series names {unknown}, which the diffusion model at "
                          f"{manifest['path']} was not trained on ({meta['series']}); pick from those or retrain.")
    targets = {name: _SeriesTarget.of(meta, name, config.project) for name in names}
    sets = select_series(scalograms, names)
    shape = tuple(manifest["sample_shape"])
    context.log.info(f"Sampling {config.n_samples} windows for each of {names} with {config.sampler}"
                     f"({config.num_inference_steps}) on {device.describe()}")
    parts, per_series, seconds, leverage_fits = [], {}, 0.0, {}
    for name in names:
        seed = derived_seed(config.seed, name)
        started = time.perf_counter()
        images, scales = _sample(context, model, scheduler, shape, config.n_samples, config.sampler,
                                 config.num_inference_steps, seed, config.batch_size, torch_device, name,
                                 targets[name], config.scale_draw, config.shape_calibration)
        seconds += time.perf_counter() - started
        images, level_factors = _calibrated(targets[name], images, config.level_calibration)
        returns, residual = _decode(targets[name], images, scales, name, config.sampler)
        leverage_fits[name] = scales.leverage_fit
        start_price, start_time = _last_train_close(sets[name], clean_prices, name)
        parts.append(_synthetic_rows(name, returns, residual, start_price))
        train_std = _train_std(targets[name], sets[name])
        per_series[name] = {"seed": seed, "start_price": start_price, "start_time": start_time,
                            "median_projection_residual": float(np.median(residual)),
                            "synthetic_return_std": float(returns.std()),
                            "train_return_std": train_std, "class_label": targets[name].label,
                            "vol_buckets": targets[name].regimes.k, "projected": config.project,
                            "level_calibration": level_factors, "scale_draw": config.scale_draw,
                            "shape_calibration": config.shape_calibration,
                            "leverage_calibration": scales.leverage_fit and scales.leverage_fit.to_dict()}
        fit = per_series[name]["leverage_calibration"]
        context.log.info(f"{name}: {len(images)} windows (seed {seed}, class {targets[name].label}); median "
                         f"projection residual {np.median(residual):.2e}; return std {returns.std():.3g} vs train "
                         f"{train_std:.3g}{_leverage_log(fit)}")
    table = pa.concat_tables(parts)
    main = {"sampler": config.sampler, "steps": config.num_inference_steps,
            "seconds_per_1000": 1000.0 * seconds / (config.n_samples * len(names))}
    samplers = (_benchmark_samplers(context, config, model, scheduler, shape, targets, sets[names[0]], table, main,
                                    torch_device, device.describe(), leverage_fits.get(names[0]))
                if config.benchmark_samplers else {})
    table = table.replace_schema_metadata({SYNTHETIC_METADATA_KEY: json.dumps({
        "series": names, "per_series": per_series, "sampler": config.sampler,
        "num_inference_steps": config.num_inference_steps, "n_samples": config.n_samples, "seed": config.seed,
        "seconds_per_1000": main["seconds_per_1000"], "device": device.describe(), "samplers": samplers,
        "model_path": manifest["path"], "model_version": manifest.get("version"),
        "model_series": manifest["series"], "model_weights": meta["weights"], "projected": config.project,
        "scale_draw": config.scale_draw, "shape_calibration": config.shape_calibration,
    }).encode()})
    return dg.Output(table, metadata={
        "samples_per_series": config.n_samples,
        "series": ", ".join(names),
        "sampler": f"{config.sampler}({config.num_inference_steps})",
        "seconds_per_1000": main["seconds_per_1000"],
        "device": device.describe(),
        "scale_draw": config.scale_draw, "shape_calibration": config.shape_calibration,
        **{f"median_projection_residual_{n}": v["median_projection_residual"] for n, v in per_series.items()},
        **{f"std_ratio_vs_train_{n}": v["synthetic_return_std"] / v["train_return_std"]
           for n, v in per_series.items()},
        **{f"leverage_calibration_{n}": v["leverage_calibration"] for n, v in per_series.items()
           if v["leverage_calibration"]},
        "samplers": dg.MetadataValue.md(_samplers_table_md(samplers)),
    })


def _leverage_log(fit: dict | None) -> str:
    """The log line's part on the within-window leverage calibration (shape_calibration="marginal_leverage")."""
    if not fit:
        return ""
    if not fit["fitted"]:  # a short train split or a small set: its curve would be noise (wavefin_core.models.leverage)
        return "; within-window leverage: nothing fitted (too few values for a curve)"
    return (f"; within-window leverage {fit['leverage_before']:.3f} -> {fit['leverage_after']:.3f} (train shapes "
            f"{fit['train_leverage']:.3f}; theta {fit['theta']:.2f}, memory {fit['memory']:.2f})")


SYNTHETIC_METADATA_KEY = b"wavefin.synthetic"


def _check_synthetic_config(config: SyntheticSeriesConfig) -> None:
    from wavefin_core.evaluation.reports import SAMPLERS
    if config.sampler not in SAMPLERS:
        raise ConfigError(f"synthetic_series.sampler={config.sampler!r} is not one of {sorted(SAMPLERS)}; "
                          "'dpmsolver' (DPM-Solver++) is the quick profile's default.")
    for field_name in ("n_samples", "num_inference_steps", "batch_size"):
        if getattr(config, field_name) < 1:
            raise ConfigError(f"synthetic_series.{field_name}={getattr(config, field_name)} must be >= 1.")
    if config.n_samples < 10:
        raise ConfigError(f"synthetic_series.n_samples={config.n_samples}: the report's classifiers need at least "
                          "10 windows per series; use >= 1000 for a meaningful report.")
    from wavefin_core.models.regimes import check_scale_draw, check_shape_calibration
    check_scale_draw(config.scale_draw)
    check_shape_calibration(config.shape_calibration)
    if config.benchmark_samplers and min(config.bench_ddpm_samples, config.bench_ddim_samples) < 10:
        raise ConfigError("synthetic_series.bench_ddpm_samples and bench_ddim_samples must be >= 10 (the "
                          "discriminative classifier needs 10 windows), or set benchmark_samplers=false.")


@dataclass
class _SeriesTarget:
    """What sampling one series needs: its series index (None: unconditional model), its fitted representation,
    its volatility regimes (k = 0 when the model has none) and whether to project onto its realizable images."""

    label: int | None
    representation: Any
    project: bool
    regimes: Any = None

    @classmethod
    def of(cls, meta: dict, name: str, project: bool) -> "_SeriesTarget":
        from wavefin_core.models.regimes import regimes_from_meta
        from wavefin_core.wavelets.representations import representation_from_dict

        conditioned = meta["config"].get("conditioning") == "class"
        return cls(label=meta["series"].index(name) if conditioned else None,
                   representation=representation_from_dict(meta["representations"][name]), project=project,
                   regimes=regimes_from_meta(meta, name))

    @property
    def train_std(self) -> float:
        """The train return std the representation saw (with volatility normalisation: of normalised windows,
        so synthetic_series reports the series' own train std instead)."""
        return float(self.representation.std)


def _sample(context: dg.AssetExecutionContext, model, scheduler, shape, n: int, sampler: str, steps: int,
            seed: int, batch_size: int, torch_device, label: str, target: _SeriesTarget,
            scale_draw: str = "independent", shape_calibration: str = "none") -> tuple[np.ndarray, Any]:
    """(images, sampling plan): each image's class label is (series, volatility bucket drawn from the train
    frequencies) and the plan rescales its decoded returns (by 1 without volatility normalisation; with
    scale_draw="drift" by a scale drawn for the decoded shape's drift: wavefin_core.models.regimes)."""
    from wavefin_core.models import sample_diffusion
    from wavefin_core.models.regimes import plan_samples
    total = -(-n // batch_size) * steps
    plan = plan_samples(target.regimes, target.label, n, seed, scale_draw, shape_calibration)
    labels, scales = plan.labels, plan
    return sample_diffusion(model, shape, n, sampler=sampler, num_inference_steps=steps, seed=seed,
                            device=torch_device, train_scheduler=scheduler, batch_size=batch_size,
                            class_labels=labels,
                            project=target.representation.project if target.project else None,
                            progress=log_progress(context, f"{label}: {sampler} step", max(1, total // 4))), scales


def _train_std(target: _SeriesTarget, s: "ScalogramSet") -> float:
    """The series' train return std: the representation's, unless it was fitted on volatility-normalised windows."""
    if target.regimes.normalize == "none":
        return target.train_std
    from wavefin_core.scalograms import contiguous_returns
    return float(contiguous_returns(s, "train").std())


def _calibrated(target: _SeriesTarget, images: np.ndarray, enabled: bool) -> tuple[np.ndarray, Any]:
    """(images, per-level factors applied or a note why none): issue 8's per-level variance calibration, on the
    representations that have it (haar: orthonormal levels, so the samples stay exactly realizable)."""
    if not enabled:
        return images, "off"
    calibrate = getattr(target.representation, "calibrate_levels", None)
    if calibrate is None:
        return images, f"n/a ({target.representation.name} representation)"
    images, factors = calibrate(images)
    return images, [float(f) for f in factors]


def _decode(target: _SeriesTarget, images: np.ndarray, scales: Any, series: str,
            sampler: str) -> tuple[np.ndarray, np.ndarray]:
    """Generated images -> (log returns in the series' units, relative projection residual per window: how far
    each image was from one a real series produces, 0 = exactly one). `scales` (the SamplingPlan of `_sample`)
    undo the volatility normalisation (decode is linear, so scaling after it equals decoding the scaled image)."""
    bad = ~np.isfinite(images.reshape(len(images), -1)).all(axis=1)
    if not bad.any():
        returns, residual = target.representation.decode(images)
        returns = scales.rescale(returns)
        bad = ~np.isfinite(returns).all(axis=1)
    if bad.any():
        raise DataError(
            f"synthetic_series: {int(bad.sum())} of {len(images)} windows for series {series!r} decoded to "
            f"NaN/inf returns (sampler {sampler}); the diffusion model diverged or the sampler is unstable. "
            "Retrain diffusion_model (lower learning_rate, more max_steps) or sample with sampler='ddim'."
        )
    return returns, residual


def _last_train_close(s: "ScalogramSet", clean_prices: dict[str, pd.DataFrame], series: str) -> tuple[float, str]:
    """The close at the end of the series' last train window (the last price the model's training data saw)."""
    if series not in clean_prices:
        raise ConfigError(f"clean_prices of series {series!r} is not materialized (needed for the price paths of "
                          "synthetic_series); materialize its data partition first.")
    end = pd.Timestamp(s.end_time[s.mask("train")][-1]).tz_localize("UTC")
    close = clean_prices[series]["close"]
    index = close.index if close.index.tz is not None else close.index.tz_localize("UTC")
    pos = int(index.searchsorted(end, side="right")) - 1
    if pos < 0:
        raise DataError(f"clean_prices of series {series!r} has no close at or before its last train window's end "
                        f"({end}); re-materialize its data partition so prices and segments match.")
    return float(close.iloc[pos]), str(index[pos])


def _synthetic_rows(series: str, returns: np.ndarray, residual: np.ndarray, start_price: float) -> pa.Table:
    n, t = returns.shape
    price = start_price * np.exp(np.cumsum(returns, axis=1))  # price after each step, from the last train close
    return pa.table({
        "series": pa.array([series] * n, pa.string()),
        "sample": pa.array(np.arange(n, dtype=np.int64)),
        "returns": pa.FixedSizeListArray.from_arrays(pa.array(returns.reshape(-1)), t),
        "price": pa.FixedSizeListArray.from_arrays(pa.array(price.reshape(-1)), t),
        "projection_residual": pa.array(residual.astype(np.float64)),
    })


def _test_windows(s: "ScalogramSet") -> np.ndarray:
    """The series' held-out test windows at stride 1, rebuilt from its stride-s test windows."""
    from wavefin_core.scalograms import contiguous_returns
    test = contiguous_returns(s, "test")
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(test, s.windows.shape[1]))


def _benchmark_samplers(context, config: SyntheticSeriesConfig, model, scheduler, shape, targets: dict,
                        reference: "ScalogramSet", table: pa.Table, main: dict, torch_device,
                        device_name: str, leverage_fit: Any = None) -> dict:
    """DDPM(1000), DDIM(50), DPM-Solver++(20) on the same model: seconds per 1,000 windows and the discriminative
    score of their windows against the first series' test windows (the main sampler's own windows are reused).
    The other samplers' sets are calibrated as the main set is: per level (on their own images), and with the main
    set's leverage fit (``leverage_fit``; a set of a few dozen windows is too small to fit one)."""
    from wavefin_core.evaluation.discriminative import posthoc_discriminative_score
    from wavefin_core.evaluation.reports import SAMPLERS, derived_seed

    name = reference.series
    real = _test_windows(reference)
    sizes = {"ddpm": config.bench_ddpm_samples, "ddim": config.bench_ddim_samples,
             "dpmsolver": config.bench_ddim_samples}
    out = {}
    for sampler, (label, steps) in SAMPLERS.items():
        if (sampler, steps) == (main["sampler"], main["steps"]):
            rows = table.filter(pc.equal(table["series"], name))
            windows = _fixed_list(rows.column("returns"))
            seconds_per_1000, note = main["seconds_per_1000"], "the main sampler: its windows and timing"
        else:
            started = time.perf_counter()
            images, scales = _sample(context, model, scheduler, shape, sizes[sampler], sampler, steps,
                             derived_seed(config.seed, name, sampler), config.batch_size, torch_device,
                             f"samplers table {label}", targets[name], config.scale_draw,
                             config.shape_calibration)
            scales.reuse_leverage = leverage_fit
            seconds_per_1000 = 1000.0 * (time.perf_counter() - started) / sizes[sampler]
            images, _ = _calibrated(targets[name], images, config.level_calibration)  # as the main set's
            windows, _ = _decode(targets[name], images, scales, name, sampler)
            note = ""
        score = posthoc_discriminative_score(real, windows, seeds=config.bench_discriminative_seeds)
        out[sampler] = {"steps": steps, "seconds_per_1000": seconds_per_1000, "discriminative_score": score["mean"],
                        "discriminative_std": score["std"], "seeds": score["seeds"], "n_samples": len(windows),
                        "series": name, "device": device_name, "batch_size": config.batch_size, "note": note}
        context.log.info(f"samplers table: {label}({steps}) {seconds_per_1000:.1f} s per 1000 windows, "
                         f"discriminative {score['mean']:.3f} +- {score['std']:.3f} on {len(windows)} windows")
    return out


def _samplers_table_md(samplers: dict) -> str:
    if not samplers:
        return "_not measured (benchmark_samplers=false)_"
    lines = ["| sampler | steps | windows | s per 1,000 | discriminative |", "|---|---|---|---|---|"]
    for name, e in samplers.items():
        lines.append(f"| {name} | {e['steps']} | {e['n_samples']} | {e['seconds_per_1000']:.1f} | "
                     f"{e['discriminative_score']:.3f} ± {e['discriminative_std']:.3f} |")
    return "\n".join(lines)


def _fixed_list(column: pa.ChunkedArray) -> np.ndarray:
    arr = column.combine_chunks()
    return arr.flatten().to_numpy().reshape(len(arr), -1)


class GenerationReportConfig(dg.Config):
    seed: int = 0
    discriminative_seeds: int = PROFILE.discriminative_seeds
    predictive_seeds: int = PROFILE.predictive_seeds
    classifier_steps: int | None = None  # training steps of the score networks (None: their defaults)
    max_inline_kb: int = 200  # thumbnails inlined into the Dagster metadata up to this size; the rest are links
    # "Does synthetic data help a forecaster?": a 1-D CNN trained on real train examples only vs real + generated
    # windows, same seeds and steps (wavefin_core.evaluation.augmentation). augmentation_seeds=0 turns it off.
    augmentation_seeds: int = PROFILE.augmentation_seeds
    augmentation_epochs: int = PROFILE.augmentation_epochs
    augmentation_train_stride: int = PROFILE.augmentation_train_stride
    augmentation_synthetic_ratio: float = PROFILE.augmentation_synthetic_ratio


@dg.asset(
    group_name=REPORT_GROUP,
    kinds={"markdown", "mlflow"},
    description="Per series: wavefin's windows against GARCH(1,1)-t, GJR-GARCH(1,1)-t, a stationary block "
    "bootstrap, a fitted Merton jump diffusion, i.i.d. Gaussian and real train windows (the floor), all fitted on "
    "the train split, scored on the held-out test windows at stride 1: discriminative (mean ± std over seeds), "
    "TSTR, TSGBench MDD/ACD/SD/KD, stylized facts; does synthetic data help a forecaster (a 1-D CNN trained on "
    "real only vs real + wavefin windows, same seeds); the samplers table; plots; metrics.json.",
)
def generation_report(
    context: dg.AssetExecutionContext,
    config: GenerationReportConfig,
    synthetic_series: pa.Table,
    scalograms: dict[str, pa.Table],
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    from wavefin_core.evaluation.reports import write_generation_report
    meta = json.loads(synthetic_series.schema.metadata[SYNTHETIC_METADATA_KEY])
    sets = select_series(scalograms, meta["series"])
    inputs = [_series_input(name, sets[name], synthetic_series, meta) for name in meta["series"]]
    out_dir = storage.workdir("reports", "generation")  # local; published below when storage is remote
    run_context = {"series": ",".join(meta["series"]), "sampler": meta["sampler"],
                   "inference_steps": meta["num_inference_steps"], "synthetic_windows_per_series": meta["n_samples"],
                   "model_version": meta.get("model_version"), "discriminative_seeds": config.discriminative_seeds,
                   "predictive_seeds": config.predictive_seeds, "seed": config.seed, "profile": PROFILE.name}
    started = time.perf_counter()
    report = write_generation_report(
        inputs, out_dir, title="wavefin generation report", context=run_context, samplers=meta.get("samplers"),
        seed=config.seed, discriminative_seeds=config.discriminative_seeds, predictive_seeds=config.predictive_seeds,
        classifier_steps=config.classifier_steps, log=context.log.info,
        augmentation=_augmentation_config(config),
    )
    context.log.info(f"generation report written in {time.perf_counter() - started:.1f}s: {report.markdown_path}")
    storage.publish("reports", "generation")
    report_at = stored_location(storage, report.markdown_path)  # what the output names: a path or a URL
    metrics_at = stored_location(storage, report.metrics_json)
    with mlflow.start_run("generation_report", tags={"asset": "generation_report", "profile": PROFILE.name},
                          context=context) as run:
        run.log_params(run_context)
        run.log_metrics(report.metrics)
        run.log_artifact(out_dir, "generation_report")
        promotion = tracking.promote_diffusion(mlflow, run, local_manifest_dir(storage, meta["model_path"]),
                                               report.metrics, meta["series"], log=context.log.warning)
        run_id = run.run_id
    verdicts = [section["verdict"] for section in report.document["series"].values()]
    headline = {k: v for k, v in report.metrics.items()
                if ".wavefin." in k or k.endswith("discriminative_mean") or k.startswith("sampler.")}
    # The report markdown goes on the materialization only (Output metadata would be stored twice).
    add_report_metadata(context, report.markdown_path, max_inline_bytes=config.max_inline_kb * 1024)
    return dg.Output(
        {"report": report_at, "metrics_json": metrics_at, "metrics": report.metrics,
         "mlflow_run_id": run_id},
        metadata={"report_path": dg.MetadataValue.path(report_at),
                  "metrics_json": dg.MetadataValue.path(metrics_at), "mlflow_run_id": run_id,
                  "mlflow_run": run.url_metadata(), **tracking.promotion_metadata(promotion),
                  "verdicts": dg.MetadataValue.md("\n".join(f"- {v}" for v in verdicts)),
                  **scalar_metadata(headline)},
    )


def _augmentation_config(config: GenerationReportConfig) -> "SyntheticAugmentationConfig | None":
    """The synthetic-augmentation experiment's config (None when augmentation_seeds=0), checked before any work."""
    from wavefin_core.evaluation.augmentation import SyntheticAugmentationConfig
    if config.augmentation_seeds == 0:
        return None
    cfg = SyntheticAugmentationConfig(seeds=config.augmentation_seeds, epochs=config.augmentation_epochs,
                                      train_stride=config.augmentation_train_stride,
                                      synthetic_ratio=config.augmentation_synthetic_ratio, seed=config.seed)
    cfg.validate("generation_report")
    return cfg


def _series_input(name: str, s: "ScalogramSet", synthetic: pa.Table, meta: dict) -> "SeriesGeneration":
    """One series' report inputs: its stride-1 test windows, train returns, wavefin windows and a few scalograms."""
    from wavefin_core.evaluation.reports import SeriesGeneration
    from wavefin_core.scalograms import contiguous_returns
    from wavefin_core.wavelets import cwt, from_channels
    rows = synthetic.filter(pc.equal(synthetic["series"], name))
    wavefin = _fixed_list(rows.column("returns"))
    info = meta["per_series"][name]
    test_images = s.images[s.mask("test")]
    # Synthetic scalograms are shown as the CWT of the decoded returns: the realizable part of each generated
    # image (the projection residual column says how much was not), scaled like the real ones.
    picks = wavefin[np.linspace(0, len(wavefin) - 1, num=min(4, len(wavefin))).round().astype(int)]
    synth_images = cwt(((picks - s.norm_mean) / s.norm_std).astype(np.float32), s.scales, s.wavelet) / \
        s.channel_scale[:, None]
    residual = rows.column("projection_residual").to_numpy()
    return SeriesGeneration(
        name=name, real_test=_test_windows(s), train_returns=contiguous_returns(s, "train"), wavefin=wavefin,
        start_price=info["start_price"],
        context={"last train close": f"{info['start_price']:.6g} at {info['start_time']}",
                 "sampling seed": info["seed"],
                 "median projection residual": f"{float(np.median(residual)):.3f}"},
        real_scalograms=np.abs(from_channels(test_images[np.linspace(0, len(test_images) - 1, num=min(
            4, len(test_images))).round().astype(int)])),
        synth_scalograms=np.abs(synth_images),
        val_returns=contiguous_returns(s, "val"), horizon=int(s.horizon),
    )
