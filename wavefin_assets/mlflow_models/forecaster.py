"""MLflow pyfunc of one wavefin forecaster, logged from code (see `wavefin_assets.tracking`).

`model_config` names the model and how to load it (`loader`); `artifacts` holds its files:

| loader | models | artifacts | predict input | output |
|---|---|---|---|---|
| `classifier` | scalogram_cnn, scalogram_vit (+ `_augmented`) | `weights` directory | images (N, C, scales, window) | P(up) |
| `sequence` | lstm, haar_lstm | `weights` directory | standardized windows (N, window) | P(up) |
| `conv1d` | cnn1d, cnn1d_attention | `weights` directory | standardized windows (N, window) | P(up) |
| `logistic`, `logistic_wavelet` | same | `params` JSON | standardized windows (N, window) | P(up) |
| `ridge` | ridge | `params` JSON | standardized windows (N, window) | return in train-std units |
| `arima` | arima | `arima_<series>` JSON per series | DataFrame: series, window (raw log returns) | return |

Standardized windows are a series' log returns minus its train mean, divided by its train std (the
`norm_mean` / `norm_std` the scalograms asset stores). The ARIMA forecast is the cumulative log return over the
series' horizon (`model_config["horizons"]`) after each window.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import set_model


class WavefinForecaster(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        config = dict(context.model_config or {})
        self.name, self.loader = str(config["model"]), str(config["loader"])
        self.horizons = {str(k): int(v) for k, v in (config.get("horizons") or {}).items()}
        artifacts = context.artifacts
        if self.loader == "classifier":
            from wavefin_core.models import load_classifier

            self.model, _, _ = load_classifier(artifacts["weights"], device="cpu")
        elif self.loader == "sequence":
            from wavefin_core.models import load_sequence_classifier

            self.model, self.config, _ = load_sequence_classifier(artifacts["weights"], device="cpu")
        elif self.loader == "conv1d":
            from wavefin_core.models.conv1d import load_conv1d

            self.model, _, _ = load_conv1d(artifacts["weights"], device="cpu")
        elif self.loader in ("logistic", "logistic_wavelet", "ridge"):
            params = json.loads(Path(artifacts["params"]).read_text())
            if self.loader == "logistic":
                from wavefin_core.baselines import LogisticBaseline as Model
            elif self.loader == "logistic_wavelet":
                from wavefin_core.models.tabular import LogisticDirection as Model
            else:
                from wavefin_core.models.tabular import RidgeForecaster as Model
            self.model = Model.from_dict(params)
        elif self.loader == "arima":
            from wavefin_core.baselines import ArimaForecaster

            self.models = {key.removeprefix("arima_"): ArimaForecaster.from_dict(json.loads(Path(path).read_text()))
                           for key, path in artifacts.items() if key.startswith("arima_")}
        else:
            raise ValueError(f"model {self.name!r}: unknown loader {self.loader!r} in its model_config")

    # `pd.DataFrame` is a hint MLflow reads no schema from (its type_hints_no_signature_inference): no validation
    # or conversion of the input, as without hints, and no "Add type hints" warning on every load.
    def predict(self, context, model_input: pd.DataFrame, params=None):
        if self.loader == "arima":
            return self._arima(model_input)
        x = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input)
        if self.loader == "classifier":
            from wavefin_core.models import predict_proba

            return predict_proba(self.model, x.astype(np.float32), "cpu")[:, -1]
        if self.loader == "sequence":
            from wavefin_core.models import predict_sequence_proba

            return predict_sequence_proba(self.model, x.astype(np.float64), self.config, "cpu")[:, -1]
        if self.loader == "conv1d":
            from wavefin_core.models.conv1d import predict_conv1d_proba

            return predict_conv1d_proba(self.model, x.astype(np.float64), "cpu")[:, -1]
        if self.loader == "ridge":
            return np.asarray(self.model.predict(x.astype(np.float64)))
        proba = np.asarray(self.model.predict_proba(x.astype(np.float64)))
        return proba if proba.ndim == 1 else proba[:, -1]

    def _arima(self, frame):
        out = np.empty(len(frame))
        for name in frame["series"].unique():
            if name not in self.models:
                raise ValueError(f"no ARIMA was fitted for series {name!r}; this model has {sorted(self.models)}")
            rows = (frame["series"] == name).to_numpy()
            windows = np.stack([np.asarray(w, dtype=np.float64) for w in frame.loc[rows, "window"]])
            out[rows] = self.models[name].forecast(windows, self.horizons.get(name, 1))
        return out


set_model(WavefinForecaster())
