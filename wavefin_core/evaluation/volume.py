"""The volume-translation task: return scalogram -> log-volume scalogram, its baseline and its scores.

The task (issue 9, seed 002): from the CWT of a window's standardised log returns, predict the CWT magnitude of
the same window's standardised log volume. Volume co-moves with the size of returns, so there is something to
learn; the question is whether a network (the Dense U-Net) learns more than a per-scale straight line.

- :func:`build_volume_pairs` builds the (input, target) images of every window of a `Segments`, with all
  scalings fitted on the training windows only.
- :class:`PerScaleLinear` is the baseline: for each scale s, ``target[s, t] ~ a_s + b_s * |input|[s, t]``,
  fitted by least squares over all training windows and time steps.
- :func:`evaluate_volume_translation` scores test-window predictions by MAE and PSNR next to that baseline and
  the per-scale training mean (a model that ignores its input); :func:`volume_translation_table` is the markdown.

PSNR here is ``10 * log10(R**2 / MSE)`` with ``R = max - min`` of the *training* targets (the range a model
can know before seeing the test windows), MSE pooled over every test value. Both metrics are in the scaled
target units (each scale's magnitudes divided by their training RMS), so every scale weighs alike.

Numpy only (no model code): the Dense U-Net lives in :mod:`wavefin_core.models.dense_unet`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from wavefin_core.data.memory import check_allocation
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.segments import Segments
from wavefin_core.wavelets import covering_scales, cwt, to_channels

if TYPE_CHECKING:  # the scalograms module imports torch; this one stays numpy-only
    from wavefin_core.scalograms import ScalogramSet

INPUT_MODES = ("magnitude", "real_imag")
#: Bytes per (window, scale, sample) while building the pairs: two complex64 CWTs (16), their magnitudes and
#: scaled copies (~16), the float32 input (<= 8) and target (4) images; 48 leaves a small margin (estimate).
_BYTES_PER_COEFFICIENT = 48
BASELINE = "per_scale_linear"
TRAIN_MEAN = "train_mean"


@dataclass
class VolumePairs:
    """Input images `x` (N, C, S, T) and target images `y` (N, 1, S, T) of one series' windows, float32.

    `x` is the CWT of the standardised return windows divided per scale by `input_scale` (training RMS of the
    magnitudes): one magnitude channel (`input_mode="magnitude"`) or real+imag channels ("real_imag").
    `y` is ``|CWT(z)|`` of the standardised log volume ``z = (log1p(volume) - log_volume_mean) /
    log_volume_std`` divided per scale by `target_scale`. Every statistic comes from the training windows only.
    """

    x: np.ndarray
    y: np.ndarray
    split: np.ndarray
    scales: np.ndarray
    wavelet: str
    input_mode: str
    input_scale: np.ndarray
    target_scale: np.ndarray
    log_volume_mean: float
    log_volume_std: float

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the windows of `split` ("train", "val" or "test")."""
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split={split!r} must be 'train', 'val' or 'test'.")
        mask = self.split == split
        return self.x[mask], self.y[mask]

    def thinned(self, split: str, every: int) -> VolumePairs:
        """These pairs with only every `every`-th window of `split` kept (the other splits unchanged).

        Why: test windows come at stride 1 for the direction task, and consecutive windows' images overlap in all
        but one column; scoring an image translation on every `every`-th of them costs `every` times less
        prediction for nearly the same information.
        """
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split={split!r} must be 'train', 'val' or 'test'.")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ConfigError(f"every={every!r} must be a positive integer (1 keeps every {split} window).")
        rows = np.flatnonzero(self.split == split)
        keep = np.ones(len(self.split), dtype=bool)
        keep[rows] = False
        keep[rows[::every]] = True
        return VolumePairs(**{**self.__dict__, "x": self.x[keep], "y": self.y[keep], "split": self.split[keep]})

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (to save next to a model trained on these pairs)."""
        return {
            "wavelet": self.wavelet,
            "input_mode": self.input_mode,
            "scales": [float(s) for s in self.scales],
            "input_scale": [float(s) for s in self.input_scale],
            "target_scale": [float(s) for s in self.target_scale],
            "log_volume_mean": float(self.log_volume_mean),
            "log_volume_std": float(self.log_volume_std),
            "image_shape": list(self.x.shape[1:]),
        }


def volume_windows(segments: Segments, volume: pd.Series, source: str = "series") -> np.ndarray:
    """The volume of every bar of every window of `segments`, (N, window) float64.

    `volume` is indexed by the same timestamps as the returns the segments were cut from (the `volume`
    column of `clean_prices`). DataError, naming `source` and the first missing timestamp, when a window's bars
    are not all in `volume`.
    """
    return _volume_windows(volume, segments.start_time, segments.end_time, int(segments.window), source)


def _check_volume_series(volume: pd.Series, source: str) -> None:
    if not isinstance(volume, pd.Series) or not isinstance(volume.index, pd.DatetimeIndex):
        raise DataError(f"{source}: volume must be a pandas Series on a DatetimeIndex (the clean_prices 'volume' "
                        "column).")


def _volume_windows(volume: pd.Series, start_time: Any, end_time: Any, width: int, source: str) -> np.ndarray:
    """`volume_windows` on explicit window bounds (first and last bar of each window)."""
    _check_volume_series(volume, source)
    index = _utc(volume.index)
    values = volume.to_numpy(dtype=np.float64)
    starts = index.get_indexer(_utc(start_time))
    if len(values) < width:
        raise DataError(f"{source}: volume has {len(values)} rows, fewer than one window ({width}).")
    ends = np.where(starts >= 0, starts + width - 1, -1)
    bad = (starts < 0) | (ends >= len(values))
    if not bad.any():
        bad = index[ends] != _utc(end_time)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: the bars of window {first} ({start_time[first]} .. {end_time[first]}) are "
            "not all in the volume series; pass the volume column of the same clean_prices the segments came from."
        )
    if not np.isfinite(values).all() or (values < 0).any():
        row = int(np.flatnonzero(~np.isfinite(values) | (values < 0))[0])
        raise DataError(f"{source}: volume at {index[row]} is {values[row]}; volume must be finite and >= 0.")
    return np.lib.stride_tricks.sliding_window_view(values, width)[starts]


def _utc(times: Any) -> pd.DatetimeIndex:
    """Timestamps as a tz-aware UTC index (naive ones are taken as UTC, as the loaders do)."""
    index = pd.DatetimeIndex(times)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def build_volume_pairs(
    segments: Segments,
    volume: pd.Series,
    *,
    input_mode: str = "magnitude",
    wavelet: str = "cmor1.5-1.0",
    num_scales: int | None = None,
    scales: np.ndarray | None = None,
    source: str = "series",
) -> VolumePairs:
    """Input and target images of every window of `segments` (see `VolumePairs`); scalings fitted on train only.

    Log volume is ``log1p(volume)`` so that bars with zero volume stay finite. DataError when the training
    windows' volume is constant (a series without real volume, e.g. FX quotes with volume 0: the task needs a
    volume column that varies). ConfigError for an unknown `input_mode`.
    """
    if input_mode not in INPUT_MODES:
        raise ConfigError(f"input_mode={input_mode!r} must be one of {INPUT_MODES}.")
    train = segments.mask("train")
    if not train.any():
        raise ConfigError(f"{source}: no training windows; supply more data or lower `window`.")
    raw_volume = volume_windows(segments, volume, source)
    mean, std = _log_volume_stats(raw_volume, train, source)
    if scales is None:
        scales = covering_scales(int(segments.window), wavelet, num=num_scales)
    scales = np.asarray(scales, dtype=np.float64)
    n, width = len(segments), int(segments.window)
    check_allocation(
        f"volume pairs of series {source!r}", n * len(scales) * width * _BYTES_PER_COEFFICIENT,
        f"{n} windows x {len(scales)} scales x {width} samples x {_BYTES_PER_COEFFICIENT} bytes",
        "Lower num_scales, raise segments.stride (fewer windows), or lower segments.window.",
    )

    returns_coefs = cwt(segments.normalized().astype(np.float32), scales, wavelet)
    input_scale = _train_rms(np.abs(returns_coefs), train)
    scaled = returns_coefs / input_scale[:, None]
    x = np.abs(scaled)[:, None] if input_mode == "magnitude" else to_channels(scaled)
    y, target_scale = _targets(raw_volume, mean, std, train, scales, wavelet)
    return VolumePairs(
        x=np.ascontiguousarray(x, dtype=np.float32),
        y=np.ascontiguousarray(y, dtype=np.float32),
        split=np.asarray(segments.split).astype(str),
        scales=scales,
        wavelet=wavelet,
        input_mode=input_mode,
        input_scale=input_scale,
        target_scale=target_scale,
        log_volume_mean=mean,
        log_volume_std=std,
    )


def _log_volume_stats(raw_volume: np.ndarray, train: np.ndarray, source: str) -> tuple[float, float]:
    """Mean and std of ``log1p(volume)`` over the training windows; DataError when it is constant."""
    log_volume = np.log1p(raw_volume[train])
    mean, std = float(log_volume.mean()), float(log_volume.std())
    if not std > 1e-12 * max(abs(mean), 1.0):
        raise DataError(
            f"{source}: volume is constant over the training windows (log1p volume std {std:.3g}), so there is "
            "nothing to translate into; the volume task needs a series whose volume column varies (drop it from "
            "the volume task's series)."
        )
    return mean, std


def _targets(raw_volume: np.ndarray, mean: float, std: float, train: np.ndarray, scales: np.ndarray,
             wavelet: str) -> tuple[np.ndarray, np.ndarray]:
    """Target images (N, 1, S, T) float32 (|CWT| of the standardised log volume over the training RMS per scale)
    and that per-scale RMS."""
    volume_coefs = cwt(((np.log1p(raw_volume) - mean) / std).astype(np.float32), scales, wavelet)
    target = np.abs(volume_coefs)
    target_scale = _train_rms(target, train)
    return np.ascontiguousarray((target / target_scale[:, None])[:, None], dtype=np.float32), target_scale


def volume_pairs_from_scalograms(
    scalograms: ScalogramSet,
    volume: pd.Series,
    *,
    input_mode: str = "magnitude",
    source: str | None = None,
) -> VolumePairs:
    """The pairs of :func:`build_volume_pairs` for a stored `ScalogramSet` (what the `scalograms` asset holds).

    Why it exists: the pipeline's model assets read scalograms, not segments, and the scalogram images already
    are the inputs ``build_volume_pairs`` would compute: the CWT of the train-standardised windows divided per
    scale by the training RMS of its magnitudes (``real_imag``), whose modulus is the ``magnitude`` input. So only
    the targets are computed here, on the same scales and wavelet. `volume` is the clean_prices `volume` column
    of the same series (each window's bars are the `window` rows ending at its `end_time`).
    """
    if input_mode not in INPUT_MODES:
        raise ConfigError(f"input_mode={input_mode!r} must be one of {INPUT_MODES}.")
    source = source or scalograms.series
    images, split = np.asarray(scalograms.images), np.asarray(scalograms.split).astype(str)
    train = split == "train"
    if not train.any():
        raise ConfigError(f"{source}: no training windows; supply more data or lower `window`.")
    _check_volume_series(volume, source)
    width = int(images.shape[-1])
    index = _utc(volume.index)
    ends = index.get_indexer(_utc(scalograms.end_time))
    missing = (ends < width - 1)  # -1 (not in the index) or too close to the start for a whole window
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise DataError(f"{source}: the bars of window {first} (ending {scalograms.end_time[first]}) are not all in "
                        "the volume series; pass the volume column of the same clean_prices the scalograms came "
                        "from (materialize the series' partition again if they differ).")
    raw_volume = _volume_windows(volume, index[ends - width + 1], index[ends], width, source)
    mean, std = _log_volume_stats(raw_volume, train, source)
    scales = np.asarray(scalograms.scales, dtype=np.float64)
    y, target_scale = _targets(raw_volume, mean, std, train, scales, scalograms.wavelet)
    x = images if input_mode == "real_imag" else np.hypot(images[:, :1], images[:, 1:2])
    return VolumePairs(
        x=np.ascontiguousarray(x, dtype=np.float32), y=y, split=split, scales=scales,
        wavelet=scalograms.wavelet, input_mode=input_mode,
        input_scale=np.asarray(scalograms.channel_scale, dtype=np.float32), target_scale=target_scale,
        log_volume_mean=mean, log_volume_std=std,
    )


def _train_rms(magnitudes: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per-scale RMS over the training windows (and time); 1 where a scale is all zero."""
    rms = np.sqrt(np.mean(np.asarray(magnitudes[train], dtype=np.float64) ** 2, axis=(0, 2)))
    return np.where(rms > 0, rms, 1.0).astype(np.float32)


def input_magnitude(x: np.ndarray, input_mode: str) -> np.ndarray:
    """|input| per (window, scale, time), (N, S, T): the channel itself, or sqrt(real^2 + imag^2)."""
    x = np.asarray(x, dtype=np.float64)
    if input_mode == "magnitude":
        return np.abs(x[:, 0])
    if input_mode == "real_imag":
        return np.hypot(x[:, 0], x[:, 1])
    raise ConfigError(f"input_mode={input_mode!r} must be one of {INPUT_MODES}.")


@dataclass
class PerScaleLinear:
    """The baseline: for each scale s, ``target[s, t] = intercept[s] + slope[s] * |input|[s, t]``."""

    intercept: np.ndarray
    slope: np.ndarray
    input_mode: str = "magnitude"

    @classmethod
    def fit(cls, x_train: np.ndarray, y_train: np.ndarray, input_mode: str = "magnitude") -> PerScaleLinear:
        """Least squares per scale over every training window and time step (closed form; no iteration)."""
        u = input_magnitude(x_train, input_mode)  # (N, S, T)
        v = np.asarray(y_train, dtype=np.float64)[:, 0]
        if u.shape != v.shape:
            raise DataError(f"x_train {np.shape(x_train)} and y_train {np.shape(y_train)} are not on the same "
                            "(N, S, T) grid.")
        u_mean, v_mean = u.mean(axis=(0, 2)), v.mean(axis=(0, 2))
        du, dv = u - u_mean[:, None], v - v_mean[:, None]
        var = (du**2).sum(axis=(0, 2))
        slope = np.where(var > 0, (du * dv).sum(axis=(0, 2)) / np.where(var > 0, var, 1.0), 0.0)
        return cls(intercept=v_mean - slope * u_mean, slope=slope, input_mode=input_mode)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted targets (N, 1, S, T) float32."""
        u = input_magnitude(x, self.input_mode)
        return (self.intercept[:, None] + self.slope[:, None] * u)[:, None].astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"intercept": [float(v) for v in self.intercept], "slope": [float(v) for v in self.slope],
                "input_mode": self.input_mode}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerScaleLinear:
        return cls(np.asarray(data["intercept"], dtype=np.float64), np.asarray(data["slope"], dtype=np.float64),
                   data.get("input_mode", "magnitude"))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error over every value."""
    y_true, y_pred = _same_shape(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def psnr(y_true: np.ndarray, y_pred: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``; +inf for a perfect prediction.

    `data_range` is the max - min of the *training* targets (see the module docstring): computing it from the
    test targets would make the score depend on the test set's extremes.
    """
    if not (isinstance(data_range, (int, float, np.floating)) and math.isfinite(data_range) and data_range > 0):
        raise ConfigError(f"data_range={data_range!r} must be a positive finite number (max - min of the train "
                          "targets).")
    y_true, y_pred = _same_shape(y_true, y_pred)
    mse = float(np.mean((y_true - y_pred) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(float(data_range) ** 2 / mse)


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"predictions shaped {b.shape} do not match the targets {a.shape}; predict every test "
                        "window on the same (C, S, T) grid.")
    if a.size == 0:
        raise DataError("no test values to score; the series needs test windows.")
    if not np.isfinite(b).all():
        raise DataError("predictions contain NaN or inf; retrain the model (lower learning_rate).")
    return a, b


def evaluate_volume_translation(
    pairs: VolumePairs, predictions: Mapping[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Score test-window predictions against the targets, next to the two references fitted on train.

    `predictions` maps a model name (e.g. "dense_unet") to its predicted test targets, shaped like
    ``pairs.arrays("test")[1]``. Added here: `per_scale_linear` (the baseline) and `train_mean` (each scale's
    mean training target, which ignores the input). Returns a JSON-serialisable dict::

        {"n_train", "n_test": int, "input_mode": str, "image_shape": [C, S, T], "data_range": float,
         "psnr_definition": str, "models": {NAME: {"mae", "mse", "psnr": float, "mae_per_scale": [float]}},
         "best": NAME with the lowest MAE, "baseline": PerScaleLinear.to_dict()}
    """
    reserved = sorted({BASELINE, TRAIN_MEAN} & set(predictions or {}))
    if reserved:
        raise ConfigError(f"predictions use the reserved name(s) {reserved}; the references are added here, so "
                          "name your model differently (e.g. 'dense_unet').")
    x_train, y_train = pairs.arrays("train")
    x_test, y_test = pairs.arrays("test")
    if len(y_test) == 0:
        raise DataError("no test windows to score the volume translation on; supply more data.")
    data_range = float(y_train.max() - y_train.min())
    baseline = PerScaleLinear.fit(x_train, y_train, pairs.input_mode)
    train_mean = np.broadcast_to(y_train.mean(axis=(0, 3), keepdims=True), y_test.shape)
    scored = {**dict(predictions or {}), BASELINE: baseline.predict(x_test), TRAIN_MEAN: train_mean}
    models = {}
    for name, predicted in scored.items():
        truth, predicted = _same_shape(y_test, predicted)
        models[name] = {
            "mae": mae(truth, predicted),
            "mse": float(np.mean((truth - predicted) ** 2)),
            "psnr": psnr(truth, predicted, data_range),
            "mae_per_scale": [float(v) for v in np.abs(truth - predicted).mean(axis=(0, 1, 3))],
        }
    return {
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "input_mode": pairs.input_mode,
        "image_shape": [int(v) for v in pairs.x.shape[1:]],
        "data_range": data_range,
        "psnr_definition": "10*log10(R^2/MSE), R = max - min of the training targets, MSE pooled over test values",
        "models": models,
        "best": min(models, key=lambda name: models[name]["mae"]),
        "baseline": baseline.to_dict(),
    }


def volume_translation_table(result: Mapping[str, Any]) -> str:
    """Markdown table of `evaluate_volume_translation`'s result, best MAE first, with the gain over the baseline."""
    models = result["models"]
    reference = models.get(BASELINE, {}).get("mae")
    lines = [
        f"Volume translation: {result['n_test']} test windows ({result['n_train']} train), input "
        f"{result['input_mode']}, image {tuple(result['image_shape'])}. MAE and PSNR on the per-scale-scaled "
        f"log-volume scalogram magnitudes; PSNR = 10 log10(R^2/MSE), R = {result['data_range']:.3g} (train range).",
        "",
        "| model | MAE | PSNR (dB) | MAE vs per-scale linear |",
        "|---|---|---|---|",
    ]
    for name in sorted(models, key=lambda n: models[n]["mae"]):
        row = models[name]
        gain = f"{100.0 * (row['mae'] / reference - 1.0):+.1f}%" if reference else "n/a"
        lines.append(f"| {name} | {row['mae']:.4f} | {row['psnr']:.2f} | {gain} |")
    return "\n".join(lines) + "\n"


def volume_translation_markdown(document: Mapping[str, Any]) -> str:
    """The report section of the forecasters' volume translation: one table per series, then the skipped ones.

    `document` is ``{"series": {NAME: evaluate_volume_translation(...) + {"dense_unet": {"params",
    "train_seconds", "best_epoch", "epochs_run", ...}}}, "skipped": {NAME: reason}, "test_stride": int}``.
    """
    stride = int(document.get("test_stride", 1))
    lines = [
        "From each window's return scalogram, predict the scalogram magnitude of the same window's standardised "
        "log volume. Trained on train, early-stopped on val, scored on the test windows"
        + (f" (every {stride}th: consecutive test windows overlap)" if stride > 1 else "") + ". The two "
        "references are fitted on train: a least-squares line per scale (`per_scale_linear`) and each scale's "
        "mean training target (`train_mean`, which ignores the returns).",
        "",
    ]
    for name, result in document.get("series", {}).items():
        lines += [f"### `{name}`", "", volume_translation_table(result).rstrip("\n")]
        unet = result.get("dense_unet") or {}
        if unet:
            lines += ["", f"Dense U-Net: {int(unet['params']):,} parameters, {float(unet['train_seconds']):.1f} s "
                          f"of training, best validation epoch {unet['best_epoch']} of {unet['epochs_run']} run."]
        lines.append("")
    for name, reason in (document.get("skipped") or {}).items():
        lines.append(f"- `{name}`: skipped, no usable volume: {reason}")
    return "\n".join(lines).rstrip("\n") + "\n"


def plot_volume_example(images: Mapping[str, np.ndarray], title: str = "") -> Any:
    """One test window's log-volume scalogram: the truth and each model's prediction side by side, one colour scale.

    `images` maps a panel title ("true", "dense_unet", "per_scale_linear") to an (S, T) image. Returns a
    matplotlib ``Figure`` (no pyplot: thread-safe, headless); save it with
    :func:`wavefin_core.evaluation.plots.save_figure`.
    """
    from matplotlib.figure import Figure  # imported here: the metrics above need no plotting library

    if not images:
        raise ConfigError("plot_volume_example needs at least one image (e.g. {'true': target}).")
    panels = {name: np.asarray(image, dtype=np.float64) for name, image in images.items()}
    shapes = {name: image.shape for name, image in panels.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise DataError(f"plot_volume_example: images must all be (S, T) of one shape; got {shapes}.")
    low = min(float(image.min()) for image in panels.values())
    high = max(float(image.max()) for image in panels.values())
    fig = Figure(figsize=(3.0 * len(panels), 2.6), layout="constrained")  # keeps the suptitle off the panels
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, image) in zip(axes, panels.items(), strict=True):
        shown = ax.imshow(image, aspect="auto", origin="lower", vmin=low, vmax=high, cmap="viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time in window", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("scale index", fontsize=8)
    fig.colorbar(shown, ax=list(axes), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
