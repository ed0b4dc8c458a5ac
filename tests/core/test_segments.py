"""make_segments / Segments: correct labels, no leakage across splits, train-only stats, lossless storage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.preprocess import clean_prices
from wavefin_core.segments import Segments, make_segments, min_rows

N_ROWS = 1200


def returns_series(n: int = N_ROWS, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC", name="timestamp")
    return pd.Series(rng.standard_t(4, n) * 1e-3, index=index, name="log_return")


def positions(seg: Segments, returns: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of each window's first return and of the last return in its label."""
    return returns.index.get_indexer(seg.start_time), returns.index.get_indexer(seg.label_time)


@pytest.mark.parametrize(
    ("window", "stride", "horizon", "embargo"), [(32, 4, 3, None), (50, 7, 1, 51), (20, 1, 5, 100)]
)
def test_windows_labels_and_leak_free_splits(
    window: int, stride: int, horizon: int, embargo: int | None
) -> None:
    returns = returns_series()
    values = returns.to_numpy()
    seg = make_segments(returns, window=window, stride=stride, horizon=horizon, embargo=embargo)
    expected_embargo = window + horizon if embargo is None else embargo
    assert seg.embargo == expected_embargo
    first, last = positions(seg, returns)

    # Windows and labels are the right slices of the series.
    assert seg.windows.shape == (len(seg), window) and seg.windows.dtype == np.float64
    for i in range(len(seg)):
        np.testing.assert_array_equal(seg.windows[i], values[first[i] : first[i] + window])
    np.testing.assert_allclose(
        seg.target_return, [values[s + window : s + window + horizon].sum() for s in first]
    )
    np.testing.assert_array_equal(seg.direction, (seg.target_return > 0).astype(np.int64))
    assert seg.direction.dtype == np.int64
    assert (last - first == window + horizon - 1).all()
    assert (returns.index.get_indexer(seg.end_time) == first + window - 1).all()

    # Every window + label lies wholly inside its own chronological region.
    a, b = int(N_ROWS * 0.7), int(N_ROWS * 0.85)
    bounds = {"train": (0, a), "val": (a, b), "test": (b, N_ROWS)}
    for name, (lo, hi) in bounds.items():
        m = seg.mask(name)
        assert m.any()
        assert (first[m] >= lo).all() and (last[m] < hi).all()

    # At least `embargo` unused rows separate consecutive splits.
    train, val, test = (seg.mask(s) for s in ("train", "val", "test"))
    assert first[val].min() - last[train].max() - 1 >= expected_embargo
    assert first[test].min() - last[val].max() - 1 >= expected_embargo
    # Splits are in time order and every window is labelled with exactly one split.
    assert set(np.unique(seg.split)) == {"train", "val", "test"}
    assert sum(seg.counts().values()) == len(seg)
    assert seg.label_time[train].max() < seg.start_time[val].min()


def test_stride_spacing_within_split() -> None:
    returns = returns_series()
    seg = make_segments(returns, window=16, stride=5, test_stride=3)
    first, _ = positions(seg, returns)
    for name, step in (("train", 5), ("val", 5), ("test", 3)):
        assert (np.diff(first[seg.mask(name)]) == step).all()
        assert seg.stride_of(name) == step


