"""load_ohlcv: accepted formats parse to the contract; every bad file fails with file + row/column named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavefin_core.data import OHLCV_COLUMNS, load_ohlcv, validate_ohlcv
from wavefin_core.errors import DataError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(tmp_path: Path, content: str | bytes, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_contract(df: pd.DataFrame) -> None:
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.name == "timestamp"
    assert str(df.index.tz) == "UTC"
    assert list(df.columns) == list(OHLCV_COLUMNS)
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert df.index.is_monotonic_increasing and df.index.is_unique


BAD_FILES = {
    "empty": ("", ["empty"]),
    "blank_lines_only": ("\n  \n\n", ["empty"]),
    "header_only": (HEADER, ["no rows"]),
    "no_close_column": ("Date,Open,Price\n2020-01-01,1,2\n", ["close", "'Date'", "'Open'", "'Price'"]),
    "bad_date": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-13-45,1,2,0.5,1.5,1.5,10\n",
        ["line 3", "2020-13-45"],
    ),
    "empty_date": (HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n,1,2,0.5,1.5,1.5,10\n", ["line 3", "Date"]),
    "non_numeric_price": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,abc,2,0.5,1.5,1.5,10\n",
        ["line 3", "Open", "abc"],
    ),
    "non_numeric_close": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,2,0.5,1.5x,1.5,10\n",
        ["line 3", "Close", "1.5x"],
    ),
    "negative_price": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,2,0.5,-1.5,1.5,10\n",
        ["line 3", "close"],
    ),
    "zero_price": (HEADER + "2020-01-02,0,2,0.5,1.5,1.5,10\n", ["line 2", "open"]),
    "inf_price": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,inf,0.5,1.5,1.5,10\n",
        ["line 3", "high"],
    ),
    "negative_volume": (HEADER + "2020-01-02,1,2,0.5,1.5,1.5,-10\n", ["line 2", "volume"]),
    "conflicting_duplicate": (
        HEADER
        + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,2,0.5,1.5,1.5,10\n2020-01-02,1,2,0.5,1.6,1.6,10\n",
        ["line 2", "line 4", "2020-01-02"],
    ),
    "blank_line_keeps_numbering": (
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n\n2020-01-04,1,2,0.5,oops,1.5,10\n",
        ["line 4", "oops"],
    ),
    "nul_bytes": (b"Date,Close\n2020-01-01,1\x00\x00\x00\n", ["not a text CSV"]),
    "binary_garbage": (bytes(range(1, 32)) * 50, ["not a text CSV"]),
    "ragged_rows": (HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10,7,8\n", ["malformed"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_data_error_naming_file_and_place(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    path = write(tmp_path, content, name=f"{case}.csv")
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_missing_file_is_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_ohlcv(tmp_path / "nope.csv")


def test_yahoo_style_prefers_close_over_adj_close_and_sorts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "2020-01-03,2,3,1.5,2.5,2.4,20\n2020-01-02,1,2,0.5,1.5,1.4,10\n",
    )
    df = load_ohlcv(path)
    assert_contract(df)
    assert df["close"].tolist() == [1.5, 2.5]
    assert df.index[0] == pd.Timestamp("2020-01-02", tz="UTC")
    assert df.loc["2020-01-03", "volume"].item() == 20.0


def test_adj_close_used_when_no_close_and_missing_columns_filled(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Adj Close\n2020-01-02,1.5\n2020-01-03,1.7\n")
    df = load_ohlcv(path)
    assert_contract(df)
    assert df["close"].tolist() == [1.5, 1.7]
    assert (df["open"] == df["close"]).all() and (df["high"] == df["close"]).all()
    assert (df["low"] == df["close"]).all() and (df["volume"] == 0.0).all()


def test_semicolon_delimiter_and_messy_headers(tmp_path: Path) -> None:
    path = write(tmp_path, " DATE ; open;HIGH;Low ; CLOSE ;Vol ume\n2020-01-02;1;2;0.5;1.5;10\n")
    df = load_ohlcv(path)
    assert_contract(df)
    assert df.iloc[0].tolist() == [1.0, 2.0, 0.5, 1.5, 10.0]


def test_tab_delimiter_with_separate_date_and_time(tmp_path: Path) -> None:
    path = write(tmp_path, "Date\tTime\tClose\n2020-01-02\t09:30:00\t5\n2020-01-02\t09:31:00\t6\n")
    df = load_ohlcv(path)
    assert_contract(df)
    assert list(df.index) == [
        pd.Timestamp("2020-01-02 09:30", tz="UTC"),
        pd.Timestamp("2020-01-02 09:31", tz="UTC"),
    ]


def test_histdata_headerless_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "20220103 170100;1.13010;1.13020;1.13000;1.13015;0\n20220103 170000;1.13000;1.13012;1.12990;1.13010;0\n",
    )
    df = load_ohlcv(path)
    assert_contract(df)
    assert df.index[0] == pd.Timestamp("2022-01-03 17:00:00", tz="UTC")
    assert df["close"].tolist() == [1.13010, 1.13015]


def test_histdata_bad_value_reports_line_without_header_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "20220103 170000;1.1;1.2;1.0;1.1;0\n20220103 170100;1.1;1.2;1.0;x;0\n")
    with pytest.raises(DataError, match="line 2, column 'close'"):
        load_ohlcv(path)
    rows = "20220103 170000;1.1;1.2;1.0;1.1;0\n20220103 1701;1.1;1.2;1.0;1.1;0\n20220103 170200;1.1;1.2;1.0;1.1;0\n"
    with pytest.raises(DataError, match="line 2.*'20220103 1701'"):
        load_ohlcv(write(tmp_path, rows, name="bad_time.csv"))


def test_timezones_naive_is_utc_aware_is_converted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Datetime,Close\n2020-01-02T10:00:00+02:00,1\n2020-01-02T09:30:00+02:00,2\n",
    )
    df = load_ohlcv(path)
    assert list(df.index) == [
        pd.Timestamp("2020-01-02 07:30", tz="UTC"),
        pd.Timestamp("2020-01-02 08:00", tz="UTC"),
    ]
    naive = load_ohlcv(write(tmp_path, "Timestamp,Close\n2020-01-02 10:00,1\n", name="naive.csv"))
    assert naive.index[0] == pd.Timestamp("2020-01-02 10:00", tz="UTC")


def test_identical_duplicates_dropped_silently(tmp_path: Path) -> None:
    row = "2020-01-02,1,2,0.5,1.5,1.5,10\n"
    path = write(tmp_path, HEADER + row + "2020-01-03,1,2,0.5,1.6,1.6,10\n" + row)
    df = load_ohlcv(path)
    assert len(df) == 2
    assert df.index.is_unique


def test_empty_close_kept_as_nan_for_cleaning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER + "2020-01-02,1,2,0.5,1.5,1.5,10\n2020-01-03,1,2,0.5,,,10\n2020-01-06,1,2,0.5,null,,10\n",
    )
    df = load_ohlcv(path)
    assert len(df) == 3
    assert df["close"].isna().tolist() == [False, True, True]


def test_latin1_file_is_text(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close,Note\n2020-01-02,1.5,caf\xe9\n".encode("latin-1"))
    assert load_ohlcv(path)["close"].tolist() == [1.5]


def test_committed_fixture_loads() -> None:
    df = load_ohlcv(FIXTURES / "ohlcv_yahoo_tiny.csv")
    assert_contract(df)
    assert len(df) == 10


def test_validate_ohlcv_names_source_and_normalises() -> None:
    index = pd.DatetimeIndex(["2020-01-03", "2020-01-02"])  # naive, unsorted
    df = pd.DataFrame({c: [2.0, 1.0] for c in OHLCV_COLUMNS}, index=index)
    out = validate_ohlcv(df, "my-source")
    assert_contract(out)
    assert out.index.dtype == "datetime64[ns, UTC]"
    df.loc[index[0], "low"] = -1.0
    with pytest.raises(DataError, match=r"my-source.*2020-01-03.*'low'"):
        validate_ohlcv(df, "my-source")
    with pytest.raises(DataError, match="my-source.*missing column"):
        validate_ohlcv(df.drop(columns="volume"), "my-source")


def test_yfinance_three_line_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Price,Close,High,Low,Open,Volume\nTicker,AAPL,AAPL,AAPL,AAPL,AAPL\nDate,,,,,\n"
        "2020-01-02,72.5,72.6,71.3,71.5,135480400\n2020-01-03,71.8,72.6,71.4,x,146322800\n",
    )
    with pytest.raises(DataError, match="line 5, column 'Open'"):
        load_ohlcv(path)
    path.write_text(path.read_text().replace(",x,", ",72.0,"))
    df = load_ohlcv(path)
    assert_contract(df)
    assert df["close"].tolist() == [72.5, 71.8]
    assert df["open"].tolist() == [71.5, 72.0]


def test_utf16_excel_export_is_text(tmp_path: Path) -> None:
    path = write(tmp_path, "Date\tClose\r\n2020-01-02\t1.5\r\n".encode("utf-16"))
    assert load_ohlcv(path)["close"].tolist() == [1.5]


def test_epoch_seconds_timestamps(tmp_path: Path) -> None:
    df = load_ohlcv(write(tmp_path, "timestamp,close\n1577923200,1.5\n1577923260,1.6\n"))
    assert df.index[0] == pd.Timestamp("2020-01-02", tz="UTC")


def test_headerless_non_histdata_file_gets_a_header_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no header line, add one"):
        load_ohlcv(write(tmp_path, "2020-01-02,1,2,0.5,1.5,10\n2020-01-03,1,2,0.5,1.5,10\n"))


def test_two_close_columns_are_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'Close' and 'close'"):
        load_ohlcv(write(tmp_path, "Date,Close,close \n2020-01-02,1,2\n"))
