"""Generative assets: diffusion_model → synthetic_series → generation_report."""


import json

import dagster as dg
import numpy as np
import pyarrow as pa

from wavefin_assets.assets.common import (
    GPU_ASSET_KWARGS,
    MODEL_GROUP,
    REPORT_GROUP,
    log_progress,
    pool,
    select_series,
)
from wavefin_assets.metadata import image_md, report_md, scalar_metadata
from wavefin_assets.profiles import PROFILE
from wavefin_assets.resources import DeviceResource, MLflowResource, StorageResource
from wavefin_core.errors import ConfigError
from wavefin_core.evaluation.plots import plot_training_curve, save_figure
from wavefin_core.evaluation.reports import write_generation_report
from wavefin_core.models import (
    DiffusionConfig,
    load_diffusion,
    sample_diffusion,
    save_diffusion,
    train_diffusion,
)
from wavefin_core.scalograms import ScalogramSet
from wavefin_core.wavelets import cwt, to_channels


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


@dg.asset(
    group_name=MODEL_GROUP,
    description="UNet2DModel + DDPMScheduler trained to denoise the train-split scalograms (epsilon MSE); "
    "saved with save_pretrained (safetensors).",
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
    sets = select_series(scalograms, config.series)
    pooled = pool(sets)
    train_images = pooled.images[pooled.split == "train"]
    torch_device = device.torch_device()
    context.log.info(f"Training on {len(train_images)} train scalograms {train_images.shape[1:]} "
                     f"from {list(sets)} on {device.describe()}")
    cfg = DiffusionConfig(
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        attention=config.attention, num_train_timesteps=config.num_train_timesteps, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
        max_steps=config.max_steps,
    )
    with mlflow.start_run("diffusion_model", tags={"asset": "diffusion_model", "profile": PROFILE.name}) as run:
        run.log_params({**cfg.to_dict(), "series": ",".join(sets), "n_train": len(train_images),
                        "device": device.describe()})
        result = train_diffusion(train_images, cfg, torch_device, progress=log_progress(context, "step", 50))
        run.log_metric_history("train_loss", result.losses)
        model_dir = storage.path("models") / "diffusion_model"
        inverse = {name: s.metadata() for name, s in sets.items()}
        save_diffusion(result, model_dir, extra={"series": list(sets), "inverse": inverse})
        curve = storage.path("models", "plots") / "diffusion_loss.png"
        save_figure(plot_training_curve(result.losses), curve)
        run.log_artifact(curve)
        run.log_artifact(model_dir, "diffusion_model")
        first, last = float(np.mean(result.losses[:20])), float(np.mean(result.losses[-20:]))
        run.log_metrics({"loss_first20": first, "loss_last20": last})
        run_id = run.run_id
    manifest = {"path": str(model_dir), "series": list(sets), "sample_shape": list(result.sample_shape),
                "mlflow_run_id": run_id, "device": device.describe()}
    return dg.Output(
        manifest,
        metadata={
            "mlflow_run_id": run_id,
            "device": device.describe(),
            "train_scalograms": len(train_images),
            "steps": len(result.losses),
            "loss_first20": first,
            "loss_last20": last,
            "model_path": dg.MetadataValue.path(str(model_dir)),
            "loss_curve": image_md(curve, "loss"),
        },
    )


class SyntheticSeriesConfig(dg.Config):
    n_samples: int = PROFILE.n_synthetic
    sampler: str = "ddim"  # ddim | dpmsolver | ddpm
    num_inference_steps: int = PROFILE.inference_steps
    seed: int = 0
    reference_series: str | None = None  # whose units the returns are given in; default: first trained series


@dg.asset(
    group_name=MODEL_GROUP,
    description="Synthetic scalograms sampled with a fast scheduler and projected to return series by the "
    "least-squares inverse CWT.",
    **GPU_ASSET_KWARGS,
)
def synthetic_series(
    context: dg.AssetExecutionContext,
    config: SyntheticSeriesConfig,
    diffusion_model: dict,
    device: DeviceResource,
) -> dg.Output[pa.Table]:
    model, scheduler, meta = load_diffusion(diffusion_model["path"])
    inverse = meta["extra"]["inverse"]
    reference = config.reference_series or diffusion_model["series"][0]
    if reference not in inverse:
        raise ConfigError(
            f"reference_series={reference!r} was not part of the diffusion model's training series "
            f"{sorted(inverse)}; pick one of them or retrain with it."
        )
    ref = _inverse_map(inverse[reference])
    images = sample_diffusion(
        model, tuple(diffusion_model["sample_shape"]), config.n_samples, sampler=config.sampler,
        num_inference_steps=config.num_inference_steps, seed=config.seed, device=device.torch_device(),
        train_scheduler=scheduler, progress=log_progress(context, "sampling step", 10),
    )
    standardized = ref.to_standardized(images)
    returns = standardized * ref.norm_std + ref.norm_mean
    # How far each generated scalogram is from the set of scalograms real series produce (0 = exactly one).
    projected = to_channels(cwt(standardized.astype(np.float32), ref.scales, ref.wavelet)
                            / ref.channel_scale[:, None])
    residual = np.linalg.norm((images - projected).reshape(len(images), -1), axis=1) / np.maximum(
        np.linalg.norm(images.reshape(len(images), -1), axis=1), 1e-12)
    t = standardized.shape[1]
    table = pa.table({
        "sample": pa.array(np.arange(len(images))),
        "standardized": pa.FixedSizeListArray.from_arrays(pa.array(standardized.reshape(-1)), t),
        "returns": pa.FixedSizeListArray.from_arrays(pa.array(returns.reshape(-1)), t),
        "projection_residual": pa.array(residual),
        "image": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(images, dtype=np.float32)),
    }).replace_schema_metadata({b"wavefin.synthetic": json.dumps({
        "reference_series": reference, "sampler": config.sampler,
        "num_inference_steps": config.num_inference_steps, "seed": config.seed,
        "model_path": diffusion_model["path"], "model_series": diffusion_model["series"],
    }).encode()})
    context.log.info(f"{len(images)} samples; median projection residual {np.median(residual):.3f}")
    return dg.Output(table, metadata={
        "samples": len(images),
        "sampler": config.sampler,
        "inference_steps": config.num_inference_steps,
        "reference_series": reference,
        "median_projection_residual": float(np.median(residual)),
        "synthetic_return_std": float(returns.std()),
    })


