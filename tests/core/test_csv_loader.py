"""load_ohlcv: accepted formats parse to the contract; every bad file fails with file + row/column named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wavefin_core.data import OHLCV_COLUMNS, csv_loader, load_ohlcv, validate_ohlcv
from wavefin_core.errors import ConfigError, DataError

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


# --- dates: day-first vs month-first is decided by the data, or by date_format ---------------------------


def test_day_first_dates_are_inferred_when_a_day_exceeds_12(tmp_path: Path) -> None:
    df = load_ohlcv(write(tmp_path, "Date,Close\n02/01/2024,1\n13/01/2024,1.1\n"))
    assert list(df.index) == [pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-13", tz="UTC")]
    month_first = load_ohlcv(write(tmp_path, "Date,Close\n01/13/2024 09:30,1\n02/01/2024 09:30,1.1\n", "m.csv"))
    assert month_first.index[-1] == pd.Timestamp("2024-02-01 09:30", tz="UTC")
    short_year = load_ohlcv(write(tmp_path, "Date;Close\n31.01.24;1\n01.02.24;1.1\n", "dots.csv"))
    assert short_year.index[0] == pd.Timestamp("2024-01-31", tz="UTC")


def test_ambiguous_dates_are_refused_naming_date_format(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close\n02/01/2024 10:00,1\n03/01/2024 10:00,1.1\n")
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    message = str(info.value)
    for fragment in (str(path), "line 2", "'Date'", "date_format='%d/%m/%Y %H:%M'", "'%m/%d/%Y %H:%M'"):
        assert fragment in message, message
    assert load_ohlcv(path, date_format="%d/%m/%Y %H:%M").index[0] == pd.Timestamp("2024-01-02 10:00", tz="UTC")
    assert load_ohlcv(path, date_format="%m/%d/%Y %H:%M").index[0] == pd.Timestamp("2024-02-01 10:00", tz="UTC")
    # Dates equal in both readings (01/01, 02/02, ...) are not ambiguous.
    assert len(load_ohlcv(write(tmp_path, "Date,Close\n01/01/2024,1\n02/02/2024,1\n", "same.csv"))) == 2


def test_mixed_orders_bad_calendar_dates_and_wrong_date_format_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mixes day-first.*line 2.*month-first.*line 3"):
        load_ohlcv(write(tmp_path, "Date,Close\n13/01/2024,1\n01/13/2024,1\n"))
    with pytest.raises(DataError, match=r"line 2, column 'Date': 31/2/2024 .* not a calendar date"):
        load_ohlcv(write(tmp_path, "Date,Close\n31/02/2024,1\n13/01/2024,1\n", "cal.csv"))
    with pytest.raises(DataError, match=r"line 3, column 'Date'.*date_format option is '%d/%m/%Y'"):
        load_ohlcv(write(tmp_path, "Date,Close\n02/01/2024,1\n2024-01-03,1\n", "fmt.csv"), date_format="%d/%m/%Y")
    with pytest.raises(ConfigError, match="date_format"):
        load_ohlcv(write(tmp_path, "Date,Close\n2024-01-02,1\n", "ok.csv"), date_format="dayfirst")


def test_twelve_hour_clock_and_unprovable_formats(tmp_path: Path) -> None:
    df = load_ohlcv(write(tmp_path, "Date,Close\n02/01/2024 1:05 PM,1\n13/01/2024 12:00 AM,1\n"))
    assert list(df.index) == [pd.Timestamp("2024-01-02 13:05", tz="UTC"), pd.Timestamp("2024-01-13", tz="UTC")]
    with pytest.raises(DataError, match=r"date_format='%d/%m/%Y %I:%M %p'"):
        load_ohlcv(write(tmp_path, "Date,Close\n02/01/2024 1:05 PM,1\n", "amb.csv"))
    # A numeric date with a suffix the loader cannot take apart is refused, never guessed month-first.
    with pytest.raises(DataError, match=r"'02/01/2024 10:00 \+0100'.*date_format"):
        load_ohlcv(write(tmp_path, "Date,Close\n02/01/2024 10:00 +0100,1\n", "tz.csv"))


# --- absurd prices ----------------------------------------------------------------------------------------


def test_implausible_log_return_is_refused_naming_the_row_and_the_bound(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close\n2024-01-02,100\n2024-01-03,1e308\n2024-01-04,101\n")
    with pytest.raises(DataError) as info:
        load_ohlcv(path)
    message = str(info.value)
    for fragment in (str(path), "line 3", "'close'", "log return of 705", "max_abs_log_return=3"):
        assert fragment in message, message
    # The bound is a knob: a real 30x move passes when raised, inf disables the check, <= 0 is a ConfigError.
    rally = write(tmp_path, "Date,Close\n2024-01-02,1\n2024-01-03,30\n", "rally.csv")
    with pytest.raises(DataError, match="line 3"):
        load_ohlcv(rally)
    assert load_ohlcv(rally, max_abs_log_return=4.0)["close"].tolist() == [1.0, 30.0]
    assert len(load_ohlcv(path, max_abs_log_return=float("inf"))) == 3
    with pytest.raises(ConfigError, match="max_abs_log_return"):
        load_ohlcv(rally, max_abs_log_return=0)


def test_missing_closes_do_not_hide_a_jump(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 4, column 'close'.*\(line 2\)"):
        load_ohlcv(write(tmp_path, "Date,Close\n2024-01-02,100\n2024-01-03,\n2024-01-04,99999\n"))


# --- rows: blank lines, short rows, text fallback, encodings -----------------------------------------------


def test_short_row_is_malformed_and_padded_or_missing_tokens_parse(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"malformed CSV: line 3 has 2 fields but the first line has 3"):
        load_ohlcv(write(tmp_path, "Date,Open,Close\n2024-01-02,1,2\n2024-01-03,1\n"))
    df = load_ohlcv(write(tmp_path, "Date,Close\n2024-01-02, 1.5 \n2024-01-03,N/A\n2024-01-04,-\n", "pad.csv"))
    assert df["close"].iloc[0] == 1.5 and df["close"].iloc[1:].isna().all()


def test_non_utf8_date_cell_is_reported_not_crashed(tmp_path: Path) -> None:
    path = write(tmp_path, "Date,Close\n2024-01-02,1\n2024-01-03\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"line 3, column 'Date'.*2024-01-03\xe9"):
        load_ohlcv(path)


def test_streaming_over_many_blocks_keeps_line_numbers_and_values(tmp_path: Path, monkeypatch) -> None:
    """A few-MB file read in 256 KB blocks (~12 blocks) with blank, whitespace-only and delimiter-only lines
    scattered through it: values equal a plain pandas read, and an error near the end names its exact line."""
    monkeypatch.setattr(csv_loader, "BLOCK_BYTES", 256 * 1024)
    rows = 50_000
    rng = np.random.default_rng(1)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows))), 6)
    times = pd.date_range("2020-01-01", periods=rows, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    lines = [f"{t},{c},{c},{c},{c},7" for t, c in zip(times, close, strict=True)]
    for position, filler in ((1000, ""), (20_000, "   "), (30_000, ",,,,,"), (45_000, "")):
        lines.insert(position, filler)
    text = "Date,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n"
    path = write(tmp_path, text)
    assert path.stat().st_size > 2_500_000
    df = load_ohlcv(path)
    assert_contract(df)
    assert len(df) == rows
    np.testing.assert_array_equal(df["close"].to_numpy(), close)  # same decimal strings, same parser: exact
    assert df.index[-1] == pd.Timestamp(times[-1], tz="UTC")

    bad_at = len(lines) - 5  # 0-based among data lines; the file line is that + 2 (header, 1-based)
    lines[bad_at] = lines[bad_at].replace(",7", ",seven")
    with pytest.raises(DataError, match=rf"line {bad_at + 2}, column 'Volume': 'seven'"):
        load_ohlcv(write(tmp_path, "Date,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n", "bad.csv"))


def test_output_grows_when_lines_get_shorter_than_the_sampled_ones(tmp_path: Path) -> None:
    """The output arrays are sized from the first 64 KB; a file whose later lines are much shorter outgrows
    them, and the values must come through intact."""
    long_rows = [f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{100 + i},{'x' * 120}" for i in range(500)]
    times = pd.date_range("2020-01-02", periods=40_000, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    short_rows = [f"{t},{i % 50 + 100}," for i, t in enumerate(times)]
    df = load_ohlcv(write(tmp_path, "Date,Close,Note\n" + "\n".join(long_rows + short_rows) + "\n"))
    expected = np.concatenate([100 + np.arange(500), np.arange(40_000) % 50 + 100]).astype(float)
    np.testing.assert_array_equal(df["close"].to_numpy(), expected)


# --- the fast (multi-threaded) pass and its fallback to the exact pass ------------------------------------


def _minute_bars(rows: int, seed: int = 2) -> list[str]:
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, rows))), 6)
    times = pd.date_range("2021-03-01", periods=rows, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    return [f"{t},{c},{c},{c},{c},{i % 97}" for i, (t, c) in enumerate(zip(times, close, strict=True))]


def _load_both(path: Path, monkeypatch, **kwargs) -> tuple[object, object, list]:
    """load_ohlcv with the fast pass, then with the exact pass only; each result is a frame or the DataError's
    message. Also returns the passes the fast-pass load ran (the loader's own _stream, wrapped to record them)."""
    monkeypatch.setattr(csv_loader, "BLOCK_BYTES", 64 * 1024)
    monkeypatch.setattr(csv_loader, "FAST_BLOCK_BYTES", 64 * 1024)
    passes: list = []
    stream = csv_loader._stream

    def recording_stream(*args):
        passes.append(args[-1])
        return stream(*args)

    results = []
    for fast in (True, False):
        monkeypatch.setattr(csv_loader, "FAST_PASS", fast)
        monkeypatch.setattr(csv_loader, "_stream", recording_stream if fast else stream)
        try:
            results.append(load_ohlcv(path, **kwargs))
        except DataError as exc:
            results.append(str(exc))
    return results[0], results[1], passes


@pytest.mark.parametrize(
    "case",
    ["iso", "iso_offsets", "date_and_time_columns", "blank_row_deep_inside", "whitespace_line_deep_inside", "histdata"],
)
def test_fast_pass_gives_the_exact_pass_frame(tmp_path: Path, monkeypatch, case: str) -> None:
    """A multi-block file (64 KB blocks, ~20 of them) read by the threaded fast pass equals the exact pass's
    frame bit for bit: the same pyarrow float parser, and timestamps are integers either way."""
    lines = _minute_bars(20_000)
    header = "Date,Open,High,Low,Close,Volume"
    if case == "iso_offsets":
        lines = [line.replace(":00,", ":00+02:00,", 1) for line in lines]
    elif case == "date_and_time_columns":
        header, lines = "Date,Time,Open,High,Low,Close,Volume", [line.replace(" ", ",", 1) for line in lines]
    elif case == "blank_row_deep_inside":
        lines.insert(15_000, ",,,,,")
    elif case == "whitespace_line_deep_inside":
        lines.insert(15_000, "   ")
    elif case == "histdata":
        header = ""
        lines = [line.replace("-", "").replace(":", "").replace(",", ";") for line in lines]
    path = write(tmp_path, (header + "\n" if header else "") + "\n".join(lines) + "\n")
    fast, exact, passes = _load_both(path, monkeypatch)
    assert isinstance(fast, pd.DataFrame), fast
    assert_contract(fast)
    assert len(fast) == 20_000
    pd.testing.assert_frame_equal(fast, exact)
    assert passes[0].threads  # the fast pass ran first...
    if case in ("iso", "iso_offsets"):
        assert passes == passes[:1] and passes[0].native_times is not None  # ...and parsed the ISO times itself
    if case == "whitespace_line_deep_inside":  # ...but left a line it cannot number to the exact pass
        assert not passes[-1].threads


BAD_DEEP_INSIDE = {
    "bad_number": (lambda lines: lines.__setitem__(18_000, lines[18_000].rsplit(",", 1)[0] + ",zero"), "line 18002"),
    "blank_line_then_bad_number": (
        lambda lines: (lines.insert(9_000, ""), lines.__setitem__(18_000, lines[18_000][:-2] + ",x")),
        "line 18002",
    ),
    "ragged_row": (lambda lines: lines.__setitem__(17_000, lines[17_000] + ",9"), "line 17002"),
    "bad_date": (lambda lines: lines.__setitem__(16_000, "2021-02-30" + lines[16_000][10:]), "line 16002"),
    "empty_date": (lambda lines: lines.__setitem__(16_000, lines[16_000][19:]), "line 16002"),
    "conflicting_duplicate": (
        lambda lines: lines.__setitem__(19_000, lines[100].rsplit(",", 1)[0] + ",1000"),
        "line 102 and line 19002 share timestamp",
    ),
    "absurd_jump": (lambda lines: lines.__setitem__(19_500, lines[19_500].replace(",", ",1e300,", 1)), "line 19502"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEEP_INSIDE))
def test_fast_pass_falls_back_to_the_same_error(tmp_path: Path, monkeypatch, case: str) -> None:
    """A problem deep inside a multi-block file: the fast pass gives the very same DataError as the exact pass
    (the message names the line counted with every blank line before it)."""
    lines = _minute_bars(20_000)
    corrupt, fragment = BAD_DEEP_INSIDE[case]
    corrupt(lines)
    path = write(tmp_path, "Date,Open,High,Low,Close,Volume\n" + "\n".join(lines) + "\n")
    fast, exact, _ = _load_both(path, monkeypatch)
    assert isinstance(exact, str) and fragment in exact, exact
    assert fast == exact


def test_timestamp_fast_paths_read_what_pandas_reads() -> None:
    """The ISO and HistData fast paths give pandas' instant for every value they take, and decline (None, so
    pandas decides) a block with any value they would read differently or not at all."""
    from wavefin_core.data.timestamps import _histdata_fast, _iso_fast

    pa = pytest.importorskip("pyarrow")
    naive = ["2024-01-31", "2024-01-31 15:30", "2024-01-31T15:30:00.123456789", "2024-02-29 00"]
    aware = ["2024-01-31T15:30:00+02:00", "2024-01-31T15:30:00Z", "2024-01-31 15:30:00-0130"]
    for values in (naive, aware):
        expected = pd.to_datetime(pd.Series(values), format="ISO8601", utc=True).dt.as_unit("ns").array.asi8
        np.testing.assert_array_equal(_iso_fast(pa.array(values)), expected)
    for odd in ("2024-1-31", "2024-02-30", " 2024-01-31", "2024", "2024-01-31 15:30:00 +02:00", "31/01/2024"):
        assert _iso_fast(pa.array(["2024-01-30", odd])) is None, odd
    assert _iso_fast(pa.array(naive[:1] + aware[:1])) is None  # naive and aware mixed: pandas' business

    stamps = pd.date_range("1999-12-31 23:59:59", periods=5000, freq="7h13min11s")
    text = pa.array(stamps.strftime("%Y%m%d %H%M%S").tolist())
    np.testing.assert_array_equal(_histdata_fast(text[3:]), stamps[3:].as_unit("ns").asi8)  # a sliced array
    for odd in ("20230229 000000", "20241301 000000", "20240101 240000", "20240101 1700", "２0240101 000000"):
        assert _histdata_fast(pa.array(["20240101 000000", odd])) is None, odd
