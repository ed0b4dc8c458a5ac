"""Baselines every wavefin model must beat, all fitted on the TRAIN split only.

Why they exist: a deep model's accuracy means nothing on its own. Daily returns are close to unpredictable,
so 51% direction accuracy may just be the up-drift that "always predict up" also gets. Every report shows
the naive forecasts (random walk, momentum, majority class) and the classical ones (ARIMA, logistic
regression on the window) next to the deep models.

Models are persisted as their parameters in JSON (``to_dict``/``from_dict``), never pickled, and predictions
are computed from those stored parameters, so a model reloaded from JSON predicts bit-for-bit the same.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError

__all__ = ["naive_forecasts", "ArimaForecaster", "LogisticBaseline", "window_features"]


# --------------------------------------------------------------------------------------------------- helpers
def _as_windows(windows: Any, name: str = "windows") -> np.ndarray:
    arr = np.asarray(windows, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(f"`{name}` must be a 2-D array (n_windows, window_length); got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"`{name}` contains NaN/inf; clean the return series before windowing.")
    return arr


def _check_horizon(horizon: int, window_length: int | None = None) -> int:
    if not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"`horizon` must be a positive integer; got {horizon!r}.")
    if window_length is not None and horizon > window_length:
        raise ConfigError(
            f"`horizon`={horizon} is longer than the window ({window_length}); the previous-direction "
            "baseline needs horizon <= window_length. Lower `horizon` or raise `window_length`."
        )
    return int(horizon)


def _as_direction(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y).ravel()
    if arr.size == 0:
        raise DataError(f"`{name}` is empty; the train split has no windows. Lower `window_length` or "
                        "give the series more history.")
    if not np.all(np.isin(arr, (0, 1))):
        raise DataError(f"`{name}` must contain only 0/1 direction labels.")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------ naive forecasts
def naive_forecasts(train_direction: Any, windows: Any, horizon: int) -> dict[str, dict[str, np.ndarray]]:
    """Naive forecasts for each window.

    Returns ``{"return": {"zero_return": arr}, "direction": {"previous_direction": arr,
    "majority_class": arr}}`` where

    - ``zero_return`` (float, shape (N,)): the random walk forecast, cumulative return 0;
    - ``previous_direction`` (int 0/1): momentum, 1 if the sum of the window's last ``horizon`` returns is > 0
      (same definition as the target: a flat move counts as "down");
    - ``majority_class`` (int 0/1): the most frequent direction in ``train_direction`` (a tie gives 1, "up",
      the historical drift of equities).
    """
    w = _as_windows(windows)
    h = _check_horizon(horizon, w.shape[1])
    train_dir = _as_direction(train_direction, "train_direction")
    n = w.shape[0]
    majority = 1 if 2 * int(train_dir.sum()) >= train_dir.size else 0
    return {
        "return": {"zero_return": np.zeros(n, dtype=np.float64)},
        "direction": {
            "previous_direction": (w[:, -h:].sum(axis=1) > 0).astype(np.int64),
            "majority_class": np.full(n, majority, dtype=np.int64),
        },
    }


# ---------------------------------------------------------------------------------------------------- ARIMA
class ArimaForecaster:
    """ARMA(p, q) with a constant mean, fitted once on the train returns with statsmodels.

    ``forecast`` conditions on each window with the *fitted* parameters only (no refit on test data): it runs
    the exact Kalman filter of statsmodels' state-space ARIMA (stationary initialisation, Harvey
    representation) over every window at once. The filter's covariance/gain recursion does not depend on the
    data, so it is computed once per window length and the state update is vectorised over windows: about
    three orders of magnitude faster than ``results.apply(window, refit=False)`` per window (~2 ms each) and
    equal to it to float precision (tested).

    Only ``d = 0`` is supported: the inputs are already log-returns (a differenced series), and statsmodels
    rejects a constant with d > 0 anyway.

    If the fit raises or does not converge, a warning says so and the model falls back to the train mean
    (``forecast`` = horizon x mean), recorded as ``fallback_reason``.
    """

    def __init__(self) -> None:
        self.order: tuple[int, int, int] = (1, 0, 1)
        self.params: dict[str, float] | None = None
        self.train_mean: float = 0.0
        self.n_train: int = 0
        self.fallback_reason: str | None = None
        self._fitted = False

    # ---------------------------------------------------------------- fitting
    def fit(self, train_returns: Any, order: tuple[int, int, int] = (1, 0, 1)) -> ArimaForecaster:
        """Fit on the train returns only; returns self."""
        y = np.asarray(train_returns, dtype=np.float64).ravel()
        self.order = _check_order(order)
        p, _, q = self.order
        if y.size < 3 * (p + q + 2):
            raise DataError(
                f"ARIMA{self.order} needs at least {3 * (p + q + 2)} train returns; got {y.size}. "
                "Use a longer train split or a smaller `order`."
            )
        if not np.all(np.isfinite(y)):
            raise DataError("`train_returns` contains NaN/inf; clean the series before fitting ARIMA.")
        self.train_mean = float(y.mean())
        self.n_train = int(y.size)
        self.params = None
        self.fallback_reason = None
        try:
            from statsmodels.tools.sm_exceptions import ConvergenceWarning
            from statsmodels.tsa.arima.model import ARIMA

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = ARIMA(y, order=self.order, trend="c").fit()
            converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
            if not converged or any(issubclass(w.category, ConvergenceWarning) for w in caught):
                self.fallback_reason = "the maximum-likelihood optimiser did not converge"
            else:
                params = {str(k): float(v) for k, v in zip(res.model.param_names, np.asarray(res.params), strict=True)}
                _validate_params(params, self.order)
                self.params = params
        except (ValueError, np.linalg.LinAlgError, ConfigError) as exc:  # statsmodels raises these on failure
            self.fallback_reason = f"the fit failed: {exc}"
        if self.fallback_reason is not None:
            warnings.warn(
                f"ARIMA{self.order} on {y.size} train returns: {self.fallback_reason}; falling back to the "
                f"train-mean forecast ({self.train_mean:.3g} per step).",
                RuntimeWarning,
                stacklevel=2,
            )
        self._fitted = True
        return self

    # -------------------------------------------------------------- forecasting
    def forecast(self, windows: Any, horizon: int) -> np.ndarray:
        """Cumulative ``horizon``-step forecast after each window (shape (N,)), fitted params only."""
        if not self._fitted:
            raise ConfigError("ArimaForecaster.forecast called before fit()/from_dict().")
        w = _as_windows(windows)
        h = _check_horizon(horizon)
        if self.params is None:
            return np.full(w.shape[0], h * self.train_mean)
        return _arma_kalman_forecast(w, self.params, self.order, h)

    # -------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters (order, fitted params, fallback state)."""
        if not self._fitted:
            raise ConfigError("ArimaForecaster.to_dict called before fit().")
        return {
            "kind": "arima",
            "order": list(self.order),
            "trend": "c",
            "params": None if self.params is None else dict(self.params),
            "train_mean": self.train_mean,
            "n_train": self.n_train,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArimaForecaster:
        """Rebuild from ``to_dict`` output (validated, so a hand-edited file fails loudly)."""
        try:
            m = cls()
            m.order = _check_order(tuple(d["order"]))
            m.params = None if d.get("params") is None else {str(k): float(v) for k, v in d["params"].items()}
            m.train_mean = float(d["train_mean"])
            m.n_train = int(d.get("n_train", 0))
            m.fallback_reason = d.get("fallback_reason")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"ARIMA parameter file is malformed ({exc!r}); re-fit the model.") from exc
        if m.params is not None:
            _validate_params(m.params, m.order)
        m._fitted = True
        return m


