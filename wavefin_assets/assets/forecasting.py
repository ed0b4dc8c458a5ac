"""Forecasting assets: forecasters (scalogram CNN/ViT, logistic, ARIMA) → forecast_report (with naive baselines)."""


import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from wavefin_assets.assets.common import (
    GPU_ASSET_KWARGS,
    MODEL_GROUP,
    REPORT_GROUP,
    checkpointing,
    log_progress,
    manifest_of_this_run,
    model_version,
    pool,
    prune_model_versions,
    select_series,
)
from wavefin_assets.metadata import report_md, scalar_metadata
from wavefin_assets.profiles import PROFILE
from wavefin_assets.resources import DeviceResource, MLflowResource, StorageResource
from wavefin_core.baselines import ArimaForecaster, LogisticBaseline
from wavefin_core.errors import ConfigError
from wavefin_core.evaluation.reports import SeriesForecasts, write_forecast_report
from wavefin_core.io import atomic_directory, atomic_path
from wavefin_core.models import (
    ClassifierConfig,
    SequenceConfig,
    predict_proba,
    predict_sequence_proba,
    save_classifier,
    save_sequence_classifier,
    train_classifier,
    train_sequence_classifier,
)
from wavefin_core.models.training import check_finite_output
from wavefin_core.models.versions import check_keep_versions, write_manifest


class ForecastersConfig(dg.Config):
    series: list[str] = []  # empty: every materialized series
    arch: str = PROFILE.classifier_arch  # cnn | vit
    epochs: int = PROFILE.classifier_epochs
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 0
    arima_p: int = 1
    arima_q: int = 1
    lstm_hidden_size: int = 32
    haar_level: int = 3  # causal Haar denoising depth of the Haar-LSTM's inputs
    checkpoint_every: int = PROFILE.checkpoint_every  # optimizer steps between checkpoints (resumed after a crash)
    keep_versions: int = PROFILE.keep_versions  # model versions (one per run) kept under models/forecasters/


