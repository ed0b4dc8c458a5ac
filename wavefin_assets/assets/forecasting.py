"""Forecasting assets: forecasters (every model of wavefin_core.forecast_suite on the same splits) → forecast_report
(with naive baselines, walk-forward folds and the realized-volatility task)."""

import json
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from wavefin_assets import tracking
from wavefin_assets.assets.common import (
    GPU_ASSET_KWARGS,
    MODEL_GROUP,
    REPORT_GROUP,
    checkpointing,
    log_progress,
    manifest_of_this_run,
    model_version,
    pool,
    publish_model_version,
    select_series,
    stored_location,
)
from wavefin_assets.metadata import add_report_metadata, scalar_metadata
from wavefin_assets.partitions import FORECAST_CHECK_SERIES
from wavefin_assets.profiles import PROFILE
from wavefin_assets.resources import DeviceResource, MLflowResource, StorageResource
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import atomic_directory, atomic_path
from wavefin_core.models.versions import check_keep_versions, write_manifest

if TYPE_CHECKING:  # torch/diffusers load with these: the functions import them when they run
    from wavefin_core.evaluation.reports import SeriesForecasts


class ForecastersConfig(dg.Config):
    series: list[str] = []  # empty: every materialized series
    arch: str = PROFILE.classifier_arch  # cnn | vit
    epochs: int = PROFILE.classifier_epochs
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 0
    # Models to fit, all on the same splits (wavefin_core.forecast_suite.ALL_MODELS; "scalogram" is `arch`).
    models: list[str] = list(PROFILE.forecast_models)
    # ARIMA order: both None = chosen by AIC on each series' train returns (p, q <= arima_max_order).
    arima_p: int | None = PROFILE.arima_order[0] if PROFILE.arima_order else None
    arima_q: int | None = PROFILE.arima_order[1] if PROFILE.arima_order else None
    arima_max_order: int = 2
    input_channels: str = "real_imag"  # scalogram classifier input: real_imag | magnitude
    # Augmentation experiment: also train scalogram_<arch>_augmented on the train windows plus a time-shifted,
    # magnitude-jittered copy of each, so the report shows the accuracy with and without it.
    augment: bool = PROFILE.forecast_augment
    # Walk-forward (expanding window) evaluation of the fast models with k folds per series; 0 = off.
    walk_forward_folds: int = PROFILE.walk_forward_folds
    walk_forward_test_fraction: float = 0.3
    # The next-h realized-volatility task: HAR-RV and GARCH(1,1) against the naive forecasts, by QLIKE and MSE.
    volatility_task: bool = True
    # The Dense U-Net volume translation (return scalogram -> log-volume scalogram) of every series whose volume
    # varies, against the per-scale linear and train-mean baselines; size and budget from the profile.
    volume_translation: bool = PROFILE.volume_translation
    volume_input: str = "magnitude"  # the U-Net's input channels: magnitude | real_imag
    volume_stem_channels: int = PROFILE.volume_unet_stem_channels
    volume_growth_rate: int = PROFILE.volume_unet_growth_rate
    volume_layers_per_block: int = PROFILE.volume_unet_layers_per_block
    volume_levels: int = PROFILE.volume_unet_levels
    volume_epochs: int = PROFILE.volume_epochs
    volume_max_steps: int | None = PROFILE.volume_max_steps  # optimizer steps per series (None: epochs decide)
    volume_batch_size: int = PROFILE.volume_batch_size
    volume_learning_rate: float = PROFILE.volume_learning_rate
    volume_patience: int = 5
    volume_test_stride: int = PROFILE.volume_test_stride  # score every k-th test window (they overlap at stride 1)
    # series left out of the volume translation: the forecasting check series, whose volume is simulated
    # independently of its returns (nothing to translate; measured: nothing beat the train mean there)
    volume_exclude: list[str] = list(FORECAST_CHECK_SERIES)
    lstm_hidden_size: int = 32
    haar_level: int = 3  # causal Haar denoising depth of the Haar-LSTM's inputs
    checkpoint_every: int = PROFILE.checkpoint_every  # optimizer steps between checkpoints (resumed after a crash)
    keep_versions: int = PROFILE.keep_versions  # model versions (one per run) kept under models/forecasters/