def _check_order(order: Any) -> tuple[int, int, int]:
    try:
        p, d, q = (int(v) for v in order)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"ARIMA `order` must be three integers (p, d, q); got {order!r}.") from exc
    if d != 0:
        raise ConfigError(
            f"ARIMA `order` d={d} is not supported: the inputs are log-returns (already differenced). "
            "Use d=0, e.g. order=(1, 0, 1)."
        )
    if p < 0 or q < 0 or p + q > 10:
        raise ConfigError(f"ARIMA `order` p, q must be >= 0 and p + q <= 10; got {order!r}.")
    return (p, 0, q)


def _split_params(params: dict[str, float], order: tuple[int, int, int]) -> tuple[float, np.ndarray,
                                                                                  np.ndarray, float]:
    p, _, q = order
    try:
        mu = params["const"]
        phi = np.array([params[f"ar.L{i}"] for i in range(1, p + 1)], dtype=np.float64)
        theta = np.array([params[f"ma.L{i}"] for i in range(1, q + 1)], dtype=np.float64)
        sigma2 = params["sigma2"]
    except KeyError as exc:
        raise ConfigError(f"ARIMA params lack {exc} for order {order}; re-fit the model.") from exc
    return mu, phi, theta, sigma2


def _validate_params(params: dict[str, float], order: tuple[int, int, int]) -> None:
    _, phi, _, sigma2 = _split_params(params, order)
    if not all(math.isfinite(v) for v in params.values()) or sigma2 <= 0:
        raise ConfigError("ARIMA params must be finite with sigma2 > 0; re-fit the model.")
    if phi.size and np.max(np.abs(np.roots(np.r_[1.0, -phi]))) >= 1.0:
        raise ConfigError("ARIMA AR params are non-stationary (a root on/inside the unit circle); re-fit.")


def _arma_state_space(phi: np.ndarray, theta: np.ndarray, sigma2: float) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray]:
    """Harvey representation: state dim r = max(p, q+1); y_t - mu = a_t[0]."""
    r = max(phi.size, theta.size + 1)
    T = np.zeros((r, r))
    T[: phi.size, 0] = phi
    T[:-1, 1:] += np.eye(r - 1)
    R = np.zeros(r)
    R[0] = 1.0
    R[1 : theta.size + 1] = theta
    Q = sigma2 * np.outer(R, R)
    # Stationary initial covariance: vec(P0) = (I - T kron T)^-1 vec(Q); r <= 11, so this is tiny.
    P0 = np.linalg.solve(np.eye(r * r) - np.kron(T, T), Q.ravel()).reshape(r, r)
    return T, Q, 0.5 * (P0 + P0.T)


