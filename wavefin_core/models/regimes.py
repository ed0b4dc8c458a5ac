"""Volatility-regime conditioning for the diffusion generator (issue 8; CoFinDiff's "volatility condition").

Why: a generator conditioned only on the series has to learn, unaided, that a window's scale is one draw of a
very skewed distribution (sp500's calm 2017 and its 2008). Its samples came out with one "average" scale: no
heavy tails across windows, no volatility clustering, the wrong mix of scales. Here each train window gets the
quantile bucket of its realized volatility, the UNet's class label becomes (series, bucket), and sampling draws
each window's bucket from the series' train bucket frequencies, so the mix of calm and wild windows is the
train split's by construction.

Optionally (``normalize``) each window is divided by its own realized volatility (``"window"``) or by its
bucket's median volatility (``"bucket"``) before encoding, so the UNet models the shape and the scale comes
from the bucket: at sampling, ``"window"`` draws each sample's scale from the empirical volatilities of that
bucket's train windows, ``"bucket"`` uses the bucket median. Scaling is linear, so the range projection of the
normalised image stays exact and decoding is "decode, then multiply by the scale".

With ``"window"``, the scale can also be drawn conditionally on the generated shape (``scale_draw="drift"``,
issue 8's leverage effect): in equities the falling windows are the volatile ones, so the pooled
corr(r_t, r_{t+k}^2) of real windows comes partly from ACROSS windows. An independent draw of the scale breaks
that shape <-> scale association; the drift draw keeps it: each bucket's train windows are split into
``DRIFT_BINS`` equal-count bins of their normalised drift ``d = sum(r) / (RMS sqrt(T))`` (scale-free, so it
reads the same on a generated, RMS ~1 shape), and a sample's scale is an empirical draw from its bucket's bin
of its own drift. Sampling only (zero training cost); scaling stays linear, so samples stay realizable. On the
real train windows of sp500 (normalised, then rescaled) it restores the pooled leverage: -0.078 vs -0.059 with
independent draws (-0.083 unscaled).

Everything is fitted on the train windows only, and the fitted state is plain JSON (``to_dict``), saved in the
model's ``wavefin.json`` beside the representations, so every consumer (``synthetic_series``, the MLflow pyfunc)
samples and decodes the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.models.leverage import (
    MIN_FIT_VALUES,
    LeverageFit,
    apply_fit,
    fit_leverage,
    leverage_curve,
    modulate,
)
from wavefin_core.wavelets.representations import checked_windows

NORMALIZATIONS = ("none", "window", "bucket")
#: ``to_dict`` format tag and version: ``VolRegimes.from_dict`` refuses anything else.
FORMAT = "wavefin.vol_regimes"
VERSION = 2
#: Versions ``from_dict`` reads: version 1 predates the drift tables (its models sample with independent scales).
READABLE_VERSIONS = (1, 2)
#: How a sample's scale is drawn (normalize="window"): independently of its shape, or from its bucket's train
#: windows of a similar normalised drift (see the module docstring).
SCALE_DRAWS = ("independent", "drift")
#: How the decoded, normalised shapes are calibrated before they are scaled (normalize="window" only): "none";
#: "rms": each shape divided by its own RMS, as every train shape is (the model's shapes scatter around 1, which
#: widens the mix of scales: heavier tails than the train windows'); "marginal": "rms", then a monotone map of
#: each bucket's generated values onto the pooled values of that bucket's train shapes (ranks, hence the
#: dependence the model made, are kept; the within-window tails become the train windows'), then "rms" again.
#: "marginal_leverage": "marginal" after the within-window leverage modulation fitted to the train shapes'
#: leverage curve (wavefin_core.models.leverage).
SHAPE_CALIBRATIONS = ("none", "rms", "marginal", "marginal_leverage")
#: Quantiles of the train shapes' pooled values kept for "marginal" (at probabilities linspace(0, 1, N): the
#: extremes are the train min and max).
SHAPE_QUANTILES = 1025
#: Equal-count drift bins per bucket (fewer when a bucket has under MIN_PER_DRIFT_BIN x DRIFT_BINS windows). With
#: 8 bins the quick profile's sp500 keeps ~175 stride-1 train windows per bin (K = 4).
DRIFT_BINS = 8
MIN_PER_DRIFT_BIN = 8
#: Each drift bin's scale pool keeps at most this many volatilities (quantiles, as POOL_SIZE).
DRIFT_POOL_SIZE = 64
#: Most buckets allowed: with 8 per series the quick profile's sp500 still has ~700 train windows per bucket.
MAX_BUCKETS = 64
#: Each bucket's scale pool keeps at most this many volatilities: evenly spaced quantiles of that bucket's train
#: window volatilities (an empirical distribution compressed for JSON: 256 quantiles resolve it to 0.4%).
POOL_SIZE = 256
#: A window's volatility is floored at this fraction of the median train volatility, so a flat window (zero
#: returns: a market holiday, a stale quote) is not divided by zero when normalised.
VOL_FLOOR_FRACTION = 1e-3


def realized_volatility(windows: np.ndarray) -> np.ndarray:
    """Root mean square of each window's log returns (N, T) -> (N,): the realized volatility per step.

    Why RMS around 0 and not the std: it is what "realized volatility" means for returns (sum of squares), and
    dividing a window by it leaves a window of RMS 1 whatever its drift.
    """
    arr = checked_windows(windows, "windows")
    return np.sqrt(np.mean(arr * arr, axis=1))


def normalised_drift(windows: np.ndarray) -> np.ndarray:
    """``sum(r) / (RMS sqrt(T))`` per window (N, T) -> (N,): the drift in units of the window's own volatility.

    Why this form: it does not change when a window is scaled, so a train window and its normalised shape, or a
    generated shape of RMS ~1, read the same; it is the window's mean return in standard errors (a t-statistic
    around 0). A flat window (RMS 0) has drift 0.
    """
    arr = checked_windows(windows, "windows")
    rms = np.sqrt(np.mean(arr * arr, axis=1))
    total = arr.sum(axis=1)
    return np.divide(total, rms * math.sqrt(arr.shape[1]), out=np.zeros(len(arr)), where=rms > 0)


def class_labels(series_index: int, buckets: np.ndarray | int, k: int) -> np.ndarray:
    """The UNet class label of (series, bucket): ``series_index * max(k, 1) + bucket`` (k = 0: the series)."""
    buckets = np.asarray(buckets, dtype=np.int64)
    return (int(series_index) * max(int(k), 1) + buckets).astype(np.int64)


def num_classes(n_series: int, k: int) -> int:
    """Class embeddings the UNet needs for ``n_series`` series with ``k`` buckets each (k = 0: one each)."""
    return int(n_series) * max(int(k), 1)


@dataclass
class VolRegimes:
    """One series' fitted volatility buckets: edges, frequencies, the per-bucket scale pools.

    ``k = 0`` is "off": one bucket, scale 1, the windows pass through unchanged, so callers need no special case.
    """

    k: int
    normalize: str
    edges: np.ndarray  # (k - 1,) interior quantile edges of the train window volatilities
    frequencies: np.ndarray  # (max(k, 1),) share of train windows per bucket
    medians: np.ndarray  # (max(k, 1),) median train volatility per bucket (scale of normalize="bucket")
    pools: list[np.ndarray]  # per bucket: quantiles of its train window volatilities (normalize="window")
    floor: float  # volatility floor (VOL_FLOOR_FRACTION x the median train volatility)
    # normalize="window" only (else None; also for version-1 dicts): per bucket, the interior edges of its
    # equal-count drift bins and, per bin, quantiles of those train windows' volatilities (scale_draw="drift")
    drift_edges: list[np.ndarray] | None = None
    drift_pools: list[list[np.ndarray]] | None = None
    # normalize="window" only (else None; also for dicts written before it): per bucket, SHAPE_QUANTILES quantiles
    # of the pooled values of its train windows divided by their own volatility (shape_calibration="marginal";
    # per bucket because calm and wild windows differ inside too: sp500's calm windows hold the jumps)
    shape_quantiles: np.ndarray | None = None  # (max(k, 1), SHAPE_QUANTILES)
    # normalize="window" only (else None; also for dicts written before it): the train shapes' within-window
    # leverage curve corr(z_t, z^2_{t+k}), k = 1..LEVERAGE_LAGS (shape_calibration="marginal_leverage"); empty
    # when the train shapes hold under MIN_FIT_VALUES values (then the calibration fits nothing)
    shape_leverage: np.ndarray | None = None

    # -- fitting ---------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, train_windows: np.ndarray, k: int, normalize: str = "none") -> VolRegimes:
        """Buckets from the quantiles of ``train_windows``' realized volatilities (train split only)."""
        check_regime_config(k, normalize)
        vols = realized_volatility(train_windows)
        if len(vols) == 0:
            raise DataError("train_windows is empty; fit the volatility regimes on the series' train windows.")
        median = float(np.median(vols))
        floor = VOL_FLOOR_FRACTION * median if median > 0 else 1e-12
        if k == 0:
            return cls(0, "none", np.zeros(0), np.ones(1), np.array([median]), [np.array([1.0])], floor)
        vols = np.maximum(vols, floor)
        edges = np.quantile(vols, np.arange(1, k) / k)
        buckets = np.searchsorted(edges, vols, side="right")
        counts = np.bincount(buckets, minlength=k)
        medians = np.array([float(np.median(vols[buckets == b])) if counts[b] else math.nan for b in range(k)])
        pools = [_quantile_pool(vols[buckets == b]) for b in range(k)]
        fitted = cls(k, normalize, edges, counts / counts.sum(), medians, pools, floor)
        if normalize == "window":
            drift = normalised_drift(train_windows)
            tables = [_drift_table(drift[buckets == b], vols[buckets == b]) for b in range(k)]
            fitted.drift_edges = [edges for edges, _ in tables]
            fitted.drift_pools = [pools for _, pools in tables]
            shapes = checked_windows(train_windows, "train_windows") / vols[:, None]
            grid = np.linspace(0.0, 1.0, SHAPE_QUANTILES)
            pooled = np.quantile(shapes, grid)  # for a bucket without train windows (ties in the volatilities)
            fitted.shape_quantiles = np.stack([np.quantile(shapes[buckets == b], grid) if counts[b] else pooled
                                               for b in range(k)])
            # too few train values for a curve that is not noise: an empty curve, and nothing is fitted to it
            fitted.shape_leverage = leverage_curve(shapes) if shapes.size >= MIN_FIT_VALUES else np.zeros(0)
        return fitted

    # -- applying --------------------------------------------------------------------------------------------
    @property
    def n_buckets(self) -> int:
        return max(self.k, 1)

    def buckets_of(self, windows: np.ndarray) -> np.ndarray:
        """The bucket (0..k-1) of each window by its realized volatility; all 0 when k = 0."""
        vols = np.maximum(realized_volatility(windows), self.floor)
        if self.k == 0:
            return np.zeros(len(vols), dtype=np.int64)
        return np.searchsorted(self.edges, vols, side="right").astype(np.int64)

    def prepare(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(windows divided by their scale, bucket of each): what the representation encodes and the labels."""
        buckets = self.buckets_of(windows)
        arr = checked_windows(windows, "windows")
        if self.normalize == "window":
            scale = np.maximum(realized_volatility(arr), self.floor)
        elif self.normalize == "bucket":
            scale = self.medians[buckets]
        else:
            scale = np.ones(len(arr))
        return arr / scale[:, None], buckets

    def draw(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(bucket, scale) for ``n`` samples: buckets drawn from the train frequencies; scales as ``normalize``
        says (an empirical draw from the bucket's pool, its median, or 1). Seeded: same seed, same draw."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n={n!r} must be an integer >= 1 (samples to draw).")
        rng = np.random.default_rng(seed)
        buckets = rng.choice(self.n_buckets, size=int(n), p=self.frequencies).astype(np.int64)
        if self.normalize == "window":
            scales = np.empty(int(n))
            for b in np.unique(buckets):
                where = buckets == b
                scales[where] = rng.choice(self.pools[b], size=int(where.sum()))
        elif self.normalize == "bucket":
            scales = self.medians[buckets]
        else:
            scales = np.ones(int(n))
        return buckets, scales

    def calibrate_shapes(self, shapes: np.ndarray, mode: str, buckets: np.ndarray | None = None) -> np.ndarray:
        """Decoded, normalised shapes (N, T) calibrated as ``mode`` says (see SHAPE_CALIBRATIONS); a copy.

        ``buckets`` (N,): the bucket each shape was generated for ("marginal" maps each bucket's shapes onto that
        bucket's train shapes; needed when k >= 2). Calibrate all of a series' generated shapes together (the map
        uses the set's ranks within each bucket). Without window normalisation nothing changes.
        """
        return self.calibrate_shapes_with_fit(shapes, mode, buckets)[0]

    def calibrate_shapes_with_fit(self, shapes: np.ndarray, mode: str, buckets: np.ndarray | None = None,
                                  leverage: LeverageFit | None = None) -> tuple[np.ndarray, LeverageFit | None]:
        """:meth:`calibrate_shapes` and, for "marginal_leverage", the fitted modulation (else None). ``leverage``:
        apply this fit (of a larger set of the same series) instead of fitting one on these shapes."""
        check_shape_calibration(mode)
        x = np.array(checked_windows(shapes, "shapes"), dtype=np.float64)
        if mode == "none" or self.normalize != "window" or x.size == 0:
            return x, None
        if mode == "rms":
            return _unit_rms(x), None
        labels = self._map_buckets(len(x), mode, buckets)
        x = _unit_rms(x)  # the model's RMS scatter first, so the map sees shapes as the train ones are
        if mode == "marginal":
            return self._marginal(x, labels), None
        if self.shape_leverage is None:
            raise DataError("this model's volatility regimes have no train leverage curve (saved before leverage "
                            "calibration existed); re-materialize diffusion_model, or set "
                            "synthetic_series.shape_calibration='marginal'.")
        def finish(first_rows: np.ndarray) -> np.ndarray:  # the marginal map of the first len(first_rows) shapes
            return self._marginal(first_rows, labels[:len(first_rows)])

        fit = fit_leverage(x, self.shape_leverage, finish) if leverage is None else apply_fit(leverage, x, finish)
        return self._marginal(modulate(x, fit.theta, fit.memory), labels), fit

    def _map_buckets(self, n: int, mode: str, buckets: np.ndarray | None) -> np.ndarray:
        """The train marginal each of ``n`` shapes is mapped onto: its bucket (0 for all when the model keeps one
        marginal)."""
        if self.shape_quantiles is None:
            raise DataError("this model's volatility regimes have no train shape quantiles (saved before "
                            "shape calibration existed); re-materialize diffusion_model, or set "
                            "synthetic_series.shape_calibration='rms'.")
        if len(np.atleast_2d(self.shape_quantiles)) == 1:
            return np.zeros(n, dtype=np.int64)
        if buckets is None or len(np.asarray(buckets).reshape(-1)) != n:
            raise ConfigError(f"shape_calibration={mode!r} maps each volatility bucket's shapes onto its own train "
                              f"shapes: pass the {n} shapes' buckets (SamplingPlan does).")
        return np.asarray(buckets, dtype=np.int64).reshape(-1)

    def _marginal(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Each bucket's values (rows by ``labels``) mapped monotonically onto its train shapes' quantiles, then
        RMS 1; a copy."""
        out = np.array(x, dtype=np.float64)
        table = np.atleast_2d(self.shape_quantiles)
        grid = np.linspace(0.0, 1.0, table.shape[1])
        for bucket in np.unique(labels):
            rows = np.flatnonzero(labels == bucket)
            flat = out[rows].ravel()
            ranks = np.empty(flat.size)
            ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
            out[rows] = np.interp((ranks + 0.5) / flat.size, grid, table[bucket]).reshape(len(rows), -1)
        return _unit_rms(out)

    def matched_scales(self, buckets: np.ndarray, shapes: np.ndarray, seed: int) -> np.ndarray:
        """A scale per generated shape (normalize="window"): an empirical draw from the train windows of its
        bucket whose normalised drift falls in the same drift bin as the shape's (``scale_draw="drift"``).

        ``shapes`` are the decoded, still normalised windows (N, T); ``buckets`` the buckets their labels asked
        for. Seeded: same seed and shapes, same scales.
        """
        if self.normalize != "window":
            raise ConfigError(f"scale_draw='drift' needs vol_normalize='window' (this model has "
                              f"{self.normalize!r}); set scale_draw='independent' or retrain diffusion_model with "
                              "vol_normalize='window'.")
        if self.drift_edges is None or self.drift_pools is None:
            raise DataError("this model's volatility regimes have no drift tables (saved as format version 1); "
                            "re-materialize diffusion_model, or set synthetic_series.scale_draw='independent'.")
        buckets = np.asarray(buckets, dtype=np.int64).reshape(-1)
        drift = normalised_drift(shapes)
        if len(buckets) != len(drift) or (len(buckets) and not 0 <= buckets.min() <= buckets.max() < self.n_buckets):
            raise ConfigError(f"matched_scales got {len(buckets)} buckets (in 0..{self.n_buckets - 1} needed) for "
                              f"{len(drift)} shapes; pass the buckets the samples' class labels were drawn with.")
        rng = np.random.default_rng(seed)
        scales = np.empty(len(drift))
        for b in np.unique(buckets):
            rows = np.flatnonzero(buckets == b)
            bins = np.searchsorted(self.drift_edges[b], drift[rows], side="right")
            for q in np.unique(bins):
                chosen = rows[bins == q]
                scales[chosen] = rng.choice(self.drift_pools[b][q], size=len(chosen))
        return scales

    # -- persistence -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (lists of floats; an empty bucket's median is null)."""
        return {"format": FORMAT, "version": VERSION, "k": self.k, "normalize": self.normalize,
                "edges": [float(v) for v in self.edges], "frequencies": [float(v) for v in self.frequencies],
                "medians": [None if math.isnan(v) else float(v) for v in self.medians],
                "pools": [[float(v) for v in pool] for pool in self.pools], "floor": float(self.floor),
                "drift_edges": None if self.drift_edges is None else [[float(v) for v in e] for e in self.drift_edges],
                "drift_pools": None if self.drift_pools is None else
                [[[float(v) for v in pool] for pool in bins] for bins in self.drift_pools],
                "shape_quantiles": None if self.shape_quantiles is None else
                [[float(v) for v in row] for row in np.atleast_2d(self.shape_quantiles)],
                "shape_leverage": None if self.shape_leverage is None else [float(v) for v in self.shape_leverage]}

    @classmethod
    def from_dict(cls, data: Any) -> VolRegimes:
        """Rebuild what :meth:`to_dict` wrote (version 1: without drift tables); DataError (naming the field)
        for anything else."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") not in READABLE_VERSIONS:
            raise DataError(f"volatility regimes dict is not {FORMAT!r} version {READABLE_VERSIONS} (got "
                            f"{_peek(data)}); pass a series' entry under 'regimes' in a saved model's wavefin.json, "
                            "or re-materialize diffusion_model.")
        try:
            k, normalize = int(data["k"]), str(data["normalize"])
            check_regime_config(k, normalize)
            n = max(k, 1)
            edges = _vector(data["edges"], max(k - 1, 0), "edges")
            frequencies = _vector(data["frequencies"], n, "frequencies")
            medians = np.array([math.nan if v is None else float(v) for v in data["medians"]])
            pools = [np.asarray(pool, dtype=np.float64) for pool in data["pools"]]
            floor = float(data["floor"])
            drift_edges, drift_pools = _drift_tables(data.get("drift_edges"), data.get("drift_pools"), n)
            shape_quantiles = _shape_quantiles(data.get("shape_quantiles"), n)
            shape_leverage = _shape_leverage(data.get("shape_leverage"))
        except KeyError as missing:
            raise DataError(f"volatility regimes dict lacks the field {missing}; pass what VolRegimes.to_dict() "
                            "returned, unmodified.") from None
        if medians.shape != (n,) or len(pools) != n or not math.isclose(float(frequencies.sum()), 1.0,
                                                                         rel_tol=1e-9):
            raise DataError(f"volatility regimes dict has {len(medians)} medians, {len(pools)} pools and "
                            f"frequencies summing to {frequencies.sum():.6g}; it needs {n} of each and frequencies "
                            "summing to 1. Re-materialize diffusion_model.")
        return cls(k, normalize, edges, frequencies, medians, pools, floor, drift_edges, drift_pools, shape_quantiles,
                   shape_leverage)


def check_scale_draw(scale_draw: Any, field: str = "synthetic_series.scale_draw") -> None:
    """ConfigError unless ``scale_draw`` is one of SCALE_DRAWS."""
    if scale_draw not in SCALE_DRAWS:
        raise ConfigError(f"{field}={scale_draw!r} is not one of {SCALE_DRAWS}: 'independent' draws each sample's "
                          "volatility from its bucket regardless of its shape, 'drift' from the bucket's train "
                          "windows of a similar normalised drift (keeps the leverage effect).")


def check_shape_calibration(mode: Any, field: str = "synthetic_series.shape_calibration") -> None:
    """ConfigError unless ``mode`` is one of SHAPE_CALIBRATIONS."""
    if mode not in SHAPE_CALIBRATIONS:
        raise ConfigError(f"{field}={mode!r} is not one of {SHAPE_CALIBRATIONS}: 'none' keeps the decoded shapes, "
                          "'rms' divides each by its own RMS (as every train shape is), 'marginal' also maps the "
                          "set's values onto the train shapes' distribution (ranks kept), 'marginal_leverage' first "
                          "gives the shapes the train shapes' within-window leverage (wavefin_core.models.leverage).")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    """Each row divided by its RMS (an all-zero row stays zero)."""
    rms = np.sqrt(np.mean(x * x, axis=1, keepdims=True))
    return x / np.where(rms > 0, rms, 1.0)


def _shape_leverage(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    try:
        curve = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        curve = np.zeros((0, 0))
    if curve.ndim != 1 or not np.all(np.abs(curve) <= 1.0):
        raise DataError("volatility regimes dict has a 'shape_leverage' that is not a list of correlations (finite, "
                        "in [-1, 1]); pass what VolRegimes.to_dict() returned, unmodified.")
    return curve


def _shape_quantiles(values: Any, n_buckets: int) -> np.ndarray | None:
    if values is None:
        return None
    try:
        q = np.atleast_2d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        q = np.zeros((0, 0))
    if q.ndim != 2 or len(q) not in (1, n_buckets) or q.shape[1] < 2 or not np.isfinite(q).all() \
            or np.any(np.diff(q, axis=1) < 0):
        raise DataError(f"volatility regimes dict has 'shape_quantiles' that are not {n_buckets} non-decreasing "
                        "lists (one per bucket) of at least 2 finite numbers; pass what VolRegimes.to_dict() "
                        "returned, unmodified.")
    return q


def check_regime_config(k: Any, normalize: Any, field: str = "diffusion_model.vol_buckets") -> None:
    """ConfigError unless ``k`` is an int in 0..MAX_BUCKETS and ``normalize`` one of NORMALIZATIONS."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= MAX_BUCKETS or k == 1:
        raise ConfigError(f"{field}={k!r} must be 0 (off) or an integer in 2..{MAX_BUCKETS} (volatility quantile "
                          "buckets per series, e.g. 4).")
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"vol_normalize={normalize!r} is not one of {NORMALIZATIONS}: 'none' conditions on the "
                          "bucket only, 'window' / 'bucket' divide each window by its own / its bucket's median "
                          "volatility.")
    if k == 0 and normalize != "none":
        raise ConfigError(f"vol_normalize={normalize!r} needs volatility buckets; set vol_buckets >= 2 or "
                          "vol_normalize='none'.")


def regimes_from_meta(meta: dict[str, Any], series: str) -> VolRegimes:
    """The series' regimes from a loaded model's meta (``load_diffusion``); k = 0 ("off") for models without."""
    saved = (meta.get("regimes") or {}).get(series)
    if saved is None:
        return VolRegimes(0, "none", np.zeros(0), np.ones(1), np.array([math.nan]), [np.array([1.0])], 1e-12)
    return VolRegimes.from_dict(saved)


def _quantile_pool(vols: np.ndarray, size: int = POOL_SIZE) -> np.ndarray:
    if len(vols) == 0:
        return np.zeros(0)
    if len(vols) <= size:
        return np.sort(vols)
    return np.quantile(vols, (np.arange(size) + 0.5) / size)




def _drift_table(drift: np.ndarray, vols: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(interior drift edges, volatility pool per bin) of one bucket: its windows sorted by drift and split into
    equal-count bins, so no bin is empty whatever ties the drifts have (an empty bucket: one empty bin)."""
    if len(drift) == 0:
        return np.zeros(0), [np.zeros(0)]
    order = np.argsort(drift, kind="stable")
    n_bins = max(1, min(DRIFT_BINS, len(drift) // MIN_PER_DRIFT_BIN))
    chunks = np.array_split(order, n_bins)
    edges = np.array([drift[chunk[0]] for chunk in chunks[1:]])
    return edges, [_quantile_pool(vols[chunk], DRIFT_POOL_SIZE) for chunk in chunks]


def _drift_tables(edges: Any, pools: Any, n: int) -> tuple[list[np.ndarray] | None, list[list[np.ndarray]] | None]:
    if edges is None and pools is None:
        return None, None
    try:
        edge_arrays = [np.asarray(e, dtype=np.float64).reshape(-1) for e in edges]
        pool_arrays = [[np.asarray(p, dtype=np.float64).reshape(-1) for p in bins] for bins in pools]
    except (TypeError, ValueError):
        edge_arrays, pool_arrays = [], []
    shapes_ok = len(edge_arrays) == n and len(pool_arrays) == n and all(
        len(bins) == len(e) + 1 and np.isfinite(e).all() for e, bins in zip(edge_arrays, pool_arrays, strict=True))
    if not shapes_ok:
        raise DataError(f"volatility regimes dict fields drift_edges / drift_pools must hold, for each of the {n} "
                        "buckets, its drift edges and one volatility pool more than edges; re-materialize "
                        "diffusion_model.")
    return edge_arrays, pool_arrays


def _vector(values: Any, size: int, field: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (size,) or not np.isfinite(arr).all():
        raise DataError(f"volatility regimes dict field {field} must hold {size} finite numbers, got shape "
                        f"{arr.shape}; re-materialize diffusion_model.")
    return arr


def _peek(data: Any) -> str:
    if not isinstance(data, dict):
        return type(data).__name__
    return f"format {data.get('format')!r} version {data.get('version')!r}"


# -- what the generator's training and sampling call -------------------------------------------------------------
def encode_training_windows(windows: dict[str, np.ndarray], representations: dict[str, Any], k: int,
                            normalize: str = "none") -> tuple[np.ndarray, np.ndarray, dict[str, VolRegimes]]:
    """(images, class labels, regimes per series) for a class-conditioned model over ``windows`` (series ->
    its TRAIN windows, in class order).

    Per series: the regimes are fitted on its train windows, the windows normalised as ``normalize`` says, the
    (unfitted) representation fitted on the normalised windows and used to encode them; each image's label is
    ``class_labels(series index, bucket, k)``. With ``k = 0`` this is the plain per-series encoding.
    """
    check_regime_config(k, normalize)
    images, labels, regimes = [], [], {}
    for index, (name, train) in enumerate(windows.items()):
        regimes[name] = VolRegimes.fit(train, k, normalize)
        prepared, buckets = regimes[name].prepare(train)
        images.append(representations[name].fit(prepared).encode(prepared))
        labels.append(class_labels(index, buckets, k))
    return np.concatenate(images), np.concatenate(labels), regimes


#: The scale draw of :func:`plan_samples` unless told (see SCALE_DRAWS). bench/results/ablation_leverage.json
#: (quick profile, CPU, 600 steps, training seeds 0 and 1): on the same generated shapes, sp500's leverage (mean
#: over 20 scale draws) -0.021 / -0.017 independent, -0.031 / -0.030 drift (real test -0.084); the
#: discriminative score and mjd within noise.
DEFAULT_SCALE_DRAW = "drift"
#: The shape calibration of the MLflow pyfunc (synthetic_series takes the profile's, the same): see
#: SHAPE_CALIBRATIONS. bench/results/ablation_shapes_bucket.json: "marginal" lowered sp500's discriminative score
#: on both training seeds (0.248 / 0.269 -> 0.179 / 0.259) and its shape-only score (0.118 / 0.160 -> 0.037 /
#: 0.129); mjd within noise. bench/results/ablation_leverage_calibration.json: "marginal_leverage" then moved
#: sp500's leverage -0.037 / -0.037 -> -0.054 / -0.064 (real test -0.084) and its discriminative score 0.178 /
#: 0.256 -> 0.161 / 0.138; over training seeds 0-3 paired -0.062 +- 0.019 (se), lower on every seed; mjd within
#: noise.
#: plan_samples itself defaults to "none" (the raw shapes).
DEFAULT_SHAPE_CALIBRATION = "marginal_leverage"


@dataclass
class SamplingPlan:
    """One series' sampling plan: the class label (None: unconditional model), bucket and independently drawn
    scale per sample, and how :meth:`rescale` turns the decoded, normalised shapes into returns."""

    regimes: VolRegimes
    labels: np.ndarray | None
    buckets: np.ndarray
    scales: np.ndarray
    scale_draw: str
    seed: int
    shape_calibration: str = "none"
    #: shape_calibration="marginal_leverage": apply this fit (of a larger set of the same series) instead of
    #: fitting one on the shapes :meth:`rescale` gets (e.g. a sampler's small set, calibrated as the main set)
    reuse_leverage: LeverageFit | None = None
    #: set by :meth:`rescale` when shape_calibration="marginal_leverage": the modulation it fitted or applied
    leverage_fit: LeverageFit | None = None

    def scales_for(self, shapes: np.ndarray) -> np.ndarray:
        """The scale per decoded shape: the planned ones, or (scale_draw="drift") drawn by the shapes' drift."""
        if self.scale_draw == "drift" and self.regimes.normalize == "window":
            # its own stream, so the buckets and independent scales are the same whichever draw is used
            return self.regimes.matched_scales(self.buckets, shapes, seed=int(self.seed) + 7919)
        return self.scales

    def rescale(self, shapes: np.ndarray) -> np.ndarray:
        """Decoded, normalised shapes (N, T) -> log returns in the series' units (decode is linear, so scaling
        after it equals decoding the scaled image: the samples stay realizable)."""
        shapes, self.leverage_fit = self.regimes.calibrate_shapes_with_fit(
            np.asarray(shapes, dtype=np.float64), self.shape_calibration, self.buckets, self.reuse_leverage)
        return shapes * self.scales_for(shapes)[:, None]


def plan_samples(regimes: VolRegimes, series_index: int | None, n: int, seed: int,
                 scale_draw: str = DEFAULT_SCALE_DRAW, shape_calibration: str = "none") -> SamplingPlan:
    """The :class:`SamplingPlan` of ``n`` samples of one series: buckets drawn from its train frequencies (seeded),
    scales as its normalisation says (1 without), drawn per ``scale_draw`` once the shapes exist.

    ``scale_draw="drift"`` on a model without volatility normalisation changes nothing (its scales are not
    drawn); on a version-1 model with ``vol_normalize="window"`` it raises DataError (no drift tables saved).
    """
    check_scale_draw(scale_draw)
    check_shape_calibration(shape_calibration)
    if scale_draw == "drift" and regimes.normalize == "window" and regimes.drift_edges is None:
        raise DataError("this model's volatility regimes have no drift tables (saved as format version 1); "
                        "re-materialize diffusion_model, or set synthetic_series.scale_draw='independent'.")
    buckets, scales = regimes.draw(n, seed)
    labels = None if series_index is None else class_labels(series_index, buckets, regimes.k)
    return SamplingPlan(regimes, labels, buckets, scales, scale_draw, int(seed), shape_calibration)
