"""Forecasting assets: forecasters (scalogram CNN/ViT, logistic, ARIMA) → forecast_report (with naive baselines)."""


import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from wavefin_assets.assets.common import (
    GPU_ASSET_KWARGS,
    MODEL_GROUP,
    REPORT_GROUP,
    log_progress,
    pool,
    select_series,
)
from wavefin_assets.metadata import report_md, scalar_metadata
from wavefin_assets.profiles import PROFILE
from wavefin_assets.resources import DeviceResource, MLflowResource, StorageResource
from wavefin_core.baselines import ArimaForecaster, LogisticBaseline
from wavefin_core.errors import ConfigError
from wavefin_core.evaluation.reports import write_forecast_report
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


@dg.asset(
    group_name=MODEL_GROUP,
    description="Scalogram classifier (direction), LSTM and causal Haar-denoised LSTM, logistic-regression and "
    "per-series ARIMA baselines, all fitted on the train split; predictions for every window saved as Parquet.",
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
    model_dir = storage.path("models") / "forecasters"
    cfg = ClassifierConfig(arch=config.arch, epochs=config.epochs, batch_size=config.batch_size,
                           learning_rate=config.learning_rate, patience=config.patience, seed=config.seed)
    # Everything is written to a staging directory that replaces `model_dir` only once complete: no leftovers
    # of an earlier run (another arch, other series) and never a half-written set of models.
    with (
        mlflow.start_run("forecasters", tags={"asset": "forecasters", "profile": PROFILE.name}) as run,
        atomic_directory(model_dir) as staging,
    ):
        run.log_params({**cfg.to_dict(), "series": ",".join(sets), "n_train": int(train.sum()),
                        "arima_order": f"({config.arima_p},0,{config.arima_q})", "device": device.describe()})

        clf = train_classifier(data.images[train], data.direction[train], data.images[val], data.direction[val],
                               cfg, device.torch_device(),
                               progress=log_progress(context, f"{config.arch} epoch"))
        for row in clf.history:
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        save_classifier(clf.model, cfg, data.images.shape[1:], staging / f"scalogram_{config.arch}")
        proba = predict_proba(clf.model, data.images, device.torch_device())

        sequence_proba = {}
        for name, level in (("lstm", None), ("haar_lstm", config.haar_level)):
            seq_cfg = SequenceConfig(hidden_size=config.lstm_hidden_size, epochs=config.epochs,
                                     batch_size=config.batch_size, learning_rate=config.learning_rate,
                                     patience=config.patience, seed=config.seed, denoise_level=level)
            seq = train_sequence_classifier(data.standardized[train], data.direction[train],
                                            data.standardized[val], data.direction[val], seq_cfg,
                                            device.torch_device(), progress=log_progress(context, f"{name} epoch"))
            save_sequence_classifier(seq.model, seq_cfg, staging / name)
            sequence_proba[name] = predict_sequence_proba(seq.model, data.standardized, seq_cfg,
                                                          device.torch_device())[:, 1]
            seq_best = seq.history[seq.best_epoch - 1] if seq.best_epoch >= 1 else seq.history[-1]
            run.log_metrics({f"{name}_best_val_accuracy": seq_best["val_accuracy"]})

        logistic = LogisticBaseline().fit(data.standardized[train], data.direction[train])
        logistic_proba = logistic.predict_proba(data.standardized)
        _write_json(staging / "logistic.json", logistic.to_dict())

        arima_pred = np.zeros(len(data.split))
        offset = 0
        for name, s in sets.items():
            train_end = s.label_time[s.split == "train"].max()
            if name not in clean_prices:
                raise ConfigError(f"series {name!r} has scalograms but no materialized clean_prices; "
                                  "materialize its partition again.")
            returns = clean_prices[name]["log_return"]
            index = returns.index.tz_convert("UTC").tz_localize(None) if returns.index.tz else returns.index
            train_returns = returns.to_numpy()[index <= pd.Timestamp(train_end)]
            arima = ArimaForecaster().fit(train_returns, order=(config.arima_p, 0, config.arima_q))
            arima_pred[offset : offset + len(s)] = arima.forecast(s.windows, s.horizon)
            _write_json(staging / f"arima_{name}.json", arima.to_dict())
            offset += len(s)

        predictions = pd.DataFrame({
            "series": data.series, "end_time": data.end_time, "split": data.split,
            "direction": data.direction, "target_return": data.target_return,
            f"scalogram_{config.arch}_proba_up": proba[:, 1], "logistic_proba_up": logistic_proba,
            "lstm_proba_up": sequence_proba["lstm"], "haar_lstm_proba_up": sequence_proba["haar_lstm"],
            "arima_return": arima_pred,
            # Each series' train-window std: the report compares return errors in these units, so series of
            # different frequencies (minute MJD, daily S&P) pool fairly.
            "return_scale": np.concatenate([np.full(len(s), s.norm_std) for s in sets.values()]),
            # The last `horizon` returns of each window: all the naive "previous direction" baseline needs.
            "recent_returns": list(np.concatenate([s.windows[:, -s.horizon :] for s in sets.values()])),
        })
        predictions.to_parquet(staging / "predictions.parquet")
        best = clf.history[clf.best_epoch - 1] if clf.best_epoch >= 1 else clf.history[-1]
        run.log_metrics({"best_val_accuracy": best["val_accuracy"], "best_epoch": clf.best_epoch})
        run.log_artifact(staging, "forecasters")
        run_id = run.run_id
    predictions_path = model_dir / "predictions.parquet"
    manifest = {"path": str(model_dir), "predictions": str(predictions_path), "series": list(sets),
                "classifier": f"scalogram_{config.arch}", "mlflow_run_id": run_id,
                "horizon": int(next(iter(sets.values())).horizon)}
    return dg.Output(manifest, metadata={
        "mlflow_run_id": run_id, "device": device.describe(), "train_windows": int(train.sum()),
        "best_epoch": clf.best_epoch, "best_val_accuracy": float(best["val_accuracy"]),
        "model_path": dg.MetadataValue.path(str(model_dir)),
    })


def _write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


@dg.asset(
    group_name=REPORT_GROUP,
    kinds={"markdown", "mlflow"},
    description="Test-split evaluation: accuracy, macro-F1 (binomial test vs 50%), RMSE/MAE (Diebold–Mariano vs "
    "the random walk); naive baselines always reported.",
)
def forecast_report(
    context: dg.AssetExecutionContext,
    forecasters: dict,
    mlflow: MLflowResource,
    storage: StorageResource,
) -> dg.Output[dict]:
    predictions = pd.read_parquet(forecasters["predictions"])
    test = predictions[predictions["split"] == "test"]
    classifier = forecasters["classifier"]
    scale = test["return_scale"]
    results = [
        {"model": classifier, "kind": "direction",
         "pred": (test[f"{classifier}_proba_up"] > 0.5).astype(int).to_numpy(),
         "proba": test[f"{classifier}_proba_up"].to_numpy()},
        *[{"model": name, "kind": "direction", "pred": (test[f"{name}_proba_up"] > 0.5).astype(int).to_numpy(),
           "proba": test[f"{name}_proba_up"].to_numpy()} for name in ("logistic", "lstm", "haar_lstm")],
        {"model": "arima_sign", "kind": "direction",
         "pred": (test["arima_return"] > 0).astype(int).to_numpy(), "proba": None},
        {"model": "arima", "kind": "return", "pred": (test["arima_return"] / scale).to_numpy(), "proba": None},
    ]
    out_dir = storage.path("reports", "forecast")
    train = predictions[predictions["split"] == "train"]
    report_context = {"series": ",".join(forecasters["series"]), "test_windows": len(test),
                      "return_units": "each series' train-window standard deviation",
                      "train_up_fraction": float(train["direction"].mean()), "profile": PROFILE.name}
    report = write_forecast_report(
        results, out_dir, title="wavefin forecast report", context=report_context,
        y_true_direction=test["direction"].to_numpy(), y_true_return=(test["target_return"] / scale).to_numpy(),
        train_direction=train["direction"].to_numpy(), windows=np.stack(test["recent_returns"].to_numpy()) / scale.to_numpy()[:, None],
        horizon=int(forecasters.get("horizon", 1)), groups=test["series"].to_numpy(),
    )
    with mlflow.start_run("forecast_report", tags={"asset": "forecast_report"}) as run:
        run.log_params(report_context)
        run.log_metrics(report.metrics)
        run.log_artifact(out_dir, "forecast_report")
        run_id = run.run_id
    context.log.info(f"forecast report: {report.markdown_path}")
    return dg.Output(
        {"report": str(report.markdown_path), "metrics": report.metrics, "mlflow_run_id": run_id},
        metadata={"report_path": dg.MetadataValue.path(str(report.markdown_path)), "mlflow_run_id": run_id,
                  "report": report_md(report.markdown_path), **scalar_metadata(report.metrics)},
    )