@pytest.mark.parametrize(("horizon", "expected"), [(1, 1), (4, 4)])
def test_test_windows_default_to_every_row_for_one_step_labels(horizon: int, expected: int) -> None:
    """A coarse training stride must not thin the test split: h = 1 scores every test row, h > 1 every h-th
    (non-overlapping labels), and the test windows are exactly the ones a stride-1 cut gives."""
    returns = returns_series()
    seg = make_segments(returns, window=16, stride=8, horizon=horizon)
    assert seg.stride_of("test") == expected and seg.stride_of("train") == 8
    dense = make_segments(returns, window=16, stride=1, horizon=horizon, test_stride=1)
    test, dense_test = seg.mask("test"), dense.mask("test")
    np.testing.assert_array_equal(seg.windows[test], dense.windows[dense_test][::expected])
    np.testing.assert_array_equal(seg.target_return[test], dense.target_return[dense_test][::expected])
    assert seg.counts()["test"] == -(-dense.counts()["test"] // expected)
    # train windows are still every 8th row and nothing else moved
    np.testing.assert_array_equal(seg.windows[seg.mask("train")], dense.windows[dense.mask("train")][::8])
    assert (seg.mean, seg.std) == (make_segments(returns, window=16, stride=8, horizon=horizon,
                                                 test_stride=7).mean, seg.std)


def test_contiguous_returns_rebuild_every_split_whatever_its_stride() -> None:
    from wavefin_core.scalograms import build_scalograms, contiguous_returns

    returns = returns_series()
    values = returns.to_numpy()
    seg = make_segments(returns, window=16, stride=8)  # test_stride 1
    s = build_scalograms(seg, num_scales=8)
    assert (s.extra["stride"], s.extra["test_stride"]) == (8, 1)
    for split in ("train", "val", "test"):
        first = returns.index.get_indexer(seg.start_time[seg.mask(split)])
        last_end = first[-1] + 16
        np.testing.assert_array_equal(contiguous_returns(s, split), values[first[0] : last_end])
    # A table written before test_stride was recorded used `stride` for every split.
    old = make_segments(returns, window=16, stride=8, test_stride=8)
    s_old = build_scalograms(old, num_scales=8)
    del s_old.extra["test_stride"]
    first = returns.index.get_indexer(old.start_time[old.mask("test")])
    np.testing.assert_array_equal(contiguous_returns(s_old, "test"), values[first[0] : first[-1] + 16])
    with pytest.raises(ConfigError, match="segments.test_stride=20 > window=16"):
        contiguous_returns(build_scalograms(make_segments(returns, window=16, stride=8, test_stride=20),
                                            num_scales=8), "test")


def test_stats_from_train_windows_only() -> None:
    returns = returns_series()
    seg = make_segments(returns, window=32, stride=4)
    train_windows = seg.windows[seg.mask("train")]
    assert seg.mean == pytest.approx(train_windows.mean(), abs=1e-15)
    assert seg.std == pytest.approx(train_windows.std())

    # Perturbing everything after the training region changes no statistic and no train window.
    perturbed = returns.copy()
    perturbed.iloc[int(N_ROWS * 0.7) :] *= 100.0
    seg2 = make_segments(perturbed, window=32, stride=4)
    assert (seg2.mean, seg2.std) == (seg.mean, seg.std)
    np.testing.assert_array_equal(seg2.windows[seg2.mask("train")], train_windows)
    # ...whereas perturbing training data does change them.
    shocked = returns.copy()
    shocked.iloc[10] = 0.5
    assert make_segments(shocked, window=32, stride=4).std != seg.std


def test_normalize_round_trip_and_train_standardised() -> None:
    seg = make_segments(returns_series(), window=32, stride=4)
    z = seg.normalized()
    train_z = z[seg.mask("train")]
    assert train_z.mean() == pytest.approx(0.0, abs=1e-12)
    assert train_z.std() == pytest.approx(1.0)
    np.testing.assert_allclose(seg.denormalize(z), seg.windows, rtol=0, atol=1e-15)
    np.testing.assert_allclose(seg.normalized(seg.windows[:2]), z[:2])


def test_train_windows_only_use_rows_seen_by_the_winsorizer() -> None:
    """clean_prices fits winsor bounds on the same first-train_fraction rows that train windows draw from."""
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 801)))
    index = pd.date_range("2024-01-01", periods=801, freq="D", tz="UTC", name="timestamp")
    prices = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 0.0}, index=index
    )
    clean = clean_prices(prices, winsorize=(1, 99), train_fraction=0.7)
    returns = clean["log_return"]
    seg = make_segments(returns, window=20, stride=3, train_fraction=0.7)
    _, last = positions(seg, returns)
    assert last[seg.mask("train")].max() < clean.attrs["winsor_train_rows"]


def assert_same(a: Segments, b: Segments) -> None:
    np.testing.assert_array_equal(a.windows, b.windows)
    assert a.windows.dtype == b.windows.dtype == np.float64
    np.testing.assert_array_equal(a.target_return, b.target_return)
    np.testing.assert_array_equal(a.direction, b.direction)
    assert b.direction.dtype == np.int64
    np.testing.assert_array_equal(a.split, b.split)
    for name in ("start_time", "end_time", "label_time"):
        left, right = getattr(a, name), getattr(b, name)
        assert right.dtype == "datetime64[ns, UTC]"
        assert left.equals(right)
    for name in (
        "window",
        "stride",
        "test_stride",
        "horizon",
        "embargo",
        "mean",
        "std",
        "train_fraction",
        "val_fraction",
        "attrs",
    ):
        assert getattr(a, name) == getattr(b, name), name


def test_frame_round_trip_in_memory_and_through_parquet(tmp_path: Path) -> None:
    seg = make_segments(returns_series(), window=32, stride=4, horizon=2)
    seg.attrs["series"] = "mjd"
    frame = seg.to_frame()
    assert len(frame) == len(seg)
    assert json.loads(json.dumps(frame.attrs)) == frame.attrs
    assert frame.attrs["counts"] == seg.counts()
    assert_same(seg, Segments.from_frame(frame))

    path = tmp_path / "segments.parquet"
    frame.to_parquet(path)
    back = pd.read_parquet(path)
    assert back.attrs == frame.attrs, "attrs lost in Parquet: needs pandas >= 2.1"
    assert_same(seg, Segments.from_frame(back))
    assert_same(seg, Segments.from_frame(pd.read_parquet(path, dtype_backend="pyarrow")))