def _arma_kalman_forecast(w: np.ndarray, params: dict[str, float], order: tuple[int, int, int],
                          horizon: int) -> np.ndarray:
    mu, phi, theta, sigma2 = _split_params(params, order)
    T, Q, P = _arma_state_space(phi, theta, sigma2)
    n, length = w.shape
    a = np.zeros((n, T.shape[0]))  # predicted state for each window, E[a_0] = 0
    for t in range(length):
        f = P[0, 0]  # prediction-error variance (no measurement noise)
        k = T @ P[:, 0] / f  # Kalman gain, identical for every window
        v = w[:, t] - mu - a[:, 0]
        a = a @ T.T + v[:, None] * k[None, :]
        P = T @ P @ T.T + Q - f * np.outer(k, k)
        P = 0.5 * (P + P.T)
    total = np.zeros(n)
    for _ in range(horizon):  # a holds the prediction for the next step; iterate the transition
        total += mu + a[:, 0]
        a = a @ T.T
    return total


# --------------------------------------------------------------------------------------------- Logistic
def window_features(windows: Any) -> np.ndarray:
    """Features for the logistic baseline: the window's returns, then its realised volatility, mean and
    mean |r| (a scale/momentum summary a linear model cannot form from the raw returns by itself)."""
    w = _as_windows(windows)
    return np.column_stack([w, w.std(axis=1), w.mean(axis=1), np.abs(w).mean(axis=1)])


class LogisticBaseline:
    """L2 logistic regression on standardised window features (:func:`window_features`).

    Fitted with scikit-learn; prediction uses only the stored coefficients and scaler statistics (plain
    numpy), so ``from_dict(to_dict())`` predicts exactly the same probabilities.
    """

    def __init__(self, C: float = 1.0, seed: int = 0) -> None:
        if not C > 0:
            raise ConfigError(f"LogisticBaseline `C` must be > 0; got {C!r}.")
        self.C = float(C)
        self.seed = int(seed)
        self.coef: np.ndarray | None = None
        self.intercept: float = 0.0
        self.scaler_mean: np.ndarray | None = None
        self.scaler_scale: np.ndarray | None = None
        self.window_length: int | None = None

    def fit(self, train_windows: Any, train_direction: Any) -> LogisticBaseline:
        from sklearn.linear_model import LogisticRegression

        x = window_features(train_windows)
        y = _as_direction(train_direction, "train_direction")
        if y.size != x.shape[0]:
            raise DataError(f"`train_direction` has {y.size} labels for {x.shape[0]} train windows.")
        if np.unique(y).size < 2:
            raise DataError("`train_direction` has a single class; the logistic baseline needs both up and "
                            "down windows in the train split (use a longer train period).")
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        clf.fit((x - mean) / scale, y)
        self.coef = clf.coef_.ravel().astype(np.float64)
        self.intercept = float(clf.intercept_[0])
        self.scaler_mean, self.scaler_scale = mean, scale
        self.window_length = int(np.asarray(train_windows).shape[1])
        return self

    def predict_proba(self, windows: Any) -> np.ndarray:
        """P(direction = 1) for each window, shape (N,)."""
        if self.coef is None:
            raise ConfigError("LogisticBaseline.predict_proba called before fit()/from_dict().")
        x = window_features(windows)
        if x.shape[1] != self.coef.size:
            raise DataError(f"windows have length {x.shape[1] - 3}; the logistic baseline was fitted on "
                            f"length {self.window_length}. Use the same `window_length`.")
        z = ((x - self.scaler_mean) / self.scaler_scale) @ self.coef + self.intercept
        return 0.5 * (1.0 + np.tanh(0.5 * z))  # numerically stable sigmoid

    def predict(self, windows: Any) -> np.ndarray:
        return (self.predict_proba(windows) > 0.5).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        if self.coef is None:
            raise ConfigError("LogisticBaseline.to_dict called before fit().")
        return {
            "kind": "logistic",
            "C": self.C,
            "seed": self.seed,
            "window_length": self.window_length,
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "scaler_mean": self.scaler_mean.tolist(),
            "scaler_scale": self.scaler_scale.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LogisticBaseline:
        try:
            m = cls(C=float(d.get("C", 1.0)), seed=int(d.get("seed", 0)))
            m.coef = np.asarray(d["coef"], dtype=np.float64)
            m.intercept = float(d["intercept"])
            m.scaler_mean = np.asarray(d["scaler_mean"], dtype=np.float64)
            m.scaler_scale = np.asarray(d["scaler_scale"], dtype=np.float64)
            m.window_length = int(d["window_length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"logistic parameter file is malformed ({exc!r}); re-fit the model.") from exc
        if not (m.coef.shape == m.scaler_mean.shape == m.scaler_scale.shape == (m.window_length + 3,)):
            raise ConfigError("logistic parameter file has inconsistent lengths; re-fit the model.")
        return m
