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

__all__ = [
    "ArimaForecaster",
    "LogisticBaseline",
    "direction_labels",
    "fit_flat_band",
    "naive_forecasts",
    "window_features",
]


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
    if not np.all(np.isin(arr, (0, 1, 2))):
        raise DataError(f"`{name}` must contain only direction labels 0/1 (down/up), or 0/1/2 "
                        "(down/flat/up) with a flat band.")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------- direction labels
def direction_labels(returns: Any, band: float | None = None) -> np.ndarray:
    """Direction labels of next-h returns, int64.

    - ``band=None``: 2 classes, 1 (up) if r > 0 else 0 (down; a flat move counts as down).
    - ``band=b > 0``: 3 classes, 0 (down) if r <= -b, 1 (flat) if |r| < b, 2 (up) if r >= b. "Up" is always
      the last class. Fit ``b`` on the TRAIN targets (:func:`fit_flat_band`), never on test ones.
    """
    r = np.asarray(returns, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise DataError("`returns` contains NaN/inf; clean the series before labelling directions.")
    if band is None:
        return (r > 0).astype(np.int64)
    if not (isinstance(band, (int, float, np.floating)) and math.isfinite(band) and band > 0):
        raise ConfigError(f"`band`={band!r} must be a positive finite return (e.g. from fit_flat_band) or None.")
    return np.where(r >= band, 2, np.where(r <= -band, 0, 1)).astype(np.int64)


def fit_flat_band(train_returns: Any, flat_fraction: float = 1 / 3) -> float:
    """The flat band b such that |r| < b for ``flat_fraction`` of the TRAIN next-h returns (a quantile of |r|).

    1/3 makes the three classes about equally frequent on train; the same b then labels validation and test.
    """
    r = np.abs(np.asarray(train_returns, dtype=np.float64).ravel())
    if r.size == 0 or not np.all(np.isfinite(r)):
        raise DataError("`train_returns` must be a non-empty array of finite train targets to fit a flat band.")
    if not 0 < flat_fraction < 1:
        raise ConfigError(f"`flat_fraction`={flat_fraction!r} must be in (0, 1), e.g. 1/3.")
    band = float(np.quantile(r, flat_fraction))
    if not band > 0:
        raise DataError(f"the {flat_fraction:.0%} quantile of |train returns| is 0 (too many zero returns); "
                        "use a larger flat_fraction or no flat band.")
    return band


# ------------------------------------------------------------------------------------------ naive forecasts
def naive_forecasts(
    train_direction: Any,
    windows: Any,
    horizon: int,
    *,
    train_targets: Any = None,
    band: float | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Naive forecasts for each window, for the next-h return and for its direction.

    ``"return"`` (float, shape (N,)):

    - ``zero_return``: the random walk, cumulative return 0;
    - ``previous_return``: the sum of the window's last ``horizon`` returns (momentum);
    - ``historical_mean``: the mean of ``train_targets`` (the train split's next-h returns), when given.

    ``"direction"`` (int labels as :func:`direction_labels` with the same ``band``: 2 classes without a band,
    down/flat/up with one):

    - ``previous_direction``: the label of the window's last ``horizon`` returns' sum;
    - ``majority_class``: the most frequent label of ``train_direction`` (ties go to the higher label, "up",
      the historical drift of equities);
    - ``historical_mean``: the label of the historical-mean forecast, when ``train_targets`` is given.
    """
    w = _as_windows(windows)
    h = _check_horizon(horizon, w.shape[1])
    train_dir = _as_direction(train_direction, "train_direction")
    n = w.shape[0]
    n_classes = 2 if band is None else 3
    counts = np.bincount(train_dir, minlength=n_classes)
    majority = int(counts.size - 1 - np.argmax(counts[::-1]))
    recent = w[:, -h:].sum(axis=1)
    out = {
        "return": {"zero_return": np.zeros(n, dtype=np.float64), "previous_return": recent},
        "direction": {
            "previous_direction": direction_labels(recent, band),
            "majority_class": np.full(n, majority, dtype=np.int64),
        },
    }
    if train_targets is not None:
        targets = np.asarray(train_targets, dtype=np.float64).ravel()
        if targets.size == 0 or not np.all(np.isfinite(targets)):
            raise DataError("`train_targets` must be the finite next-horizon returns of the train windows.")
        mean = float(targets.mean())
        out["return"]["historical_mean"] = np.full(n, mean)
        out["direction"]["historical_mean"] = np.full(n, int(direction_labels(mean, band)), dtype=np.int64)
    return out


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

    The order is fixed (``fit(returns, order)``) or chosen by AIC on the train returns over a small grid
    (``fit_aic(returns, max_p, max_q)``); the chosen order, its parameters and the AIC table are saved as JSON.

    If the fit raises or does not converge, a warning says so and the model falls back to the train mean
    (``forecast`` = horizon x mean), recorded as ``fallback_reason``.
    """

    def __init__(self) -> None:
        self.order: tuple[int, int, int] = (1, 0, 1)
        self.params: dict[str, float] | None = None
        self.train_mean: float = 0.0
        self.n_train: int = 0
        self.fallback_reason: str | None = None
        self.selection: dict[str, Any] | None = None
        self._fitted = False

    # ---------------------------------------------------------------- fitting
    def fit(self, train_returns: Any, order: tuple[int, int, int] = (1, 0, 1)) -> ArimaForecaster:
        """Fit ARMA(``order``) on the train returns only; returns self."""
        y = self._train_series(train_returns, _check_order(order))
        self.order = _check_order(order)
        self.selection = None
        params, reason, _ = _fit_arma(y, self.order)
        return self._finish(y, params, reason)

    def fit_aic(self, train_returns: Any, max_p: int = 2, max_q: int = 2) -> ArimaForecaster:
        """Choose (p, q) in [0, max_p] x [0, max_q] by AIC on the train returns, keep that fit; returns self.

        Every candidate is fitted by maximum likelihood on the same train returns (a fit that fails or does
        not converge is skipped); the one with the lowest AIC is kept, its AIC table recorded in ``selection``
        (saved by ``to_dict``). ARMA(0, 0) is a candidate: white noise around the train mean is often what
        AIC picks for returns, and then the forecast is the historical mean.
        """
        for name, value in (("max_p", max_p), ("max_q", max_q)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 5:
                raise ConfigError(f"ARIMA `{name}`={value!r} must be an integer in [0, 5]; e.g. 2.")
        y = self._train_series(train_returns, (int(max_p), 0, int(max_q)))
        table: dict[str, float | None] = {}
        best: tuple[float, tuple[int, int, int], dict[str, float]] | None = None
        for p in range(int(max_p) + 1):
            for q in range(int(max_q) + 1):
                params, _, aic = _fit_arma(y, (p, 0, q))
                table[f"({p},0,{q})"] = aic if params is not None else None
                if params is not None and (best is None or aic < best[0]):
                    best = (aic, (p, 0, q), params)
        self.selection = {"criterion": "aic", "max_p": int(max_p), "max_q": int(max_q), "aic": table}
        if best is None:
            self.order = (0, 0, 0)
            return self._finish(y, None, f"no ARMA(p, q) with p <= {max_p}, q <= {max_q} could be fitted")
        self.order = best[1]
        return self._finish(y, best[2], None)

    def _train_series(self, train_returns: Any, order: tuple[int, int, int]) -> np.ndarray:
        y = np.asarray(train_returns, dtype=np.float64).ravel()
        p, _, q = order
        if y.size < 3 * (p + q + 2):
            raise DataError(
                f"ARIMA{order} needs at least {3 * (p + q + 2)} train returns; got {y.size}. "
                "Use a longer train split or a smaller `order`."
            )
        if not np.all(np.isfinite(y)):
            raise DataError("`train_returns` contains NaN/inf; clean the series before fitting ARIMA.")
        return y

    def _finish(self, y: np.ndarray, params: dict[str, float] | None, reason: str | None) -> ArimaForecaster:
        self.train_mean = float(y.mean())
        self.n_train = int(y.size)
        self.params = params
        self.fallback_reason = reason
        if reason is not None:
            warnings.warn(
                f"ARIMA{self.order} on {y.size} train returns: {reason}; falling back to the "
                f"train-mean forecast ({self.train_mean:.3g} per step).",
                RuntimeWarning,
                stacklevel=3,
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
            "selection": self.selection,
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
            m.selection = d.get("selection")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"ARIMA parameter file is malformed ({exc!r}); re-fit the model.") from exc
        if m.params is not None:
            _validate_params(m.params, m.order)
        m._fitted = True
        return m


def _fit_arma(y: np.ndarray, order: tuple[int, int, int]) -> tuple[dict[str, float] | None, str | None, float]:
    """(params, None, AIC) of a converged maximum-likelihood ARMA fit with a constant, or (None, reason, inf)."""
    try:
        from statsmodels.tools.sm_exceptions import ConvergenceWarning
        from statsmodels.tsa.arima.model import ARIMA
        from threadpoolctl import threadpool_limits

        # One BLAS thread: the filter's tiny matrices gain nothing from threads, and on a busy 2-core machine
        # OpenBLAS threads made one ARMA(1,1) fit on 1,000 returns take 7-11 s instead of 0.6 s (measured).
        with warnings.catch_warnings(record=True) as caught, threadpool_limits(1):
            warnings.simplefilter("always")
            res = ARIMA(y, order=order, trend="c").fit()
        converged = bool(res.mle_retvals.get("converged", True)) if res.mle_retvals else True
        if not converged or any(issubclass(w.category, ConvergenceWarning) for w in caught):
            return None, "the maximum-likelihood optimiser did not converge", math.inf
        params = {str(k): float(v) for k, v in zip(res.model.param_names, np.asarray(res.params), strict=True)}
        _validate_params(params, order)
        return params, None, float(res.aic)
    except (ValueError, np.linalg.LinAlgError, ConfigError) as exc:  # statsmodels raises these on failure
        return None, f"the fit failed: {exc}", math.inf


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
        if (y == 2).any():
            raise DataError("`train_direction` has flat-band labels (2); LogisticBaseline is binary. Use "
                            "wavefin_core.models.tabular.LogisticDirection for down/flat/up.")
        if y.size != x.shape[0]:
            raise DataError(f"`train_direction` has {y.size} labels for {x.shape[0]} train windows.")
        if np.unique(y).size < 2:
            raise DataError("`train_direction` has a single class; the logistic baseline needs both up and "
                            "down windows in the train split (use a longer train period).")
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        from threadpoolctl import threadpool_limits

        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        with threadpool_limits(1):  # a small problem: BLAS threads on a busy machine only add contention
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