def test_from_frame_accepts_python_lists() -> None:
    seg = make_segments(returns_series(), window=8, stride=8)
    frame = seg.to_frame()
    frame["window"] = seg.windows.tolist()
    assert_same(seg, Segments.from_frame(frame))


def test_from_frame_rejects_incomplete_frames() -> None:
    frame = make_segments(returns_series(), window=8, stride=8).to_frame()
    stripped = frame.copy()
    stripped.attrs = {}
    with pytest.raises(DataError, match="attrs"):
        Segments.from_frame(stripped)
    ragged = frame.copy()
    ragged["window"] = [list(range(8))] * (len(frame) - 1) + [list(range(7))]
    with pytest.raises(DataError, match="window"):
        Segments.from_frame(ragged)


def test_too_little_data_is_config_error_naming_window() -> None:
    with pytest.raises(ConfigError) as info:
        make_segments(returns_series(300), window=64, stride=1)
    message = str(info.value)
    assert "window=64" in message and "lower window" in message and "val split" in message


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 0, "stride": 1}, "window"),
        ({"window": 8, "stride": 0}, "stride"),
        ({"window": 8, "stride": 1, "test_stride": 0}, "test_stride"),
        ({"window": 8, "stride": 1, "horizon": 0}, "horizon"),
        ({"window": 8, "stride": 1, "embargo": -1}, "embargo"),
        ({"window": 8, "stride": 1, "embargo": 5}, "embargo=5 is shorter than window \\+ horizon"),
        ({"window": 8, "stride": 1, "train_fraction": 0.9, "val_fraction": 0.1}, "train_fraction"),
        ({"window": 8, "stride": 1, "val_fraction": 0.0}, "val_fraction"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}"):
        make_segments(returns_series(), **kwargs)


def test_unusable_returns_are_data_errors() -> None:
    returns = returns_series()
    holed = returns.copy()
    holed.iloc[5] = math.nan
    with pytest.raises(DataError, match="NaN"):
        make_segments(holed, window=8, stride=1)
    with pytest.raises(DataError, match="sorted"):
        make_segments(returns.iloc[::-1], window=8, stride=1)
    with pytest.raises(DataError, match="zero variance"):
        make_segments(returns * 0.0 + 1e-4, window=8, stride=1)


@pytest.mark.parametrize(
    ("window", "horizon", "embargo", "train_fraction", "val_fraction"),
    [(16, 1, None, 0.7, 0.15), (10, 3, 13, 0.6, 0.2), (7, 2, 30, 0.5, 0.3)],
)
def test_min_rows_is_the_exact_threshold(
    window: int, horizon: int, embargo: int | None, train_fraction: float, val_fraction: float
) -> None:
    kwargs = {
        "horizon": horizon,
        "embargo": embargo,
        "train_fraction": train_fraction,
        "val_fraction": val_fraction,
    }
    n_min = min_rows(window, **kwargs)
    for n in range(n_min, n_min + 40):
        assert min(make_segments(returns_series(n), window=window, stride=1, **kwargs).counts().values()) >= 1
    with pytest.raises(ConfigError, match=f"at least {n_min} returns needed"):
        make_segments(returns_series(n_min - 1), window=window, stride=1, **kwargs)


def test_window_below_the_one_minimum_is_refused_by_segments_and_min_rows() -> None:
    from wavefin_core.segments import MIN_WINDOW
    from wavefin_core.wavelets import covering_scales

    covering_scales(MIN_WINDOW)  # the minimum is exactly what the scalograms' scales accept
    with pytest.raises(ConfigError):
        covering_scales(MIN_WINDOW - 1)
    for call in (
        lambda: make_segments(returns_series(), window=MIN_WINDOW - 1, stride=1),
        lambda: min_rows(MIN_WINDOW - 1),
    ):
        with pytest.raises(ConfigError, match=rf"window={MIN_WINDOW - 1} is below the minimum of {MIN_WINDOW}"):
            call()


def test_too_big_segments_and_scalograms_are_refused_before_allocating(monkeypatch) -> None:
    from wavefin_core.scalograms import build_scalograms

    seg = make_segments(returns_series(), window=32, stride=8)
    with pytest.raises(ConfigError) as info:
        build_scalograms(seg, num_scales=10**6)  # ~100 windows x 1e6 scales x 32 samples: ~100 GB
    message = str(info.value)
    assert "GiB" in message and "1000000 scales" in message and "scalograms.num_scales" in message
    monkeypatch.setenv("WAVEFIN_MAX_MEMORY_GB", "0.0001")  # ~100 KB: a 1200-row, stride-1 cut needs more
    with pytest.raises(ConfigError, match=r"segments of 1200 returns would need about .* segments\.stride"):
        make_segments(returns_series(), window=32, stride=1)
    monkeypatch.setenv("WAVEFIN_MAX_MEMORY_GB", "lots")
    with pytest.raises(ConfigError, match="WAVEFIN_MAX_MEMORY_GB"):
        make_segments(returns_series(), window=32, stride=1)