@dg.asset(
    group_name=MODEL_GROUP,
    description="Every forecaster on the same splits (config `models`): scalogram CNN/ViT, LSTM and causal "
    "Haar-denoised LSTM, 1-D CNN (+ self-attention), logistic regression, logistic and gradient boosting on lagged "
    "returns + wavelet energies, ridge / gradient-boosting / per-series ARIMA return forecasts; optional "
    "augmented scalogram classifier, walk-forward folds, the realized-volatility task and the Dense U-Net volume "
    "translation (return scalogram -> log-volume scalogram, vs a per-scale linear regression). Predictions for every "
    "window saved as Parquet "
    "in a new version directory per run, models/forecasters/<run id>/. Neural training is checkpointed and "
    "resumed after a crash; a diverging training or any non-finite prediction fails the run.",
    **GPU_ASSET_KWARGS,
)
def forecasters(
    context: dg.AssetExecutionContext,
    config: ForecastersConfig,
    scalograms: dict[str, pa.Table],
    clean_prices: dict[str, pd.DataFrame],
    device: DeviceResource,
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    from wavefin_core.forecast_suite import SuiteInputs, run_suite

    sets = select_series(scalograms, config.series)
    data = pool(sets)
    train = data.split == "train"
    check_keep_versions(config.keep_versions)
    checkpoints = checkpointing(storage, "forecasters", config.checkpoint_every, context)
    model_dir = model_version(storage, "forecasters", context)
    suite_cfg = _suite_config(config)
    classifier = f"scalogram_{config.arch}"
    for name in sets:
        if name not in clean_prices:
            raise ConfigError(f"series {name!r} has scalograms but no materialized clean_prices; "
                              "materialize its partition again.")
    inputs = SuiteInputs(
        images=data.images, standardized=data.standardized,
        windows=np.concatenate([s.windows for s in sets.values()]), direction=data.direction,
        target_return=data.target_return,
        return_scale=np.concatenate([np.full(len(s), s.norm_std) for s in sets.values()]),
        split=data.split, series=data.series,
        arima_train={name: _train_returns(s, clean_prices[name]) for name, s in sets.items()},
        horizon={name: int(s.horizon) for name, s in sets.items()})
    # Everything is written to a staging directory renamed to this run's `model_dir` only once complete: never a
    # half-written set of models, and earlier versions stay readable by the runs whose manifests name them.
    with (
        mlflow.start_run("forecasters", tags={"asset": "forecasters", "profile": PROFILE.name}, context=context) as run,
        atomic_directory(model_dir) as staging,
    ):
        run.log_params({"models": ",".join(suite_cfg.models), "arch": config.arch, "epochs": config.epochs,
                        "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                        "patience": config.patience, "seed": config.seed, "augment": config.augment,
                        "series": ",".join(sets), "n_train": int(train.sum()),
                        "arima_order": "AIC" if suite_cfg.arima_order is None else str(suite_cfg.arima_order),
                        "device": device.describe()})
        suite = run_suite(inputs, suite_cfg, device.torch_device(), staging,
                          progress=lambda name: log_progress(context, f"{name} epoch"), checkpointing=checkpoints,
                          image_fn=lambda windows, names: _images_of(sets, windows, names),
                          log=context.log.info)
        for name, history in suite.histories.items():
            for row in history:
                run.log_metrics({f"{name}_{k}": v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        model_info = suite.info  # params and training seconds per model, for the report

        # Scored targets are the RAW returns: clean_prices' winsorization (fitted on train) shapes the training
        # labels only, never the test targets the report scores (a clipped target flatters RMSE).
        raw_target = np.concatenate([_raw_targets(name, s, clean_prices[name]) for name, s in sets.items()])
        predictions = pd.DataFrame({
            "series": data.series, "end_time": data.end_time, "split": data.split,
            "direction": (raw_target > 0).astype(np.int64), "target_return": raw_target,
            "horizon": np.concatenate([np.full(len(s), int(s.horizon), dtype=np.int64) for s in sets.values()]),
            **{f"{model}_proba_up": proba for model, proba in suite.direction_proba.items()},
            **{f"{model}_return": forecast for model, forecast in suite.returns.items()},
            # Each series' train-window std: the report compares return errors in these units, so series of
            # different frequencies (minute MJD, daily S&P) pool fairly.
            "return_scale": inputs.return_scale,
            # The last `horizon` returns of each window: all the naive "previous direction" baseline needs.
            "recent_returns": list(np.concatenate([s.windows[:, -s.horizon :] for s in sets.values()])),
        })
        _check_finite_predictions(predictions)
        predictions.to_parquet(staging / "predictions.parquet")
        walk_forward = None
        if config.walk_forward_folds:
            walk_forward = _walk_forward(context, config, sets, clean_prices)
            _write_json(staging / "walk_forward.json", walk_forward)
        volatility = _volatility(context, sets, clean_prices) if config.volatility_task else None
        if volatility:
            _write_json(staging / "volatility.json", volatility)
        volume = None
        if config.volume_translation:
            volume = _volume_translation(context, config, sets, clean_prices, staging, device.torch_device(),
                                         checkpoints, run)
            _write_json(staging / "volume_translation.json", volume)
        numeric_info = {m: {k: float(v) for k, v in info.items() if k in ("params", "train_seconds", "best_epoch")}
                        for m, info in model_info.items()}
        run.log_metrics({f"{m}_{k}": v for m, info in numeric_info.items() for k, v in info.items()})
        _write_json(staging / "model_info.json", model_info)
        registered = tracking.register_forecasters(
            run, staging, classifier, list(sets), {name: int(s.horizon) for name, s in sets.items()},
            {m: {k: v for k, v in info.items() if k != "best_epoch"} for m, info in numeric_info.items()})
        run.log_artifact(staging, "forecasters")
        run_id = run.run_id
    predictions_path = model_dir / "predictions.parquet"
    manifest = {"path": stored_location(storage, model_dir), "version": context.run_id,
                "predictions": stored_location(storage, predictions_path),
                "series": list(sets), "classifier": classifier, "mlflow_run_id": run_id,
                "direction_models": list(suite.direction_proba), "return_models": list(suite.returns),
                "walk_forward": walk_forward, "volatility": volatility,
                "volume_translation": _with_model_paths(volume, storage, model_dir),
                "horizon": int(next(iter(sets.values())).horizon),
                "horizons": {name: int(s.horizon) for name, s in sets.items()}, "model_info": model_info,
                "targets": "raw log returns (clean_prices winsorization never reaches the scored targets)",
                "registered_models": registered}
    write_manifest(model_dir, manifest)
    checkpoints.clear()
    publish_model_version(context, storage, model_dir, config.keep_versions)  # uploaded when storage is remote
    return dg.Output(manifest, metadata={
        "mlflow_run_id": run_id, "model_version": context.run_id, "device": device.describe(),
        "mlflow_run": run.url_metadata(),
        "registered_models": ", ".join(f"{v['name']} v{v['version']}" for v in registered.values()),
        "train_windows": int(train.sum()), "test_windows": int((data.split == "test").sum()),
        "models": ", ".join([*suite.direction_proba, *suite.returns]),
        **({"volume_translation": _volume_summary(volume)} if volume else {}),
        "model_path": dg.MetadataValue.path(manifest["path"]),
        **{f"{m}_params": int(v["params"]) for m, v in model_info.items()},
        **{f"{m}_train_seconds": float(v["train_seconds"]) for m, v in model_info.items()},
    })


def _suite_config(config: ForecastersConfig) -> "SuiteConfig":  # noqa: F821 - imported where it runs
    from wavefin_core.forecast_suite import SuiteConfig

    if (config.arima_p is None) != (config.arima_q is None):
        raise ConfigError(f"forecasters.arima_p={config.arima_p} and arima_q={config.arima_q}: set both (a fixed "
                          "order) or neither (the order is chosen by AIC on each series' train returns).")
    return SuiteConfig(
        models=tuple(config.models), arch=config.arch, input_channels=config.input_channels, epochs=config.epochs,
        batch_size=config.batch_size, learning_rate=config.learning_rate, patience=config.patience,
        seed=config.seed, lstm_hidden_size=config.lstm_hidden_size, haar_level=config.haar_level,
        arima_order=None if config.arima_p is None else (config.arima_p, config.arima_q),
        arima_max_order=config.arima_max_order, augment=config.augment)


def _train_returns(s: "ScalogramSet", prices: pd.DataFrame) -> np.ndarray:  # noqa: F821
    """The series' log returns up to its last train label: what its ARIMA (and walk-forward) may see."""
    train_end = s.label_time[s.split == "train"].max()
    returns = prices["log_return"]
    index = returns.index.tz_convert("UTC").tz_localize(None) if returns.index.tz else returns.index
    return returns.to_numpy()[index <= pd.Timestamp(train_end)]


def _images_of(sets: dict, windows: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Scaled real+imag scalograms of standardised windows, each with its own series' scales and scaling."""
    from wavefin_core.wavelets import cwt, to_channels

    out = None
    for name, s in sets.items():
        rows = names == name
        if not rows.any():
            continue
        coefs = cwt(windows[rows].astype(np.float32), s.scales, s.wavelet) / s.channel_scale[:, None]
        images = to_channels(coefs).astype(np.float32)
        if out is None:
            out = np.empty((len(windows), *images.shape[1:]), dtype=np.float32)
        out[rows] = images
    return out


def _walk_forward(context: dg.AssetExecutionContext, config: ForecastersConfig, sets: dict,
                  clean_prices: dict[str, pd.DataFrame]) -> dict:
    """Walk-forward accuracies per series of the fast models (refitted per fold) and the naive baselines."""
    from wavefin_core.evaluation.walkforward import walk_forward_evaluate, walk_forward_windows
    from wavefin_core.forecast_suite import walk_forward_models

    out = {}
    for name, s in sets.items():
        window, horizon = s.windows.shape[1], int(s.horizon)
        windows, target = walk_forward_windows(clean_prices[name]["log_return"].to_numpy(), window, horizon)
        embargo = int(s.extra.get("embargo", window + horizon))
        try:
            out[name] = walk_forward_evaluate(
                windows, target, walk_forward_models(config.models, seed=config.seed), k=config.walk_forward_folds,
                embargo=embargo, horizon=horizon, test_fraction=config.walk_forward_test_fraction,
                train_stride=int(s.extra.get("stride", 1)))
        except (ConfigError, DataError) as exc:  # a series too short for k folds: said in the log, the others still evaluated
            context.log.warning(f"walk-forward skipped for {name}: {exc}")
            continue
        summary = ", ".join(f"{m} {v['mean']:.3f}±{v['std']:.3f}" for m, v in out[name]["summary"].items())
        context.log.info(f"walk-forward {name} ({config.walk_forward_folds} folds): {summary}")
    return out


def _raw_targets(name: str, s: "ScalogramSet", prices: pd.DataFrame) -> np.ndarray:  # noqa: F821
    """Each window's next-horizon log return from the CLOSE prices, i.e. without clean_prices' winsorization.

    Without winsorization these are the stored targets themselves (bitwise: same sums as segments). With it,
    the sum of the raw per-bar log returns over the label span (the same sliding sum segments uses).
    """
    if prices.attrs.get("winsor_bounds") is None:
        return np.asarray(s.target_return, dtype=np.float64)
    index = prices.index.tz_convert("UTC").tz_localize(None) if prices.index.tz else prices.index
    positions = index.get_indexer(pd.DatetimeIndex(s.label_time))
    if (positions < 0).any():
        raise ConfigError(f"series {name!r}: clean_prices and scalograms disagree on label times; materialize "
                          "its partition again (clean_prices, segments, scalograms) with one run config.")
    log_close = np.log(prices["close"].to_numpy(dtype=np.float64))
    raw = np.concatenate([[np.nan], np.diff(log_close)])  # raw[i]: the return ending at row i, as cleaning has it
    label_sums = np.lib.stride_tricks.sliding_window_view(raw, int(s.horizon)).sum(axis=1)
    return label_sums[positions - int(s.horizon) + 1]


def _check_finite_predictions(predictions: pd.DataFrame) -> None:
    """Refuse to save NaN/inf predictions: the report would compute its scores from them without complaint."""
    from wavefin_core.models.training import check_finite_output
    for column in predictions.columns:
        if column == "arima_return":
            fix = "the ARIMA fit is unusable: try another order (arima_p, arima_q)"
        elif column.endswith("_proba_up"):
            fix = "retrain that model (with a lower learning_rate if its training diverged)"
        else:
            continue  # data columns, checked upstream
        check_finite_output(predictions[column].to_numpy(dtype=np.float64), f"forecasters column {column!r}", fix)


def _write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


@dg.asset(
    group_name=REPORT_GROUP,
    kinds={"markdown", "mlflow"},
    description="Test-split evaluation per series (its own horizon, raw targets): accuracy, balanced accuracy, "
    "macro-F1, MCC; RMSE/MAE. A model is 'significant' only if it beats the best naive baseline (chosen on train) "
    "by McNemar and the majority rate by a binomial test, with balanced accuracy > 0.5, Holm-corrected over the "
    "table (returns: Diebold-Mariano vs every naive forecast). Writes forecast_report.md and metrics.json.",
)
def forecast_report(
    context: dg.AssetExecutionContext,
    forecasters: dict,
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    from wavefin_core.evaluation.reports import write_forecast_report
    forecasters = manifest_of_this_run(context, forecasters)
    context.log.info(f"reading forecasters version {forecasters.get('version')} at {forecasters['path']}")
    predictions = pd.read_parquet(storage.fetch(forecasters["predictions"]))  # a local copy when remote
    series = []
    for name in forecasters["series"]:
        rows = predictions[predictions["series"] == name]
        series.append(_series_forecasts(name, rows, forecasters))
    out_dir = storage.workdir("reports", "forecast")  # local; published below when storage is remote
    test = predictions[predictions["split"] == "test"]
    report_context = {"series": ",".join(forecasters["series"]), "test_windows": len(test),
                      "horizons": ",".join(f"{s.name}={s.horizon}" for s in series),
                      "return_units": "each series' train-window standard deviation",
                      "targets": "raw next-horizon log returns (never winsorized)", "profile": PROFILE.name}
    report = write_forecast_report(series, out_dir, title="wavefin forecast report", context=report_context,
                                   model_info=forecasters.get("model_info") or {},
                                   walk_forward=forecasters.get("walk_forward"),
                                   extra_sections=_extra_sections(forecasters, out_dir, storage))
    storage.publish("reports", "forecast")
    report_at = stored_location(storage, report.markdown_path)  # what the output names: a path or a URL
    metrics_at = stored_location(storage, report.metrics_json)
    with mlflow.start_run("forecast_report", tags={"asset": "forecast_report"}, context=context) as run:
        run.log_params(report_context)
        run.log_metrics(report.metrics)
        run.log_artifact(out_dir, "forecast_report")
        promotions = tracking.promote_forecasters(mlflow, run, forecasters, report.metrics)
        run_id = run.run_id
    context.log.info(f"forecast report: {report.markdown_path}")
    # The report markdown goes on the materialization only (Output metadata would be stored twice).
    add_report_metadata(context, report.markdown_path)
    return dg.Output(
        {"report": report_at, "metrics_json": metrics_at, "metrics": report.metrics,
         "mlflow_run_id": run_id},
        metadata={"report_path": dg.MetadataValue.path(report_at), "mlflow_run_id": run_id,
                  "mlflow_run": run.url_metadata(), **tracking.promotion_metadata(promotions),
                  "metrics_json": dg.MetadataValue.path(metrics_at),
                  "significant_models": ", ".join(
                      f"{name}:{model}" for name, sec in report.document["series"].items()
                      for model, entry in {**sec["models"], **sec["return_models"]}.items()
                      if entry["significant"]) or "none",
                  **scalar_metadata(report.metrics)},
    )


def _volatility(context: dg.AssetExecutionContext, sets: dict, clean_prices: dict[str, pd.DataFrame]) -> dict:
    """Per series: next-h realized-volatility forecasts (fitted on its train returns) scored on its test returns."""
    from wavefin_core.evaluation.volatility import evaluate_volatility_forecasts
    from wavefin_core.scalograms import contiguous_returns

    out = {}
    for name, s in sets.items():
        try:
            out[name] = evaluate_volatility_forecasts(_train_returns(s, clean_prices[name]),
                                                      contiguous_returns(s, "test"), int(s.horizon))
        except (ConfigError, DataError) as exc:  # e.g. a test split too short for HAR-RV's warm-up
            context.log.warning(f"realized-volatility task skipped for {name}: {exc}")
    return out


def _volume_translation(context: dg.AssetExecutionContext, config: ForecastersConfig, sets: dict,
                        clean_prices: dict[str, pd.DataFrame], out_dir: Path, device: "torch.device",  # noqa: F821
                        checkpoints, run=None) -> dict:
    """Per series with a usable volume column: a Dense U-Net translating each window's return scalogram into its
    log-volume scalogram, trained on train, early-stopped on val, scored on test next to the per-scale linear
    and train-mean baselines, saved (safetensors) under `out_dir/dense_unet/<series>/`. Series whose volume
    cannot be used (missing, all zero, constant) are skipped with the reason, in the log and in the result.
    `run` (the forecasters' MLflow run) receives the U-Net's params and each series' MAE/PSNR."""
    from wavefin_core.evaluation.volume import evaluate_volume_translation, volume_pairs_from_scalograms
    from wavefin_core.models.dense_unet import (
        DenseUNetConfig,
        predict_dense_unet,
        save_dense_unet,
        train_dense_unet,
    )
    from wavefin_core.models.training import cpu_threads

    cfg = DenseUNetConfig(
        stem_channels=config.volume_stem_channels, growth_rate=config.volume_growth_rate,
        layers_per_block=config.volume_layers_per_block, levels=config.volume_levels, epochs=config.volume_epochs,
        batch_size=config.volume_batch_size, learning_rate=config.volume_learning_rate,
        patience=config.volume_patience, seed=config.seed, max_steps=config.volume_max_steps)
    try:
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"forecasters volume_* config: {exc}") from exc
    if config.volume_input not in ("magnitude", "real_imag"):
        raise ConfigError(f"forecasters.volume_input={config.volume_input!r} must be 'magnitude' (|CWT|, one "
                          "channel) or 'real_imag' (two channels).")
    log_params = run.log_params if run is not None else (lambda params: None)
    log_metrics = run.log_metrics if run is not None else (lambda metrics: None)
    log_params({f"volume_{k}": v for k, v in cfg.to_dict().items()} | {"volume_input": config.volume_input,
                                                                          "volume_test_stride": config.volume_test_stride})
    out: dict = {"task": "window return scalogram -> |CWT| of the window's standardised log1p volume",
                 "input_mode": config.volume_input, "test_stride": config.volume_test_stride,
                 "config": cfg.to_dict(), "series": {}, "skipped": {}}
    for name, s in sets.items():
        if name in config.volume_exclude:
            out["skipped"][name] = "left out by forecasters.volume_exclude"
            context.log.info(f"volume translation: {name} left out (forecasters.volume_exclude)")
            continue
        prices = clean_prices[name]
        try:
            if "volume" not in prices.columns:
                raise DataError(f"{name}: clean_prices has no volume column.")
            pairs = volume_pairs_from_scalograms(s, prices["volume"], input_mode=config.volume_input, source=name)
            pairs = pairs.thinned("test", config.volume_test_stride)
            for split in ("val", "test"):
                if not (pairs.split == split).any():
                    raise DataError(f"{name}: no {split} windows for the volume translation; supply more data.")
        except DataError as exc:  # e.g. FX quotes whose volume is always 0: said in the log and the report
            context.log.warning(f"volume translation skipped for {name}: {exc}")
            out["skipped"][name] = str(exc)
            continue
        x_test, y_test = pairs.arrays("test")
        # one thread for this small model: two threads of a busy 2-core machine took 7x the CPU time (138 vs 19
        # CPU-s for three series); the result does not depend on it
        with cpu_threads(device, 1):
            result = train_dense_unet(*pairs.arrays("train"), *pairs.arrays("val"), cfg, device,
                                      progress=log_progress(context, f"dense_unet[{name}] epoch"),
                                      checkpointing=checkpoints, checkpoint_kind=f"dense-unet-{name}")
            prediction = predict_dense_unet(result.model, x_test)
        scores = evaluate_volume_translation(pairs, {"dense_unet": prediction})
        save_dense_unet(result.model, cfg, out_dir / "dense_unet" / name,
                        extra={"series": name, "pairs": pairs.metadata(), "best_epoch": result.best_epoch,
                               "history": result.history})
        figure = _volume_figure(name, x_test, y_test, prediction, scores, out_dir / "dense_unet" / f"{name}.png")
        scores["dense_unet"] = {"params": result.n_parameters, "train_seconds": result.train_seconds,
                                "best_epoch": result.best_epoch, "epochs_run": len(result.history),
                                "model": f"dense_unet/{name}", "figure": figure.relative_to(out_dir).as_posix()}
        out["series"][name] = scores
        log_metrics({f"volume_{name}_{model}_{metric}": float(row[metric])
                         for model, row in scores["models"].items() for metric in ("mae", "psnr")
                         if np.isfinite(row[metric])})
        log_metrics({f"volume_{name}_dense_unet_train_seconds": result.train_seconds})
        context.log.info(f"volume translation {name}: " + ", ".join(
            f"{m} MAE {r['mae']:.4f} PSNR {r['psnr']:.2f} dB" for m, r in scores["models"].items())
            + f" ({result.n_parameters:,} parameters, {result.train_seconds:.1f} s)")
    return out




def _volume_figure(name: str, x_test: np.ndarray, y_test: np.ndarray, prediction: np.ndarray, scores: dict,
                   path: Path) -> Path:
    """A small PNG of the middle test window: true log-volume scalogram, the Dense U-Net's and the linear line's."""
    from wavefin_core.evaluation.plots import save_figure
    from wavefin_core.evaluation.volume import PerScaleLinear, plot_volume_example

    i = len(y_test) // 2
    linear = PerScaleLinear.from_dict(scores["baseline"]).predict(x_test[i : i + 1])[0, 0]
    fig = plot_volume_example({"true": y_test[i, 0], "dense_unet": prediction[i, 0], "per_scale_linear": linear},
                              f"{name}: test window {i} of {len(y_test)}")
    return save_figure(fig, path, dpi=60)


def _with_model_paths(volume: dict | None, storage, model_dir: Path) -> dict | None:
    """The volume-translation result with each series' stored Dense U-Net and figure locations."""
    if not volume:
        return volume
    series = {name: {**result, "dense_unet": {
        **result["dense_unet"], "model_path": stored_location(storage, model_dir / result["dense_unet"]["model"]),
        "figure_path": stored_location(storage, model_dir / result["dense_unet"]["figure"])}}
        for name, result in volume["series"].items()}
    return {**volume, "series": series}


def _volume_figures(volume: dict, out_dir: Path, storage) -> str:
    """Copy each series' volume figure into the report's figures/ folder; the markdown that shows them."""
    import shutil

    links = []
    for name, result in volume.get("series", {}).items():
        stored = result.get("dense_unet", {}).get("figure_path")
        if not stored:
            continue
        target = out_dir / "figures" / f"volume_{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(storage.fetch(stored), tmp)
        links.append(f"![{name}: true vs predicted log-volume scalogram](figures/{target.name})")
    return "\n\n".join(links)


def _volume_summary(volume: dict) -> str:
    """One metadata line: each series' MAE of the Dense U-Net and of the per-scale linear baseline."""
    parts = [f"{name}: dense_unet MAE {r['models']['dense_unet']['mae']:.4f} vs per_scale_linear "
             f"{r['models']['per_scale_linear']['mae']:.4f}" for name, r in volume["series"].items()]
    return "; ".join(parts + [f"{name}: skipped" for name in volume.get("skipped", {})]) or "no series"


def _extra_sections(forecasters: dict, out_dir: Path | None = None, storage=None) -> dict:
    """Other evaluations the report shows next to the direction and return tables (both computed by
    forecasters): the realized-volatility task and the Dense U-Net volume translation, as
    ``{title: {"markdown": str, "json": dict}}`` (with a "key", the JSON becomes that top-level key of
    metrics.json). With `out_dir` and `storage`, the volume figures are copied into the report's figures/."""
    from wavefin_core.evaluation.volatility import volatility_table
    from wavefin_core.evaluation.volume import volume_translation_markdown

    sections = {}
    volume = forecasters.get("volume_translation")
    if volume:
        figures = _volume_figures(volume, out_dir, storage) if out_dir is not None and storage is not None else ""
        sections["Volume translation: Dense U-Net vs per-scale linear regression (MAE, PSNR)"] = {
            "markdown": volume_translation_markdown(volume) + (f"\n{figures}\n" if figures else ""),
            "json": volume, "key": "volume_translation"}
    volatility = forecasters.get("volatility") or {}
    if volatility:
        sections["Realized volatility (next-h): HAR-RV and GARCH vs naive, by QLIKE and MSE"] = {
            "markdown": "\n\n".join(f"### `{name}`\n\n{volatility_table(result)}" for name, result in volatility.items()),
            "json": volatility}
    return sections


def _series_forecasts(name: str, rows: pd.DataFrame, manifest: dict) -> "SeriesForecasts":
    """One series' test forecasts (in its train-std return units) and the train rows its naive baselines need."""
    from wavefin_core.evaluation.reports import SeriesForecasts
    test, train = rows[rows["split"] == "test"], rows[rows["split"] == "train"]
    horizon = int((manifest.get("horizons") or {}).get(name, manifest.get("horizon", 1)))
    scale = test["return_scale"].to_numpy()
    # Models are read from the predictions' columns (manifests before the model list was recorded name none).
    direction_models = manifest.get("direction_models") or [
        c[: -len("_proba_up")] for c in rows.columns if c.endswith("_proba_up")]
    return_models = manifest.get("return_models") or [c[: -len("_return")] for c in rows.columns
                                                      if c.endswith("_return") and c != "target_return"]
    results = [{"model": model, "kind": "direction", "proba": test[f"{model}_proba_up"].to_numpy(),
                "pred": (test[f"{model}_proba_up"] > 0.5).astype(int).to_numpy()} for model in direction_models]
    if "arima" in return_models:  # the sign of the ARIMA forecast, as a direction model
        results.append({"model": "arima_sign", "kind": "direction", "proba": None,
                        "pred": (test["arima_return"] > 0).astype(int).to_numpy()})
    results += [{"model": model, "kind": "return", "pred": test[f"{model}_return"].to_numpy() / scale,
                 "proba": None} for model in return_models]
    return SeriesForecasts(
        name=name, horizon=horizon, y_true_direction=test["direction"].to_numpy(),
        y_true_return=test["target_return"].to_numpy() / scale, results=results,
        test_windows=np.stack(test["recent_returns"].to_numpy()),
        train_windows=np.stack(train["recent_returns"].to_numpy()), train_direction=train["direction"].to_numpy(),
        train_return=train["target_return"].to_numpy() / train["return_scale"].to_numpy(),
    )