def _inverse_map(meta: dict) -> ScalogramSet:
    """A ScalogramSet with no rows that carries one series' inverse map (wavelet, scales, scaling, stats)."""
    shape = meta["image_shape"]
    empty = np.zeros((0,), dtype=np.float64)
    return ScalogramSet(
        images=np.zeros((0, *shape), np.float32), windows=np.zeros((0, shape[-1])), target_return=empty,
        direction=empty.astype(np.int64), split=empty.astype(str), end_time=empty.astype("datetime64[ns]"),
        label_time=empty.astype("datetime64[ns]"), scales=np.asarray(meta["scales"]), wavelet=meta["wavelet"],
        channel_scale=np.asarray(meta["channel_scale"], np.float32), norm_mean=meta["norm_mean"],
        norm_std=meta["norm_std"], horizon=meta["horizon"], series=meta["series"],
    )


class GenerationReportConfig(dg.Config):
    seed: int = 0


@dg.asset(
    group_name=REPORT_GROUP,
    kinds={"markdown", "mlflow"},
    description="Synthetic vs held-out real returns (standardised units): moments, ACFs, TSGBench distances, "
    "discriminative/predictive scores, stylized facts, a GARCH-t baseline, plots.",
)
def generation_report(
    context: dg.AssetExecutionContext,
    config: GenerationReportConfig,
    synthetic_series: pa.Table,
    scalograms: dict[str, pa.Table],
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    meta = json.loads(synthetic_series.schema.metadata[b"wavefin.synthetic"])
    sets = select_series(scalograms, meta["model_series"])
    pooled = pool(sets)
    test = pooled.split == "test"
    real_test = pooled.standardized[test]
    # GARCH-t baseline fitted on the same series' train returns, standardised like the real and synthetic windows.
    train_returns = np.concatenate([_train_returns(s) for s in sets.values()])
    n = synthetic_series.num_rows
    synth = synthetic_series.column("standardized").combine_chunks().flatten().to_numpy().reshape(n, -1)
    synth_images = synthetic_series.column("image").combine_chunks().to_numpy_ndarray()
    out_dir = storage.path("reports", "generation")
    context_info = {"series": ",".join(meta["model_series"]), "reference_series": meta["reference_series"],
                    "sampler": meta["sampler"], "inference_steps": meta["num_inference_steps"],
                    "synthetic_windows": n, "real_test_windows": int(test.sum()), "profile": PROFILE.name}
    report = write_generation_report(
        real_test, synth, out_dir, title="wavefin generation report", context=context_info,
        real_scalograms=_magnitude(pooled.images[test][:8]), synth_scalograms=_magnitude(synth_images[:8]),
        train_returns=train_returns, real_train_windows=pooled.standardized[pooled.split == "train"],
        seed=config.seed,
    )
    with mlflow.start_run("generation_report", tags={"asset": "generation_report"}) as run:
        run.log_params(context_info)
        run.log_metrics(report.metrics)
        run.log_artifact(out_dir, "generation_report")
        run_id = run.run_id
    return dg.Output(
        {"report": str(report.markdown_path), "metrics": report.metrics, "mlflow_run_id": run_id},
        metadata={"report_path": dg.MetadataValue.path(str(report.markdown_path)), "mlflow_run_id": run_id,
                  "report": report_md(report.markdown_path), **scalar_metadata(report.metrics)},
    )


def _magnitude(images: np.ndarray) -> np.ndarray:
    return np.hypot(images[:, 0], images[:, 1])


def _train_returns(s: ScalogramSet) -> np.ndarray:
    """The contiguous standardised train returns of one series, rebuilt from its (overlapping) train windows."""
    train = s.windows[s.split == "train"]
    stride = int(s.extra.get("stride", train.shape[1]))
    if stride > train.shape[1] or len(train) < 2:
        return (train.reshape(-1) - s.norm_mean) / s.norm_std
    tail = train[1:, -stride:].reshape(-1)
    return (np.concatenate([train[0], tail]) - s.norm_mean) / s.norm_std