@dg.asset(
    group_name=MODEL_GROUP,
    description="Scalogram classifier (direction), LSTM and causal Haar-denoised LSTM, logistic-regression and "
    "per-series ARIMA baselines, all fitted on the train split; predictions for every window saved as Parquet "
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
    sets = select_series(scalograms, config.series)
    data = pool(sets)
    train, val = data.split == "train", data.split == "val"
    check_keep_versions(config.keep_versions)
    checkpoints = checkpointing(storage, "forecasters", config.checkpoint_every, context)
    model_dir = model_version(storage, "forecasters", context)
    cfg = ClassifierConfig(arch=config.arch, epochs=config.epochs, batch_size=config.batch_size,
                           learning_rate=config.learning_rate, patience=config.patience, seed=config.seed)
    # Everything is written to a staging directory renamed to this run's `model_dir` only once complete: never a
    # half-written set of models, and earlier versions stay readable by the runs whose manifests name them.
    with (
        mlflow.start_run("forecasters", tags={"asset": "forecasters", "profile": PROFILE.name}) as run,
        atomic_directory(model_dir) as staging,
    ):
        run.log_params({**cfg.to_dict(), "series": ",".join(sets), "n_train": int(train.sum()),
                        "arima_order": f"({config.arima_p},0,{config.arima_q})", "device": device.describe()})

        model_info: dict[str, dict] = {}  # params and training seconds per model, for the report
        started = time.perf_counter()
        clf = train_classifier(data.images[train], data.direction[train], data.images[val], data.direction[val],
                               cfg, device.torch_device(),
                               progress=log_progress(context, f"{config.arch} epoch"), checkpointing=checkpoints)
        for row in clf.history:
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        model_info[f"scalogram_{config.arch}"] = {"params": _n_params(clf.model),
                                                  "train_seconds": time.perf_counter() - started}
        save_classifier(clf.model, cfg, data.images.shape[1:], staging / f"scalogram_{config.arch}")
        proba = predict_proba(clf.model, data.images, device.torch_device())

        sequence_proba = {}
        for name, level in (("lstm", None), ("haar_lstm", config.haar_level)):
            seq_cfg = SequenceConfig(hidden_size=config.lstm_hidden_size, epochs=config.epochs,
                                     batch_size=config.batch_size, learning_rate=config.learning_rate,
                                     patience=config.patience, seed=config.seed, denoise_level=level)
            started = time.perf_counter()
            seq = train_sequence_classifier(data.standardized[train], data.direction[train],
                                            data.standardized[val], data.direction[val], seq_cfg,
                                            device.torch_device(), progress=log_progress(context, f"{name} epoch"),
                                            checkpointing=checkpoints)
            model_info[name] = {"params": _n_params(seq.model), "train_seconds": time.perf_counter() - started}
            save_sequence_classifier(seq.model, seq_cfg, staging / name)
            sequence_proba[name] = predict_sequence_proba(seq.model, data.standardized, seq_cfg,
                                                          device.torch_device())[:, 1]
            seq_best = seq.history[seq.best_epoch - 1] if seq.best_epoch >= 1 else seq.history[-1]
            run.log_metrics({f"{name}_best_val_accuracy": seq_best["val_accuracy"]})

        started = time.perf_counter()
        logistic = LogisticBaseline().fit(data.standardized[train], data.direction[train])
        model_info["logistic"] = {"params": int(logistic.coef.size + 1), "train_seconds": time.perf_counter() - started}
        logistic_proba = logistic.predict_proba(data.standardized)
        _write_json(staging / "logistic.json", logistic.to_dict())

        arima_pred = np.zeros(len(data.split))
        arima_params, arima_seconds = 0, 0.0
        offset = 0
        for name, s in sets.items():
            train_end = s.label_time[s.split == "train"].max()
            if name not in clean_prices:
                raise ConfigError(f"series {name!r} has scalograms but no materialized clean_prices; "
                                  "materialize its partition again.")
            returns = clean_prices[name]["log_return"]
            index = returns.index.tz_convert("UTC").tz_localize(None) if returns.index.tz else returns.index
            train_returns = returns.to_numpy()[index <= pd.Timestamp(train_end)]
            started = time.perf_counter()
            arima = ArimaForecaster().fit(train_returns, order=(config.arima_p, 0, config.arima_q))
            arima_seconds += time.perf_counter() - started
            arima_params += len(arima.params) if arima.params is not None else 1  # fallback: the train mean
            arima_pred[offset : offset + len(s)] = arima.forecast(s.windows, s.horizon)
            _write_json(staging / f"arima_{name}.json", arima.to_dict())
            offset += len(s)
        # One ARIMA per series: the report's row counts all of their parameters and fitting time.
        model_info["arima"] = model_info["arima_sign"] = {"params": arima_params, "train_seconds": arima_seconds}

        # Scored targets are the RAW returns: clean_prices' winsorization (fitted on train) shapes the training
        # labels only, never the test targets the report scores (a clipped target flatters RMSE).
        raw_target = np.concatenate([_raw_targets(name, s, clean_prices[name]) for name, s in sets.items()])
        predictions = pd.DataFrame({
            "series": data.series, "end_time": data.end_time, "split": data.split,
            "direction": (raw_target > 0).astype(np.int64), "target_return": raw_target,
            "horizon": np.concatenate([np.full(len(s), int(s.horizon), dtype=np.int64) for s in sets.values()]),
            f"scalogram_{config.arch}_proba_up": proba[:, 1], "logistic_proba_up": logistic_proba,
            "lstm_proba_up": sequence_proba["lstm"], "haar_lstm_proba_up": sequence_proba["haar_lstm"],
            "arima_return": arima_pred,
            # Each series' train-window std: the report compares return errors in these units, so series of
            # different frequencies (minute MJD, daily S&P) pool fairly.
            "return_scale": np.concatenate([np.full(len(s), s.norm_std) for s in sets.values()]),
            # The last `horizon` returns of each window: all the naive "previous direction" baseline needs.
            "recent_returns": list(np.concatenate([s.windows[:, -s.horizon :] for s in sets.values()])),
        })
        _check_finite_predictions(predictions)
        predictions.to_parquet(staging / "predictions.parquet")
        best = clf.history[clf.best_epoch - 1] if clf.best_epoch >= 1 else clf.history[-1]
        run.log_metrics({"best_val_accuracy": best["val_accuracy"], "best_epoch": clf.best_epoch,
                         **{f"{m}_train_seconds": v["train_seconds"] for m, v in model_info.items()},
                         **{f"{m}_params": float(v["params"]) for m, v in model_info.items()}})
        _write_json(staging / "model_info.json", model_info)
        run.log_artifact(staging, "forecasters")
        run_id = run.run_id
    predictions_path = model_dir / "predictions.parquet"
    manifest = {"path": str(model_dir), "version": context.run_id, "predictions": str(predictions_path),
                "series": list(sets), "classifier": f"scalogram_{config.arch}", "mlflow_run_id": run_id,
                "horizon": int(next(iter(sets.values())).horizon),
                "horizons": {name: int(s.horizon) for name, s in sets.items()}, "model_info": model_info,
                "targets": "raw log returns (clean_prices winsorization never reaches the scored targets)"}
    write_manifest(model_dir, manifest)
    checkpoints.clear()
    prune_model_versions(context, model_dir, config.keep_versions)
    return dg.Output(manifest, metadata={
        "mlflow_run_id": run_id, "model_version": context.run_id, "device": device.describe(),
        "train_windows": int(train.sum()),
        "best_epoch": clf.best_epoch, "best_val_accuracy": float(best["val_accuracy"]),
        "model_path": dg.MetadataValue.path(str(model_dir)),
        **{f"{m}_params": int(v["params"]) for m, v in model_info.items()},
        **{f"{m}_train_seconds": float(v["train_seconds"]) for m, v in model_info.items()},
    })


def _n_params(model: "torch.nn.Module") -> int:  # noqa: F821 - torch stays out of definitions loading
    return int(sum(p.numel() for p in model.parameters()))


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
    forecasters = manifest_of_this_run(context, forecasters)
    context.log.info(f"reading forecasters version {forecasters.get('version')} at {forecasters['path']}")
    predictions = pd.read_parquet(forecasters["predictions"])
    classifier = forecasters["classifier"]
    series = []
    for name in forecasters["series"]:
        rows = predictions[predictions["series"] == name]
        series.append(_series_forecasts(name, rows, classifier, forecasters))
    out_dir = storage.path("reports", "forecast")
    test = predictions[predictions["split"] == "test"]
    report_context = {"series": ",".join(forecasters["series"]), "test_windows": len(test),
                      "horizons": ",".join(f"{s.name}={s.horizon}" for s in series),
                      "return_units": "each series' train-window standard deviation",
                      "targets": "raw next-horizon log returns (never winsorized)", "profile": PROFILE.name}
    report = write_forecast_report(series, out_dir, title="wavefin forecast report", context=report_context,
                                   model_info=forecasters.get("model_info") or {})
    with mlflow.start_run("forecast_report", tags={"asset": "forecast_report"}) as run:
        run.log_params(report_context)
        run.log_metrics(report.metrics)
        run.log_artifact(out_dir, "forecast_report")
        run_id = run.run_id
    context.log.info(f"forecast report: {report.markdown_path}")
    return dg.Output(
        {"report": str(report.markdown_path), "metrics_json": str(report.metrics_json), "metrics": report.metrics,
         "mlflow_run_id": run_id},
        metadata={"report_path": dg.MetadataValue.path(str(report.markdown_path)), "mlflow_run_id": run_id,
                  "metrics_json": dg.MetadataValue.path(str(report.metrics_json)),
                  "significant_models": ", ".join(
                      f"{name}:{model}" for name, sec in report.document["series"].items()
                      for model, entry in {**sec["models"], **sec["return_models"]}.items()
                      if entry["significant"]) or "none",
                  "report": report_md(report.markdown_path), **scalar_metadata(report.metrics)},
    )


def _series_forecasts(name: str, rows: pd.DataFrame, classifier: str, manifest: dict) -> SeriesForecasts:
    """One series' test forecasts (in its train-std return units) and the train rows its naive baselines need."""
    test, train = rows[rows["split"] == "test"], rows[rows["split"] == "train"]
    horizon = int((manifest.get("horizons") or {}).get(name, manifest.get("horizon", 1)))
    scale = test["return_scale"].to_numpy()
    results = [
        *[{"model": model, "kind": "direction", "pred": (test[f"{model}_proba_up"] > 0.5).astype(int).to_numpy(),
           "proba": test[f"{model}_proba_up"].to_numpy()} for model in (classifier, "logistic", "lstm", "haar_lstm")],
        {"model": "arima_sign", "kind": "direction", "pred": (test["arima_return"] > 0).astype(int).to_numpy(),
         "proba": None},
        {"model": "arima", "kind": "return", "pred": test["arima_return"].to_numpy() / scale, "proba": None},
    ]
    return SeriesForecasts(
        name=name, horizon=horizon, y_true_direction=test["direction"].to_numpy(),
        y_true_return=test["target_return"].to_numpy() / scale, results=results,
        test_windows=np.stack(test["recent_returns"].to_numpy()),
        train_windows=np.stack(train["recent_returns"].to_numpy()), train_direction=train["direction"].to_numpy(),
        train_return=train["target_return"].to_numpy() / train["return_scale"].to_numpy(),
    )
