"""clean_prices: the missing-value policy, bad-price errors, train-only winsorization, and the check helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavefin_core.data import OHLCV_COLUMNS, PRICE_COLUMNS
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.preprocess import (
    check_min_rows,
    check_monotonic_unique_index,
    check_no_nan,
    check_positive_prices,
    chunked_std,
    clean_prices,
)


def ohlcv(close: list[float] | np.ndarray, start: str = "2024-01-01", freq: str = "D") -> pd.DataFrame:
    close = np.asarray(close, dtype=np.float64)
    index = pd.date_range(start, periods=len(close), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=index,
    )


def random_walk(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def test_log_returns_and_first_row_dropped() -> None:
    close = [100.0, 110.0, 99.0, 120.0]
    out = clean_prices(ohlcv(close))
    assert list(out.columns) == [*OHLCV_COLUMNS, "log_return"]
    assert len(out) == 3
    np.testing.assert_allclose(out["log_return"], np.diff(np.log(close)))
    assert out.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert check_no_nan(out)[0]


def test_missing_close_rows_dropped_not_imputed() -> None:
    df = ohlcv([100.0, 101.0, np.nan, np.nan, 105.0, 106.0])
    out = clean_prices(df)
    assert len(out) == 3  # 4 closes present, first row has no return
    assert pd.Timestamp("2024-01-03", tz="UTC") not in out.index
    # The return after the gap spans it: what holding through the gap earned.
    assert out.loc["2024-01-05", "log_return"].item() == pytest.approx(np.log(105.0 / 101.0))
    assert out.attrs["rows_dropped_missing_close"] == 2


def test_leading_missing_close_dropped_even_with_gap_fill() -> None:
    out = clean_prices(ohlcv([np.nan, 100.0, 101.0, 102.0]), max_gap_fill=3)
    assert out.index[0] == pd.Timestamp("2024-01-03", tz="UTC")
    assert out.attrs["rows_gap_filled"] == 0


def test_short_gaps_forward_filled_long_gaps_dropped_whole() -> None:
    close = [100.0, np.nan, 102.0, np.nan, np.nan, np.nan, 106.0, 107.0]
    out = clean_prices(ohlcv(close), max_gap_fill=2)
    # The 1-bar gap is filled (a zero return, then the move); the 3-bar gap is dropped entirely.
    assert out.loc["2024-01-02", "close"].item() == 100.0
    assert out.loc["2024-01-02", "log_return"].item() == 0.0
    for day in ("2024-01-04", "2024-01-05", "2024-01-06"):
        assert pd.Timestamp(day, tz="UTC") not in out.index
    assert out.attrs["rows_gap_filled"] == 1 and out.attrs["rows_dropped_missing_close"] == 3


def test_missing_ohl_filled_from_close_and_volume_zero() -> None:
    df = ohlcv([100.0, 101.0, 102.0])
    df.loc[df.index[2], ["open", "high", "low", "volume"]] = np.nan
    out = clean_prices(df)
    last = out.iloc[-1]
    assert last["open"] == last["high"] == last["low"] == 102.0
    assert last["volume"] == 0.0
    assert check_no_nan(out)[0]


@pytest.mark.parametrize(
    ("column", "value"), [("close", np.inf), ("close", -5.0), ("open", 0.0), ("low", -np.inf)]
)
def test_bad_prices_raise_with_source_timestamp_and_column(column: str, value: float) -> None:
    df = ohlcv([100.0, 101.0, 102.0])
    df.loc[df.index[1], column] = value
    with pytest.raises(DataError) as info:
        clean_prices(df, source="ticker-XYZ")
    message = str(info.value)
    assert "ticker-XYZ" in message and "2024-01-02" in message and f"'{column}'" in message


def test_duplicates_identical_dropped_conflicting_rejected() -> None:
    df = ohlcv([100.0, 101.0, 102.0])
    doubled = pd.concat([df, df.iloc[[1]]]).sort_index()
    assert len(clean_prices(doubled)) == 2
    conflicting = df.iloc[[1]].copy()
    conflicting["close"] = 999.0
    with pytest.raises(DataError, match="ticker-XYZ.*2024-01-02"):
        clean_prices(pd.concat([df, conflicting]), source="ticker-XYZ")


def test_winsor_bounds_come_from_training_rows_only() -> None:
    close = random_walk(1001)
    out = clean_prices(ohlcv(close), winsorize=(1, 99), train_fraction=0.7)
    returns = np.diff(np.log(close))
    n_train = int(len(returns) * 0.7)
    expected = np.percentile(returns[:n_train], [1, 99])
    assert out.attrs["winsor_bounds"] == pytest.approx(list(expected))
    assert out.attrs["winsor_train_rows"] == n_train
    lo, hi = out.attrs["winsor_bounds"]
    assert out["log_return"].between(lo, hi).all()

    # A test-period crash changes nothing about the bounds, and is itself clipped.
    crashed = close.copy()
    crashed[950:] *= 0.5
    out_crash = clean_prices(ohlcv(crashed), winsorize=(1, 99), train_fraction=0.7)
    assert out_crash.attrs["winsor_bounds"] == out.attrs["winsor_bounds"]
    assert out_crash["log_return"].iloc[949] == pytest.approx(lo)

    # ...while a training-period outlier does move them (the bounds really are fitted on train).
    train_shock = close.copy()
    train_shock[100:] *= 2.0
    out_shock = clean_prices(ohlcv(train_shock), winsorize=(0, 100), train_fraction=0.7)
    assert out_shock.attrs["winsor_bounds"][1] == pytest.approx(np.log(2.0) + returns[99])


def test_prices_untouched_by_winsorization() -> None:
    close = random_walk(300)
    out = clean_prices(ohlcv(close), winsorize=(5, 95))
    np.testing.assert_array_equal(out["close"].to_numpy(), close[1:])


def test_attrs_are_json_and_survive_parquet(tmp_path: Path) -> None:
    df = ohlcv(random_walk(50))
    df.attrs = {"series": "abc", "not_json": object()}
    out = clean_prices(df, winsorize=(1, 99))
    assert "not_json" not in out.attrs and out.attrs["series"] == "abc"
    json.dumps(out.attrs)
    path = tmp_path / "clean.parquet"
    out.to_parquet(path)
    back = pd.read_parquet(path)
    assert back.attrs == out.attrs
    pd.testing.assert_frame_equal(back, out, check_freq=False)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"winsorize": (99, 1)}, "winsorize"),
        ({"winsorize": (1,)}, "winsorize"),
        ({"winsorize": (-1, 50)}, "winsorize"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"train_fraction": 1.5}, "train_fraction"),
        ({"max_gap_fill": -1}, "max_gap_fill"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}="):
        clean_prices(ohlcv([1.0, 2.0, 3.0]), **kwargs)


def test_too_few_prices_is_data_error() -> None:
    with pytest.raises(DataError, match="at least 2"):
        clean_prices(ohlcv([100.0, np.nan, np.nan]), source="s")


def test_check_helpers_pass_and_fail() -> None:
    good = clean_prices(ohlcv(random_walk(20)))
    for check in (check_monotonic_unique_index, check_no_nan, check_positive_prices):
        passed, description = check(good)
        assert passed and description
    assert check_min_rows(good, 19) == (True, "19 rows (>= 19 required)")
    assert not check_min_rows(good, 20)[0]

    unsorted = good.iloc[::-1]
    assert not check_monotonic_unique_index(unsorted)[0]
    dup = pd.concat([good, good.iloc[[0]]])
    passed, description = check_monotonic_unique_index(dup)
    assert not passed and "duplicate" in description
    holed = good.copy()
    holed.iloc[3, 0] = np.nan
    passed, description = check_no_nan(holed)
    assert not passed and "'open': 1" in description
    negative = good.copy()
    negative.iloc[5, 3] = -1.0
    passed, description = check_positive_prices(negative)
    assert not passed and "'close'" in description


# --- memory: cleaning works in place, a chunk at a time ------------------------------------------------------


def messy(n: int, seed: int = 0) -> pd.DataFrame:
    """A frame with every case cleaning handles: missing closes (short and long runs), opens, volumes,
    identical duplicate rows and shuffled order."""
    rng = np.random.default_rng(seed)
    df = ohlcv(random_walk(n, seed), start="2020-01-01", freq="min")
    df.loc[rng.random(n) < 0.15, "close"] = np.nan
    df.iloc[10:14, df.columns.get_loc("close")] = np.nan  # a gap longer than max_gap_fill
    df.loc[rng.random(n) < 0.1, "open"] = np.nan
    df.loc[rng.random(n) < 0.1, "volume"] = np.nan
    df = pd.concat([df, df.iloc[rng.integers(0, n, 20)]]).sample(frac=1.0, random_state=seed)
    df.attrs = {"series": "messy"}
    return df


@pytest.mark.parametrize("winsorize", [None, (2, 97)])
def test_chunked_cleaning_gives_the_one_pass_result_and_leaves_the_input_alone(winsorize) -> None:
    df = messy(500)
    before = df.copy()
    whole = clean_prices(df, max_gap_fill=2, winsorize=winsorize)
    assert 0 < whole.attrs["rows_gap_filled"] and 0 < whole.attrs["rows_dropped_missing_close"]
    for chunk_rows in (1, 7, 64):
        chunked = clean_prices(df, max_gap_fill=2, winsorize=winsorize, chunk_rows=chunk_rows)
        # The same element-wise operations on the same numbers, only in slices: exactly equal.
        pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
        assert chunked.attrs == whole.attrs
    pd.testing.assert_frame_equal(df, before, check_exact=True)
    assert df.attrs == before.attrs
    with pytest.raises(ConfigError, match="^chunk_rows="):
        clean_prices(df, chunk_rows=0)


def test_cleaning_allocates_about_one_copy_of_the_input() -> None:
    import tracemalloc

    df = messy(200_000, seed=3)
    df = df[~df.index.duplicated()].sort_index()  # as raw_prices stores it (sorting is the loader's copy)
    input_bytes = int(df.memory_usage(index=True).sum())
    tracemalloc.start()
    try:
        out = clean_prices(df, max_gap_fill=1, chunk_rows=2**12)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The validated copy (5 columns), the log-return column and the compacted index, plus chunk temporaries:
    # 1.3x the input here. The pandas version this replaced peaked at 5.5x (mask copy, .copy(), iloc copies).
    assert peak < 1.5 * input_bytes, peak / input_bytes
    assert len(out) > 0


def test_checks_scan_in_chunks_with_the_first_bad_price_in_row_order(monkeypatch) -> None:
    import wavefin_core.preprocess as preprocess

    monkeypatch.setattr(preprocess, "CHUNK_ROWS", 4)  # many chunks on a small frame
    good = clean_prices(ohlcv(random_walk(30)))
    bad = good.copy()
    bad.iloc[9, bad.columns.get_loc("low")] = -1.0
    bad.iloc[9, bad.columns.get_loc("open")] = 0.0  # same row, earlier column: reported first
    bad.iloc[6, bad.columns.get_loc("close")] = np.inf  # earlier row, later column: reported first of all
    bad.iloc[20, bad.columns.get_loc("high")] = np.nan
    passed, description = check_positive_prices(bad)
    assert not passed
    assert description.startswith(f"4 non-positive or non-finite price(s), first at {bad.index[6]} column 'close'")
    bad.iloc[6, bad.columns.get_loc("close")] = 1.0
    assert f"first at {bad.index[9]} column 'open'" in check_positive_prices(bad)[1]
    assert check_positive_prices(good) == (True, f"all {4 * len(good)} prices in {list(PRICE_COLUMNS)} finite and > 0")
    holed = good.copy()
    holed.iloc[[2, 17], holed.columns.get_loc("volume")] = np.nan
    assert check_no_nan(holed) == (False, "missing values per column: {'volume': 2}")


def test_chunked_std_is_numpys_std_to_rounding() -> None:
    values = np.random.default_rng(4).normal(1e-3, 1e-2, 100_003)
    # Sums grouped by chunk instead of numpy's pairwise order: equal to a few ulps, not bit for bit.
    for chunk_rows in (1_000, 2**20):
        assert chunked_std(values, chunk_rows) == pytest.approx(np.std(values), rel=1e-12)
    assert np.isnan(chunked_std(np.empty(0)))
