"""clean_prices: the missing-value policy, bad-price errors, train-only winsorization, and the check helpers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavefin_core.data import OHLCV_COLUMNS
from wavefin_core.errors import ConfigError, DataError
from wavefin_core.preprocess import (
    check_min_rows,
    check_monotonic_unique_index,
    check_no_nan,
    check_positive_prices,
    clean_prices,
)


def ohlcv(close: list[float] | np.ndarray, start: str = "2024-01-01") -> pd.DataFrame:
    close = np.asarray(close, dtype=np.float64)
    index = pd.date_range(start, periods=len(close), freq="D", tz="UTC", name="timestamp")
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
