"""Read a user's OHLCV CSV into the OHLCV contract, or say exactly what is wrong with it.

Users drop files from many sources into ``data/prices/``: Yahoo-style exports (``Date,Open,High,Low,Close,
Adj Close,Volume``), broker exports with ``;`` or tab delimiters and a separate Date and Time column, and
HistData's headerless ``YYYYMMDD HHMMSS;open;high;low;close;volume``. The loader accepts all of these and
turns every problem into a :class:`~wavefin_core.errors.DataError` that names the file, the line number in
the file (1-based, header included) and the column, so the user can open the file and fix it.

Policies:
- Header names are matched case-insensitively, ignoring spaces, ``_`` and ``-`` (``Adj Close`` == ``adj_close``).
- ``Close`` is preferred over ``Adj Close``; ``Adj Close`` is used only when there is no ``Close``.
- Missing ``open``/``high``/``low`` columns are filled from ``close``; a missing ``volume`` column becomes 0.
- Empty cells (and ``null``/``NaN``/``NA``/``N/A``/``-``) are kept as NaN: the missing-value policy lives in
  cleaning. A cell that is present but not a number is an error.
- Naive timestamps are taken as UTC (HistData's, which are EST without DST, included: shift them before
  loading if wall-clock alignment with other series matters); tz-aware ones are converted to UTC.
- Identical duplicate rows are dropped; two different rows with one timestamp are an error.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wavefin_core.data.validate import OHLCV_COLUMNS, validate_ohlcv
from wavefin_core.errors import DataError

_DELIMITERS = (",", ";", "\t")
_HISTDATA_FIRST_FIELD = re.compile(r"^\d{8} \d{6}$")
_MISSING_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none", "-"})
_BINARY_SNIFF_BYTES = 65536


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Load the CSV at ``path`` as an OHLCV frame (UTC ``DatetimeIndex`` named ``timestamp``, sorted).

    Raises :class:`DataError` naming the file and the line/column for every problem listed in the module
    docstring; the message always says how to fix the file.
    """
    path = Path(path)
    text = _read_text(path)
    first = next((i for i, line in enumerate(io.StringIO(text)) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; it needs a header line and at least one row of prices.")
    first_line = next(itertools.islice(io.StringIO(text), first, None))
    delimiter = _detect_delimiter(first_line)
    first_field = first_line.split(delimiter)[0].strip().strip('"')
    histdata = bool(_HISTDATA_FIRST_FIELD.match(first_field))

    raw, header_lines = _parse_table(path, text, delimiter, first, histdata)
    # pandas keeps blank lines (skip_blank_lines=False), so data row i sits on file line
    # first + header_lines + 1 + i (1-based).
    line_numbers = np.arange(len(raw)) + first + header_lines + 1
    raw = raw.apply(lambda column: column.str.strip())  # cells are compared and parsed stripped from here on
    blank = (raw == "").all(axis=1).to_numpy()
    raw, line_numbers = raw[~blank], line_numbers[~blank]
    if raw.empty:
        raise DataError(
            f"{path}: the file has a header but no rows of prices; add data rows below the header line."
        )

    columns = _map_columns(path, raw)
    timestamps = _parse_timestamps(path, raw, columns, line_numbers)
    frame = pd.DataFrame(index=timestamps)
    for name in ("close", "open", "high", "low", "volume"):
        if name in columns:
            frame[name] = _parse_numbers(path, raw[columns[name]], columns[name], line_numbers)
    for name in ("open", "high", "low"):
        if name not in frame:
            frame[name] = frame["close"]
    if "volume" not in frame:
        frame["volume"] = 0.0
    frame = frame[list(OHLCV_COLUMNS)]
    return validate_ohlcv(frame, str(path), row_labels=_LineLabels(line_numbers))


class _LineLabels(Sequence[str]):
    """``"line N"`` per row, formatted only when an error message needs one (files can have 1e6 rows)."""

    def __init__(self, line_numbers: np.ndarray) -> None:
        self._line_numbers = line_numbers

    def __len__(self) -> int:
        return len(self._line_numbers)

    def __getitem__(self, row: int) -> str:  # type: ignore[override]
        return f"line {self._line_numbers[row]}"


def _read_text(path: Path) -> str:
    """Read the file as text, refusing binary files rather than producing garbage rows."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found; check the path (CSV files go in data/prices/).") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc}).") from exc
    not_text = DataError(
        f"{path}: not a text CSV (binary content such as NUL bytes found); export the prices as a "
        "comma-, semicolon- or tab-separated text file."
    )
    head = data[:_BINARY_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export is UTF-16
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise not_text from exc
    elif b"\x00" in head:
        raise not_text
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    sample = text[:_BINARY_SNIFF_BYTES]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if sample and controls / len(sample) > 0.01:
        raise not_text
    return text


def _detect_delimiter(line: str) -> str:
    """The most frequent of ``,`` ``;`` and tab in the first line (header or first HistData row)."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _parse_table(
    path: Path, text: str, delimiter: str, first: int, histdata: bool
) -> tuple[pd.DataFrame, int]:
    """Every cell as a string, columns named from the header, plus the number of header lines.

    Besides a one-line header and HistData's none, yfinance's three-line header (``Price,Close,...`` /
    ``Ticker,AAPL,...`` / ``Date,,,``, written by ``yf.download(...).to_csv()``) is recognised.

    The header is read as a data row (``header=None``) so pandas never silently turns surplus leading fields
    into an index: a row with more fields than the first line is a :class:`DataError` with its line number.
    """
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            skiprows=first,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{path}: malformed CSV ({exc}; pandas counts lines from 1 including the header); every row "
            f"needs the same number of '{_printable(delimiter)}'-separated fields as the first line."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file is empty; it needs a header line and rows of prices.") from exc
    raw = raw.fillna("")
    if histdata:
        if raw.shape[1] < 5:
            raise DataError(
                f"{path}: looks like HistData (first field 'YYYYMMDD HHMMSS') but has {raw.shape[1]} fields; "
                "expected 'YYYYMMDD HHMMSS;open;high;low;close;volume'."
            )
        names = ["datetime", "open", "high", "low", "close", "volume"][: raw.shape[1]]
        raw.columns = names + [f"extra{i}" for i in range(raw.shape[1] - len(names))]
        return raw, 0
    header = [str(h).strip().strip('"') or f"column{i + 1}" for i, h in enumerate(raw.iloc[0])]
    header_lines = 1
    first_cells = [_normalise_name(v) for v in raw.iloc[1:3, 0]]
    if _normalise_name(header[0]) == "price" and first_cells[:1] == ["ticker"]:
        header_lines = 2
        if first_cells[1:2] and first_cells[1] in ("date", "datetime"):
            header[0], header_lines = str(raw.iloc[2, 0]).strip(), 3
        else:
            header[0] = "Date"
    raw = raw.iloc[header_lines:].reset_index(drop=True)
    raw.columns = header
    return raw, header_lines


def _printable(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


def _normalise_name(name: object) -> str:
    return re.sub(r"[\s_\-.]", "", str(name)).lower()


_TIME_KEYS = ("datetime", "timestamp", "date", "time")
_USED_KEYS = frozenset({"close", "adjclose", "open", "high", "low", "volume", *_TIME_KEYS})


def _map_columns(path: Path, raw: pd.DataFrame) -> dict[str, str]:
    """Map contract names (and ``datetime``/``timestamp``/``date``/``time``) to the file's column names."""
    found: dict[str, str] = {}
    for col in map(str, raw.columns):
        key = _normalise_name(col)
        if key in found and key in _USED_KEYS:
            raise DataError(
                f"{path}: columns '{found[key]}' and '{col}' mean the same thing; keep only one of them."
            )
        found.setdefault(key, col)
    listed = list(map(str, raw.columns))
    close_key = "close" if "close" in found else "adjclose" if "adjclose" in found else None
    if close_key is None:
        raise DataError(
            f"{path}: no close column; found columns {listed}. Add a 'Close' (or 'Adj Close') column with "
            "the closing prices (if the file has no header line, add one: Date,Open,High,Low,Close,Volume)."
        )
    columns = {"close": found[close_key]}
    columns.update(
        {key: found[key] for key in ("open", "high", "low", "volume", *_TIME_KEYS) if key in found}
    )
    if not any(key in columns for key in _TIME_KEYS):
        raise DataError(
            f"{path}: no date/time column; found columns {listed}. "
            "Name the time column 'Date', 'Datetime', 'Timestamp' or 'Time'."
        )
    return columns


def _parse_timestamps(
    path: Path, raw: pd.DataFrame, columns: dict[str, str], line_numbers: np.ndarray
) -> pd.DatetimeIndex:
    if "datetime" in columns or "timestamp" in columns:
        text = raw[columns.get("datetime", columns.get("timestamp"))]
        column = columns.get("datetime", columns.get("timestamp"))
    elif "date" in columns and "time" in columns:
        text = raw[columns["date"]] + " " + raw[columns["time"]]
        column = f"{columns['date']} + {columns['time']}"
    else:
        column = columns.get("date", columns.get("time"))
        text = raw[column]
    parsed = _to_utc(text)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{path}: line {line_numbers[i]}, column '{column}': cannot parse date/time {text.iloc[i]!r} "
            f"({bad.size} bad row(s)). Use ISO dates like 2024-01-31 or 2024-01-31 15:30:00."
        )
    return pd.DatetimeIndex(parsed)


def _to_utc(text: pd.Series) -> pd.Series:
    """Parse timestamps (NaT where a value cannot be parsed), recognising the formats users actually send.

    A format is chosen when most values match it, so one bad value is reported as that row's error rather
    than switching the whole column to another format.
    """
    histdata = text.str.fullmatch(r"\d{8} \d{6}")
    if histdata.mean() > 0.5:  # strptime alone would accept "1701" as a time; require all six digits
        return pd.to_datetime(text.where(histdata), format="%Y%m%d %H%M%S", utc=True, errors="coerce")
    for digits, unit in ((10, "s"), (13, "ms")):  # Unix epoch seconds / milliseconds
        matches = text.str.fullmatch(rf"\d{{{digits}}}")
        if matches.mean() > 0.5:
            seconds = pd.to_numeric(text.where(matches), errors="coerce")
            return pd.to_datetime(seconds, unit=unit, utc=True)
    best = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    if best.isna().any():
        inferred = pd.to_datetime(text, utc=True, errors="coerce")
        if inferred.isna().sum() < best.isna().sum():
            best = inferred
    return best


def _parse_numbers(path: Path, text: pd.Series, column: str, line_numbers: np.ndarray) -> np.ndarray:
    """float64 values, NaN for empty/missing tokens; any other non-number is a DataError."""
    missing = text.str.lower().isin(_MISSING_TOKENS).to_numpy()
    values = pd.to_numeric(text.where(~missing, None), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = np.flatnonzero(np.isnan(values) & ~missing)
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{path}: line {line_numbers[i]}, column '{column}': {text.iloc[i]!r} is not a number "
            f"({bad.size} bad row(s)). Use plain numbers with '.' as the decimal point."
        )
    return values
