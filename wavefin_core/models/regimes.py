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
from wavefin_core.wavelets.representations import checked_windows

NORMALIZATIONS = ("none", "window", "bucket")
#: ``to_dict`` format tag and version: ``VolRegimes.from_dict`` refuses anything else.
FORMAT = "wavefin.vol_regimes"
VERSION = 1
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
        return cls(k, normalize, edges, counts / counts.sum(), medians, pools, floor)

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

    # -- persistence -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (lists of floats; an empty bucket's median is null)."""
        return {"format": FORMAT, "version": VERSION, "k": self.k, "normalize": self.normalize,
                "edges": [float(v) for v in self.edges], "frequencies": [float(v) for v in self.frequencies],
                "medians": [None if math.isnan(v) else float(v) for v in self.medians],
                "pools": [[float(v) for v in pool] for pool in self.pools], "floor": float(self.floor)}

    @classmethod
    def from_dict(cls, data: Any) -> VolRegimes:
        """Rebuild what :meth:`to_dict` wrote; DataError (naming the field) for anything else."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"volatility regimes dict is not {FORMAT!r} version {VERSION} (got "
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
        except KeyError as missing:
            raise DataError(f"volatility regimes dict lacks the field {missing}; pass what VolRegimes.to_dict() "
                            "returned, unmodified.") from None
        if medians.shape != (n,) or len(pools) != n or not math.isclose(float(frequencies.sum()), 1.0,
                                                                         rel_tol=1e-9):
            raise DataError(f"volatility regimes dict has {len(medians)} medians, {len(pools)} pools and "
                            f"frequencies summing to {frequencies.sum():.6g}; it needs {n} of each and frequencies "
                            "summing to 1. Re-materialize diffusion_model.")
        return cls(k, normalize, edges, frequencies, medians, pools, floor)


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


def _quantile_pool(vols: np.ndarray) -> np.ndarray:
    if len(vols) == 0:
        return np.zeros(0)
    if len(vols) <= POOL_SIZE:
        return np.sort(vols)
    return np.quantile(vols, (np.arange(POOL_SIZE) + 0.5) / POOL_SIZE)




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


def sampling_plan(regimes: VolRegimes, series_index: int | None, n: int, seed: int
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """(class label per sample or None for an unconditional model, scale per sample) for ``n`` samples of one
    series: buckets drawn from its train frequencies (seeded), scales as its normalisation says (1 without)."""
    buckets, scales = regimes.draw(n, seed)
    labels = None if series_index is None else class_labels(series_index, buckets, regimes.k)
    return labels, scales
