"""Every forecaster of the forecast report, fitted on the same train split and predicting every window.

Why one place: the report's comparisons only mean something if every model saw the same train windows, the
same validation windows for early stopping, and is scored on the same test windows. The orchestration layer
pools the selected series (each standardised with its own train statistics) and calls :func:`run_suite`; it
gets back P(up) of every direction model and the next-h return forecast (in each series' log-return units) of
every return model for every window, each model's parameter count and training seconds, and the models are
saved (safetensors or JSON, never pickle) under ``out_dir``.

Models (names are the report's and ``metrics.json``'s):

- direction: ``scalogram_cnn`` / ``scalogram_vit`` (images), ``lstm``, ``haar_lstm``, ``cnn1d``,
  ``cnn1d_attention`` (standardised windows), ``logistic`` (window + summary features),
  ``logistic_wavelet`` and ``gbm`` (lagged returns + wavelet energies), ``arima_sign`` (the sign of ARIMA);
- next-h return: ``arima`` (one per series, order by AIC on its train returns or fixed), ``ridge`` and
  ``gbm_return`` (lagged returns + wavelet energies).

Augmentation (issue 9, seed 000) is an extra model, ``scalogram_<arch>_augmented``: the same network trained on
the train windows plus one time-shifted and magnitude-jittered copy of each (re-transformed to scalograms by
``image_fn``), so the report shows the accuracy with and without it side by side.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import atomic_path

NEURAL_SEQUENCE = ("lstm", "haar_lstm")
NEURAL_CONV1D = ("cnn1d", "cnn1d_attention")
TABULAR_DIRECTION = ("logistic", "logistic_wavelet", "gbm")
RETURN_MODELS = ("arima", "ridge", "gbm_return")
#: Every model key `SuiteConfig.models` accepts ("scalogram" is the image classifier of `arch`; "arima" adds
#: the return model and its sign as a direction model).
ALL_MODELS = ("scalogram", *NEURAL_SEQUENCE, *NEURAL_CONV1D, *TABULAR_DIRECTION, *RETURN_MODELS)

ProgressFactory = Callable[[str], Any]


@dataclass
class SuiteInputs:
    """The pooled windows of the selected series, one row per window (all arrays share the first axis).

    ``images``: scaled scalograms (N, C, S, T); ``standardized``: each series' windows standardised with its
    own train statistics (N, T); ``windows``: the raw log-return windows (N, T); ``direction``: training labels
    (0/1); ``target_return``: the next-h log return (for the return models' training targets);
    ``return_scale``: each row's series train std (return models are fitted in these units so series pool);
    ``arima_train``: each series' contiguous TRAIN log returns (what its ARIMA is fitted on); ``horizon`` per
    series.
    """

    images: np.ndarray
    standardized: np.ndarray
    windows: np.ndarray
    direction: np.ndarray
    target_return: np.ndarray
    return_scale: np.ndarray
    split: np.ndarray
    series: np.ndarray
    arima_train: dict[str, np.ndarray] = field(default_factory=dict)
    horizon: dict[str, int] = field(default_factory=dict)


@dataclass
class SuiteConfig:
    """Which models run and how they train (the defaults are the quick profile's)."""

    models: tuple[str, ...] = ALL_MODELS
    arch: str = "cnn"
    input_channels: str = "real_imag"
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 3
    seed: int = 0
    lstm_hidden_size: int = 32
    haar_level: int = 3
    arima_order: tuple[int, int] | None = None  # (p, q); None: chosen by AIC on train, p, q <= arima_max_order
    arima_max_order: int = 2
    lags: int = 10
    gbm_max_iter: int = 100
    augment: bool = False  # also train scalogram_<arch>_augmented (time shift + magnitude jitter)
    augment_shift: int = 8
    augment_jitter: float = 0.2

    def validate(self) -> None:
        unknown = sorted(set(self.models) - set(ALL_MODELS))
        if unknown:
            raise ConfigError(f"forecasters.models names {unknown}, which are not models; choose from "
                              f"{list(ALL_MODELS)}.")
        if self.augment and "scalogram" not in self.models:
            raise ConfigError("forecasters.augment=true trains an augmented copy of the scalogram classifier; add "
                              "'scalogram' to forecasters.models or set augment=false.")


@dataclass
class SuiteResult:
    direction_proba: dict[str, np.ndarray]  # model -> P(up) for every row
    returns: dict[str, np.ndarray]  # model -> next-h return forecast in log-return units, every row
    info: dict[str, dict[str, Any]]  # model -> {"params", "train_seconds", ...}
    histories: dict[str, list[dict[str, float]]]  # neural model -> per-epoch history


def run_suite(
    data: SuiteInputs,
    cfg: SuiteConfig,
    device: Any,
    out_dir: Path,
    *,
    progress: ProgressFactory | None = None,
    checkpointing: Any = None,
    image_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    log: Callable[[str], None] | None = None,
) -> SuiteResult:
    """Fit every model of ``cfg.models`` on the train rows (early stopping on the val rows) and predict all rows.

    ``progress(label)`` makes a per-epoch callback for a neural model; ``image_fn(standardized_windows,
    series)`` maps standardised windows to scaled scalograms of each row's series (needed for
    ``cfg.augment``). Models are saved under ``out_dir/<model>`` (neural: safetensors; tabular and ARIMA: JSON).
    """
    cfg.validate()
    say = log or (lambda message: None)
    make_progress = progress or (lambda label: None)
    train, val = data.split == "train", data.split == "val"
    if not train.any() or not val.any():
        raise DataError("forecasters need train and val windows; materialize segments with more data.")
    if np.unique(data.direction[train]).size < 2:
        raise DataError("the train windows of the selected series all have one direction; a direction model "
                        "cannot be fitted. Select more series or a longer history.")
    out_dir = Path(out_dir)
    result = SuiteResult({}, {}, {}, {})
    models = set(cfg.models)

    def neural(name: str, fit: Callable[[], Any], predict: Callable[[Any], np.ndarray],
               save: Callable[[Any], Any]) -> None:
        say(f"training {name}")
        fitted = fit()
        result.direction_proba[name] = np.asarray(predict(fitted.model), dtype=np.float64)[:, -1]
        result.info[name] = {"params": int(fitted.params), "train_seconds": float(fitted.train_seconds),
                             "best_epoch": int(fitted.best_epoch)}
        result.histories[name] = list(fitted.history)
        save(fitted.model)

    if "scalogram" in models:
        from wavefin_core.models.classifier import (
            ClassifierConfig,
            predict_proba,
            save_classifier,
            train_classifier,
        )

        ccfg = ClassifierConfig(arch=cfg.arch, input_channels=cfg.input_channels, epochs=cfg.epochs,
                                batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, patience=cfg.patience,
                                seed=cfg.seed)

        def scalogram(name: str, images: np.ndarray, labels: np.ndarray) -> None:
            neural(name,
                   lambda: train_classifier(images, labels, data.images[val], data.direction[val], ccfg, device,
                                            progress=make_progress(name), checkpointing=checkpointing),
                   lambda model: predict_proba(model, data.images, device),
                   lambda model: save_classifier(model, ccfg, data.images.shape[1:], out_dir / name))

        name = f"scalogram_{cfg.arch}"
        scalogram(name, data.images[train], data.direction[train])
        if cfg.augment:
            if image_fn is None:
                raise ConfigError("augment=true needs image_fn (standardised windows -> scalograms).")
            from wavefin_core.models.augment import augment_windows

            rng = np.random.default_rng(cfg.seed)
            extra = augment_windows(data.standardized[train], rng, shift=cfg.augment_shift, jitter=cfg.augment_jitter)
            images = np.concatenate([data.images[train], image_fn(extra, data.series[train])])
            labels = np.concatenate([data.direction[train], data.direction[train]])
            aug = f"{name}_augmented"
            scalogram(aug, images, labels)
            result.info[aug].update({"augmentation": f"time shift <= {cfg.augment_shift}, magnitude jitter "
                                                     f"{cfg.augment_jitter:g}; 2x the train windows"})

    for name in NEURAL_SEQUENCE:
        if name not in models:
            continue
        from wavefin_core.models.sequence import (
            SequenceConfig,
            predict_sequence_proba,
            save_sequence_classifier,
            train_sequence_classifier,
        )

        scfg = SequenceConfig(hidden_size=cfg.lstm_hidden_size, epochs=cfg.epochs, batch_size=cfg.batch_size,
                              learning_rate=cfg.learning_rate, patience=cfg.patience, seed=cfg.seed,
                              denoise_level=cfg.haar_level if name == "haar_lstm" else None)
        neural(name,
               lambda scfg=scfg, name=name: train_sequence_classifier(
                   data.standardized[train], data.direction[train], data.standardized[val], data.direction[val],
                   scfg, device, progress=make_progress(name), checkpointing=checkpointing),
               lambda model, scfg=scfg: predict_sequence_proba(model, data.standardized, scfg, device),
               lambda model, scfg=scfg, name=name: save_sequence_classifier(model, scfg, out_dir / name))

    for name in NEURAL_CONV1D:
        if name not in models:
            continue
        from wavefin_core.models.conv1d import Conv1dConfig, predict_conv1d_proba, save_conv1d, train_conv1d

        kcfg = Conv1dConfig(arch=name, epochs=cfg.epochs, batch_size=cfg.batch_size,
                            learning_rate=cfg.learning_rate, patience=cfg.patience, seed=cfg.seed)
        neural(name,
               lambda kcfg=kcfg, name=name: train_conv1d(
                   data.standardized[train], data.direction[train], data.standardized[val], data.direction[val],
                   kcfg, device, progress=make_progress(name), checkpointing=checkpointing),
               lambda model: predict_conv1d_proba(model, data.standardized, device),
               lambda model, kcfg=kcfg, name=name: save_conv1d(model, kcfg, out_dir / name))

    _tabular(data, cfg, models, train, out_dir, result, say)
    if "arima" in models:
        _arima(data, cfg, out_dir, result, say)
    return result


def _timed(fit: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - started


def _tabular(data: SuiteInputs, cfg: SuiteConfig, models: set[str], train: np.ndarray, out_dir: Path,
             result: SuiteResult, say: Callable[[str], None]) -> None:
    x_train, y_train = data.standardized[train], data.direction[train]
    # Return targets in each series' train-std units, so series of different frequencies pool into one fit.
    z_train = data.target_return[train] / data.return_scale[train]
    windows, scale = data.standardized, data.return_scale
    direction, returns = result.direction_proba, result.returns

    def fit(name: str, make: Callable[[], Any], predict: Callable[[Any], np.ndarray], out: dict[str, np.ndarray],
            params: Callable[[Any], int] = lambda model: model.count_parameters()) -> None:
        """Fit one model, timed; `predict(model)` of every row goes to `out` (direction_proba or returns), its
        parameter count and seconds to `result.info`, its JSON (`to_dict`, no pickle) to `out_dir/<name>.json`."""
        say(f"fitting {name}")
        model, seconds = _timed(make)
        out[name] = predict(model)
        result.info[name] = {"params": int(params(model)), "train_seconds": seconds}
        _write_json(out_dir / f"{name}.json", model.to_dict())

    if "logistic" in models:
        from wavefin_core.baselines import LogisticBaseline

        fit("logistic", lambda: LogisticBaseline(seed=cfg.seed).fit(x_train, y_train),
            lambda model: model.predict_proba(windows), direction, params=lambda model: model.coef.size + 1)
    if models & {"logistic_wavelet", "gbm", "ridge", "gbm_return"}:
        from wavefin_core.models.tabular import GradientBoostingForecaster, LogisticDirection, RidgeForecaster
    if "logistic_wavelet" in models:
        fit("logistic_wavelet", lambda: LogisticDirection(lags=cfg.lags, seed=cfg.seed).fit(x_train, y_train),
            lambda model: model.predict_proba(windows)[:, -1], direction)
    if "gbm" in models:
        fit("gbm", lambda: GradientBoostingForecaster(task="direction", max_iter=cfg.gbm_max_iter, lags=cfg.lags,
                                                      seed=cfg.seed).fit(x_train, y_train),
            lambda model: model.predict_proba(windows)[:, -1], direction)
    if "ridge" in models:
        fit("ridge", lambda: RidgeForecaster(lags=cfg.lags).fit(x_train, z_train),
            lambda model: model.predict(windows) * scale, returns)
    if "gbm_return" in models:
        fit("gbm_return", lambda: GradientBoostingForecaster(task="return", max_iter=cfg.gbm_max_iter, lags=cfg.lags,
                                                             seed=cfg.seed).fit(x_train, z_train),
            lambda model: model.predict(windows) * scale, returns)


def _arima(data: SuiteInputs, cfg: SuiteConfig, out_dir: Path, result: SuiteResult,
           say: Callable[[str], None]) -> None:
    """One ARIMA per series on its own train returns; the report's row counts all their parameters and time."""
    from wavefin_core.baselines import ArimaForecaster

    forecast = np.zeros(len(data.split))
    params, seconds, orders = 0, 0.0, {}
    for name in dict.fromkeys(data.series.tolist()):
        rows = data.series == name
        if name not in data.arima_train:
            raise DataError(f"series {name!r} has no train returns for its ARIMA; materialize clean_prices for it.")
        train_returns = data.arima_train[name]
        if cfg.arima_order is None:
            model, spent = _timed(lambda y=train_returns: ArimaForecaster().fit_aic(y, cfg.arima_max_order,
                                                                                     cfg.arima_max_order))
        else:
            p, q = cfg.arima_order
            model, spent = _timed(lambda y=train_returns, p=p, q=q: ArimaForecaster().fit(y, order=(p, 0, q)))
        say(f"ARIMA{model.order} for {name} ({spent:.1f}s)")
        seconds += spent
        params += len(model.params) if model.params is not None else 1  # fallback: the train mean
        orders[name] = list(model.order)
        forecast[rows] = model.forecast(data.windows[rows], int(data.horizon.get(name, 1)))
        _write_json(out_dir / f"arima_{name}.json", model.to_dict())
    result.returns["arima"] = forecast  # its sign is the direction model `arima_sign` of the report
    info = {"params": params, "train_seconds": seconds, "orders": orders,
            "order_selection": "fixed" if cfg.arima_order is not None else f"AIC, p, q <= {cfg.arima_max_order}"}
    result.info["arima"] = info
    result.info["arima_sign"] = dict(info)


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


#: Models walk-forward refits per fold (fast: a fold's fit takes well under a second on the quick profile).
WALK_FORWARD_MODELS = ("logistic", "logistic_wavelet", "gbm", "ridge")


def walk_forward_models(models: Any, seed: int = 0, lags: int = 10) -> dict[str, Callable]:
    """``fit_predict(train_windows, train_direction, test_windows)`` of each fast model in ``models``, for
    :func:`wavefin_core.evaluation.walkforward.walk_forward_evaluate`. Each standardises with its fold's train
    windows only. ``ridge`` is fitted on the direction coded ±1 (a linear probability model) and predicts its
    sign: walk-forward scores directions only."""
    from wavefin_core.baselines import LogisticBaseline
    from wavefin_core.models.tabular import GradientBoostingForecaster, LogisticDirection, RidgeForecaster

    def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = float(train.mean()), float(train.std()) or 1.0
        return (train - mean) / std, (test - mean) / std

    def wrap(fit_predict: Callable) -> Callable:
        def run(train: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
            return fit_predict(*standardise(train, test), y)
        return run

    makers = {
        "logistic": lambda tr, te, y: LogisticBaseline(seed=seed).fit(tr, y).predict(te),
        "logistic_wavelet": lambda tr, te, y: LogisticDirection(lags=lags, seed=seed).fit(tr, y).predict(te),
        "gbm": lambda tr, te, y: GradientBoostingForecaster(lags=lags, seed=seed).fit(tr, y).predict(te),
        "ridge": lambda tr, te, y: (RidgeForecaster(lags=lags).fit(tr, 2.0 * y - 1.0).predict(te) > 0).astype(int),
    }
    return {name: wrap(makers[name]) for name in WALK_FORWARD_MODELS if name in set(models)}
