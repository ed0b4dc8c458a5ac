"""Tabular forecasters on lagged returns plus wavelet-energy features: ridge (next-h return), logistic
(direction, 2 or 3 classes) and gradient boosting (either task), all fitted on TRAIN windows only.

Features of a window (`tabular_features`): its last `lags` returns (most recent last) followed by
`wavelet_features`, the log mean energy per scale of the window's Haar DWT or complex Morlet CWT: how much
of the window's variance sits at each time scale, the quantity a scalogram shows and a linear model cannot
form from raw returns. Every feature depends on its own window only; the standardisation (mean, std) is
fitted on the train windows.

Persistence without pickle: ridge and logistic store their coefficients and scaler in JSON (`to_dict`) and
predict from them with numpy, so a reloaded model predicts exactly the same. scikit-learn's gradient-boosted
trees cannot be written without pickle, so `GradientBoostingForecaster.to_dict` stores its config, seed and a
fingerprint of its training data, and `from_dict(params, train_windows, train_targets)` refits: the fit is
deterministic (fixed `random_state` and oversampling seed, no early-stopping split, no subsampling below 200,000 rows,
one OpenMP thread by default: small fits on a busy machine ran 10x slower with more), so the refit
predicts identically (tested), and a different training set is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pywt
from threadpoolctl import threadpool_limits

from wavefin_core.errors import ConfigError, DataError

__all__ = [
    "GradientBoostingForecaster",
    "LogisticDirection",
    "RidgeForecaster",
    "tabular_features",
    "wavelet_features",
]

WAVELET_METHODS = ("haar", "cwt", "none")
TASKS = ("direction", "return")


def _windows(windows: Any, name: str = "windows") -> np.ndarray:
    x = np.asarray(windows)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
        raise DataError(f"{name} has shape {x.shape}; expected return windows (N, T) with N >= 1 and T >= 2.")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise DataError(f"{name} must hold finite returns; clean or drop the windows with NaN/inf first.")
    return x.astype(np.float64, copy=False)


def wavelet_features(
    windows: Any, method: str = "haar", level: int | None = None, n_scales: int = 8, wavelet: str = "cmor1.5-1.0"
) -> np.ndarray:
    """Log mean energy per scale of each window (N, T) -> (N, bands), float64.

    - "haar": orthonormal Haar DWT (`level` levels, default min(4, the most the length allows)), bands ordered
      as `pywt.wavedec` (approximation, then details coarse to fine): level + 1 features.
    - "cwt": complex Morlet CWT over `n_scales` scales covering the window's band (`covering_scales`), mean |W|^2
      per scale: `n_scales` features.
    - "none": no features, (N, 0).
    The log (of energy + 1e-12 times the window's mean square, so flat windows stay finite) turns multiplicative
    volatility changes into shifts a linear model can use.
    """
    x = _windows(windows)
    if method not in WAVELET_METHODS:
        raise ConfigError(f"wavelet={method!r} must be one of {WAVELET_METHODS}.")
    if method == "none":
        return np.zeros((len(x), 0))
    floor = 1e-12 * (np.mean(x**2, axis=1, keepdims=True) + 1e-300)
    if method == "haar":
        most = pywt.dwt_max_level(x.shape[1], "haar")
        level = min(4, most) if level is None else level
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level <= max(most, 1):
            raise ConfigError(f"level={level!r} must be an integer in [1, {max(most, 1)}] for windows of "
                              f"{x.shape[1]} returns.")
        bands = pywt.wavedec(x, "haar", level=int(level), mode="periodization", axis=-1)
        energy = np.column_stack([np.mean(band**2, axis=1) for band in bands])
    else:
        from wavefin_core.wavelets import covering_scales, cwt

        if isinstance(n_scales, bool) or not isinstance(n_scales, (int, np.integer)) or n_scales < 1:
            raise ConfigError(f"n_scales={n_scales!r} must be a positive integer, e.g. 8.")
        if x.shape[1] < 4:
            raise ConfigError(f"wavelet='cwt' needs windows of at least 4 returns; these have {x.shape[1]}.")
        coefs = cwt(x, covering_scales(x.shape[1], wavelet, num=int(n_scales)), wavelet)
        energy = np.mean(np.abs(coefs) ** 2, axis=-1)
    return np.log(energy + floor)


def tabular_features(
    windows: Any, lags: int = 10, wavelet: str = "haar", level: int | None = None, n_scales: int = 8
) -> np.ndarray:
    """[last `lags` returns (oldest first), `wavelet_features`] of each window: (N, lags + bands), float64."""
    x = _windows(windows)
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or not 0 <= lags <= x.shape[1]:
        raise ConfigError(f"lags={lags!r} must be an integer in [0, window length {x.shape[1]}]; e.g. 10.")
    lagged = x[:, x.shape[1] - int(lags) :]
    return np.column_stack([lagged, wavelet_features(x, wavelet, level, n_scales)])


class _FeatureModel:
    """Shared settings, feature extraction and train-only standardisation of the tabular models."""

    kind = "tabular"

    def __init__(self, lags: int = 10, wavelet: str = "haar", level: int | None = None, n_scales: int = 8) -> None:
        if wavelet not in WAVELET_METHODS:
            raise ConfigError(f"wavelet={wavelet!r} must be one of {WAVELET_METHODS}.")
        self.lags, self.wavelet, self.level, self.n_scales = int(lags), wavelet, level, int(n_scales)
        self.window_length: int | None = None
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _features(self, windows: Any, name: str = "windows") -> np.ndarray:
        x = _windows(windows, name)
        if self.window_length is not None and x.shape[1] != self.window_length:
            raise DataError(f"{name} have length {x.shape[1]}; this {self.kind} model was fitted on windows of "
                            f"{self.window_length}. Use the same window_length.")
        return tabular_features(x, self.lags, self.wavelet, self.level, self.n_scales)

    def _fit_scaler(self, features: np.ndarray, window_length: int) -> np.ndarray:
        self.window_length = int(window_length)
        self.mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale[~(scale > 1e-12)] = 1.0
        self.scale = scale
        return (features - self.mean) / self.scale

    def _scaled(self, windows: Any) -> np.ndarray:
        if self.mean is None:
            raise ConfigError(f"{type(self).__name__} used before fit()/from_dict().")
        return (self._features(windows) - self.mean) / self.scale

    def _settings(self) -> dict[str, Any]:
        return {"lags": self.lags, "wavelet": self.wavelet, "level": self.level, "n_scales": self.n_scales,
                "window_length": self.window_length}

    def _scaler_dict(self) -> dict[str, Any]:
        return {"scaler_mean": self.mean.tolist(), "scaler_scale": self.scale.tolist()}

    def _load_scaler(self, d: dict[str, Any]) -> None:
        self.window_length = int(d["window_length"])
        self.mean = np.asarray(d["scaler_mean"], dtype=np.float64)
        self.scale = np.asarray(d["scaler_scale"], dtype=np.float64)


def _targets(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.shape != (n,) or not np.isfinite(y).all():
        raise DataError(f"{name} must be {n} finite next-horizon returns (one per train window); got {y.shape}.")
    return y


def _classes(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.shape != (n,) or not np.isin(y, (0, 1, 2)).all():
        raise DataError(f"{name} must be {n} direction labels 0 (down), 1 (up) or, with a flat band, 0 (down), "
                        "1 (flat), 2 (up).")
    y = y.astype(np.int64)
    n_classes = 3 if (y == 2).any() else 2
    missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise DataError(f"{name} has no windows of class {missing}; every class must occur in the train split "
                        "(use a longer train period or a narrower flat band).")
    return y


class RidgeForecaster(_FeatureModel):
    """Ridge regression of the next-h return on standardised tabular features (closed form, numpy).

    The intercept is the train mean target (not penalised). `alpha` is the L2 penalty on the standardised
    coefficients, in units of train samples' squared error.
    """

    kind = "ridge"

    def __init__(self, alpha: float = 10.0, lags: int = 10, wavelet: str = "haar", level: int | None = None,
                 n_scales: int = 8) -> None:
        super().__init__(lags, wavelet, level, n_scales)
        if not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise ConfigError(f"RidgeForecaster alpha={alpha!r} must be a number >= 0, e.g. 10.")
        self.alpha = float(alpha)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def fit(self, train_windows: Any, train_targets: Any) -> RidgeForecaster:
        x = _windows(train_windows, "train_windows")
        z = self._fit_scaler(self._features(x, "train_windows"), x.shape[1])
        y = _targets(train_targets, len(z), "train_targets")
        self.intercept = float(y.mean())
        gram = z.T @ z + self.alpha * np.eye(z.shape[1])
        self.coef = np.linalg.solve(gram, z.T @ (y - self.intercept))
        return self

    def predict(self, windows: Any) -> np.ndarray:
        """Next-h return forecast per window, shape (N,)."""
        if self.coef is None:
            raise ConfigError("RidgeForecaster.predict called before fit()/from_dict().")
        return self._scaled(windows) @ self.coef + self.intercept

    def count_parameters(self) -> int:
        """Coefficients plus the intercept (the scaler's statistics are not fitted by the loss)."""
        return 0 if self.coef is None else int(self.coef.size + 1)

    def to_dict(self) -> dict[str, Any]:
        if self.coef is None:
            raise ConfigError("RidgeForecaster.to_dict called before fit().")
        return {"kind": self.kind, "alpha": self.alpha, **self._settings(), **self._scaler_dict(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RidgeForecaster:
        try:
            m = cls(float(d["alpha"]), int(d["lags"]), d["wavelet"], d.get("level"), int(d.get("n_scales", 8)))
            m._load_scaler(d)
            m.coef = np.asarray(d["coef"], dtype=np.float64)
            m.intercept = float(d["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"ridge parameter file is malformed ({exc!r}); re-fit the model.") from exc
        if not m.coef.shape == m.mean.shape == m.scale.shape:
            raise ConfigError("ridge parameter file has inconsistent lengths; re-fit the model.")
        return m


class LogisticDirection(_FeatureModel):
    """Multinomial L2 logistic regression (2 or 3 direction classes) on standardised tabular features.

    Fitted with scikit-learn (`class_weight="balanced"` when `balance_classes`, so an imbalanced split does
    not push every prediction to the majority class); prediction uses the stored coefficients with numpy.
    """

    kind = "logistic"

    def __init__(self, C: float = 1.0, lags: int = 10, wavelet: str = "haar", level: int | None = None,
                 n_scales: int = 8, balance_classes: bool = True, seed: int = 0) -> None:
        super().__init__(lags, wavelet, level, n_scales)
        if not (isinstance(C, (int, float)) and C > 0):
            raise ConfigError(f"LogisticDirection C={C!r} must be > 0, e.g. 1.0.")
        self.C, self.balance_classes, self.seed = float(C), bool(balance_classes), int(seed)
        self.coef: np.ndarray | None = None  # (n_classes, F)
        self.intercept: np.ndarray | None = None

    def fit(self, train_windows: Any, train_direction: Any) -> LogisticDirection:
        from sklearn.linear_model import LogisticRegression

        x = _windows(train_windows, "train_windows")
        z = self._fit_scaler(self._features(x, "train_windows"), x.shape[1])
        y = _classes(train_direction, len(z), "train_direction")
        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed,
                                 class_weight="balanced" if self.balance_classes else None)
        with threadpool_limits(1):  # a small problem: BLAS threads on a busy machine cost 70x (measured)
            clf.fit(z, y)
        coef, intercept = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row for class 1; the softmax form is [0, row]
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
        self.coef, self.intercept = coef.astype(np.float64), intercept.astype(np.float64)
        return self

    def predict_proba(self, windows: Any) -> np.ndarray:
        """Class probabilities (N, n_classes); the last column is P(up)."""
        if self.coef is None:
            raise ConfigError("LogisticDirection.predict_proba called before fit()/from_dict().")
        logits = self._scaled(windows) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, windows: Any) -> np.ndarray:
        return np.argmax(self.predict_proba(windows), axis=1)

    def count_parameters(self) -> int:
        """Free coefficients and intercepts: one row for 2 classes (the stored zero row is fixed), K rows for K > 2."""
        if self.coef is None:
            return 0
        rows = 1 if self.coef.shape[0] == 2 else self.coef.shape[0]
        return int(rows * (self.coef.shape[1] + 1))

    def to_dict(self) -> dict[str, Any]:
        if self.coef is None:
            raise ConfigError("LogisticDirection.to_dict called before fit().")
        return {"kind": self.kind, "C": self.C, "balance_classes": self.balance_classes, "seed": self.seed,
                **self._settings(), **self._scaler_dict(), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticDirection:
        try:
            m = cls(float(d["C"]), int(d["lags"]), d["wavelet"], d.get("level"), int(d.get("n_scales", 8)),
                    bool(d.get("balance_classes", True)), int(d.get("seed", 0)))
            m._load_scaler(d)
            m.coef = np.asarray(d["coef"], dtype=np.float64)
            m.intercept = np.asarray(d["intercept"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"logistic parameter file is malformed ({exc!r}); re-fit the model.") from exc
        if m.coef.ndim != 2 or m.coef.shape[1] != m.mean.size or m.intercept.shape != (m.coef.shape[0],):
            raise ConfigError("logistic parameter file has inconsistent shapes; re-fit the model.")
        return m


def _balanced_rows(y: np.ndarray, seed: int) -> np.ndarray:
    """Row indices with every class as frequent as the largest: all rows, plus seeded draws (with replacement)
    from the smaller classes. Oversampling rather than sample weights: scikit-learn's weighted bin thresholds
    took seconds on a few hundred rows (measured 5 s vs 0.1 s), and the two are the same in expectation."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    extra = [rng.choice(np.flatnonzero(y == c), counts.max() - counts[c], replace=True)
             for c in range(counts.size) if counts[c]]
    return np.concatenate([np.arange(y.size), *extra])


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


class GradientBoostingForecaster(_FeatureModel):
    """scikit-learn HistGradientBoosting (classifier for task="direction", regressor for "return") on the
    tabular features, with a fixed seed and no early-stopping split, so a refit on the same data is identical.

    `balance_classes` oversamples the smaller direction classes (seeded) to the size of the largest.
    Saved as its config + a fingerprint of the training data (`to_dict`), restored by refitting
    (`from_dict(params, train_windows, train_targets)`): tree ensembles have no pickle-free format in sklearn.
    """

    kind = "gradient_boosting"

    def __init__(self, task: str = "direction", max_iter: int = 100, learning_rate: float = 0.05,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 20, l2_regularization: float = 1.0,
                 lags: int = 10, wavelet: str = "haar", level: int | None = None, n_scales: int = 8,
                 balance_classes: bool = True, seed: int = 0, n_threads: int = 1) -> None:
        super().__init__(lags, wavelet, level, n_scales)
        if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
            raise ConfigError(f"GradientBoostingForecaster n_threads={n_threads!r} must be a positive integer.")
        self.n_threads = int(n_threads)
        if task not in TASKS:
            raise ConfigError(f"task={task!r} must be one of {TASKS}.")
        for name, value in (("max_iter", max_iter), ("max_leaf_nodes", max_leaf_nodes),
                            ("min_samples_leaf", min_samples_leaf)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"GradientBoostingForecaster {name}={value!r} must be a positive integer.")
        if not learning_rate > 0 or l2_regularization < 0:
            raise ConfigError("GradientBoostingForecaster learning_rate must be > 0 and l2_regularization >= 0.")
        self.task, self.max_iter, self.learning_rate = task, int(max_iter), float(learning_rate)
        self.max_leaf_nodes, self.min_samples_leaf = int(max_leaf_nodes), int(min_samples_leaf)
        self.l2_regularization, self.balance_classes, self.seed = float(l2_regularization), bool(balance_classes), int(seed)
        self.train_fingerprint: str | None = None
        self.model: Any = None

    def _estimator(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        common = {"max_iter": self.max_iter, "learning_rate": self.learning_rate,
                  "max_leaf_nodes": self.max_leaf_nodes, "min_samples_leaf": self.min_samples_leaf,
                  "l2_regularization": self.l2_regularization, "early_stopping": False,
                  "random_state": self.seed}
        if self.task == "return":
            return HistGradientBoostingRegressor(**common)
        return HistGradientBoostingClassifier(**common)

    def fit(self, train_windows: Any, train_targets: Any) -> GradientBoostingForecaster:
        """`train_targets`: direction labels (task="direction") or next-h returns (task="return")."""
        x = _windows(train_windows, "train_windows")
        z = self._fit_scaler(self._features(x, "train_windows"), x.shape[1])
        if self.task == "direction":
            y = _classes(train_targets, len(z), "train_targets")
        else:
            y = _targets(train_targets, len(z), "train_targets")
        self.train_fingerprint = _fingerprint(x, y)
        if self.task == "direction" and self.balance_classes:
            rows = _balanced_rows(y, self.seed)
            z, y = z[rows], y[rows]
        with threadpool_limits(self.n_threads):
            self.model = self._estimator().fit(z, y)
        return self

    def predict_proba(self, windows: Any) -> np.ndarray:
        """task="direction": class probabilities (N, n_classes); the last column is P(up)."""
        if self.task != "direction":
            raise ConfigError("predict_proba is for task='direction'; use predict for task='return'.")
        if self.model is None:
            raise ConfigError("GradientBoostingForecaster used before fit()/from_dict().")
        with threadpool_limits(self.n_threads):
            return self.model.predict_proba(self._scaled(windows))

    def predict(self, windows: Any) -> np.ndarray:
        """task="direction": the predicted class; task="return": the next-h return forecast. Shape (N,)."""
        if self.model is None:
            raise ConfigError("GradientBoostingForecaster used before fit()/from_dict().")
        if self.task == "direction":
            return np.argmax(self.predict_proba(windows), axis=1)
        with threadpool_limits(self.n_threads):
            return self.model.predict(self._scaled(windows))

    def count_parameters(self) -> int:
        """Tree nodes of the fitted ensemble (each holds a threshold or a leaf value): the report's "params"."""
        if self.model is None:
            return 0
        return int(sum(len(tree.nodes) for trees in self.model._predictors for tree in trees))

    def to_dict(self) -> dict[str, Any]:
        """Config, seed and the training data's fingerprint (no pickle): restore with `from_dict` + the data."""
        if self.model is None:
            raise ConfigError("GradientBoostingForecaster.to_dict called before fit().")
        return {"kind": self.kind, "task": self.task, "max_iter": self.max_iter,
                "learning_rate": self.learning_rate, "max_leaf_nodes": self.max_leaf_nodes,
                "min_samples_leaf": self.min_samples_leaf, "l2_regularization": self.l2_regularization,
                "balance_classes": self.balance_classes, "seed": self.seed, "n_threads": self.n_threads,
                **self._settings(), "train_fingerprint": self.train_fingerprint, "restore": "refit on the same train windows"}

    @classmethod
    def from_dict(cls, d: dict[str, Any], train_windows: Any, train_targets: Any) -> GradientBoostingForecaster:
        """Refit from `to_dict` output on the SAME training data (checked by fingerprint)."""
        try:
            m = cls(d["task"], int(d["max_iter"]), float(d["learning_rate"]), int(d["max_leaf_nodes"]),
                    int(d["min_samples_leaf"]), float(d["l2_regularization"]), int(d["lags"]), d["wavelet"],
                    d.get("level"), int(d.get("n_scales", 8)), bool(d["balance_classes"]), int(d["seed"]),
                    int(d.get("n_threads", 1)))
            expected = str(d["train_fingerprint"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"gradient-boosting parameter file is malformed ({exc!r}); re-fit the model.") from exc
        m.fit(train_windows, train_targets)
        if m.train_fingerprint != expected:
            raise DataError("these train windows/targets are not the ones the gradient-boosting model was fitted "
                            "on (fingerprint differs); pass the same training split, or fit a new model.")
        return m
