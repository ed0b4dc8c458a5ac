"""Read a user's OHLCV CSV into the OHLCV contract, or say exactly what is wrong with it.

Users drop files from many sources into ``data/prices/``: Yahoo-style exports (``Date,Open,High,Low,Close,
Adj Close,Volume``), broker exports with ``;`` or tab delimiters and a separate Date and Time column, and
HistData's headerless ``YYYYMMDD HHMMSS;open;high;low;close;volume``. The loader accepts all of these and
turns every problem into a :class:`~wavefin_core.errors.DataError` that names the file, the line number in
the file (1-based, header included) and the column, so the user can open the file and fix it.

Memory: files can be gigabytes (15 million minute bars is ~1 GB of text), so the file is never held in
memory as text or as Python strings. The header is sniffed from the first 64 KB; the data is read by
``pyarrow.csv`` in blocks with explicit column types, prices parsed straight to float64, only the used columns
converted, and each block's timestamps parsed as the block is handed on. The result is one ``(5, rows)``
float64 block that becomes the frame without a copy. The fast pass (below) first holds pyarrow's parsed
columns (about the frame's size), handing each block on and freeing it as the output fills; the exact pass
streams. Peak memory is about the frame plus its timestamps plus a few blocks: 1.04x the file at 1 GB,
measured by ``bench/bench_ingest.py``. UTF-16 files (Excel's "Unicode text") are the exception: they are
transcoded in memory first.

Speed: two passes, the second only when the first cannot finish. The **fast pass** reads with pyarrow's
table reader, which parses blocks (:data:`FAST_BLOCK_BYTES`) on every core (its streaming reader keeps to one
thread), and, when the first lines' times are ISO 8601 that pyarrow reads exactly as pandas does, parses the
time column inside pyarrow too (no Python strings). It gives up at the first thing that needs care: a row
with the wrong number of fields or a whitespace-only line (a threaded reader cannot tell its line number), an
empty or unparseable time cell, or any :class:`DataError`. The **exact pass** is then the single-threaded
streaming read (:data:`BLOCK_BYTES`; pyarrow reports every skipped line's number) that owns every message, so
a bad file fails with the very same error whatever the fast pass saw, and a clean file never pays for it.

Policies:
- Header names are matched case-insensitively, ignoring spaces, ``_`` and ``-`` (``Adj Close`` == ``adj_close``).
- ``Close`` is preferred over ``Adj Close``; ``Adj Close`` is used only when there is no ``Close``.
- Missing ``open``/``high``/``low`` columns are filled from ``close``; a missing ``volume`` column becomes 0.
- Empty cells (and ``null``/``NaN``/``NA``/``N/A``/``-``) are kept as NaN: the missing-value policy lives in
  cleaning. A cell that is present but not a number is an error.
- Blank lines are skipped; a row with more or fewer fields than the first line is an error.
- Dates: see :mod:`wavefin_core.data.timestamps` (``02/01/2024`` is never silently read month-first; pass
  ``date_format`` when the file cannot tell).
- Naive timestamps are taken as UTC (HistData's, which are EST without DST, included: shift them before
  loading if wall-clock alignment with other series matters); tz-aware ones are converted to UTC.
- Identical duplicate rows are dropped; two different rows with one timestamp are an error.
- A jump between consecutive closes above ``max_abs_log_return`` (default 3.0, a 20x move) is an error naming
  the row: it is a typo or a placeholder, not a price.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from wavefin_core.data.timestamps import TimestampParser
from wavefin_core.data.validate import (
    DEFAULT_MAX_ABS_LOG_RETURN,
    OHLCV_COLUMNS,
    RowLabels,
    check_log_returns,
    checked_return_bound,
    validate_block,
)
from wavefin_core.errors import ConfigError, DataError

_DELIMITERS = (",", ";", "\t")
_HISTDATA_FIRST_FIELD = re.compile(r"^\d{8} \d{6}$")
_MISSING_TOKENS = frozenset({"", "nan", "null", "na", "n/a", "none", "-"})
#: pyarrow matches null tokens exactly, so spell out the case variants people write.
_NULL_VALUES = sorted({v for t in _MISSING_TOKENS for v in (t, t.upper(), t.capitalize(), t.title())})
_SNIFF_BYTES = 65536
_CONTROL_BYTES = bytes(sorted(set(range(32)) - {9, 10, 13}))
#: Bytes of CSV text per block in the exact (single-thread) pass: large enough for pyarrow to parse fast, small
#: enough that one block's transient strings (the timestamps) stay a few MB (2 MB measured ~10% lower peak RSS
#: than 8 MB, same speed).
BLOCK_BYTES = 2 * 2**20
#: Bytes per block in the fast (multi-threaded) pass: pyarrow's own default, the unit its threads share out.
FAST_BLOCK_BYTES = 2**20
#: False skips the fast pass (every file is read by the exact pass); the tests compare the two.
FAST_PASS = True


def load_ohlcv(
    path: str | Path,
    *,
    date_format: str | None = None,
    max_abs_log_return: float = DEFAULT_MAX_ABS_LOG_RETURN,
) -> pd.DataFrame:
    """Load the CSV at ``path`` as an OHLCV frame (UTC ``DatetimeIndex`` named ``timestamp``, sorted).

    ``date_format`` (strptime codes, e.g. ``"%d/%m/%Y"``) fixes how the date/time column is read; leave it None
    to detect it. ``max_abs_log_return`` bounds the jump between consecutive closes (``inf`` disables it).
    Raises :class:`DataError` naming the file and the line/column for every problem listed in the module
    docstring; the message always says how to fix the file.
    """
    path = Path(path)
    if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
        raise ConfigError(
            f"date_format={date_format!r} must be a strptime format such as '%d/%m/%Y' or '%m/%d/%Y %H:%M' "
            "(or None to detect the format)."
        )
    bound = checked_return_bound(max_abs_log_return)
    source = _Source.open(path)
    layout = _sniff_layout(path, source)
    columns = _map_columns(path, layout.header)
    rows = _read_rows(path, source, layout, columns, date_format)
    pa.default_memory_pool().release_unused()  # the read-ahead blocks' pages, before the index and checks

    # copy=False: pandas 3 would copy the stamps once more before tz_localize's copy (8 bytes a row).
    naive = pd.DatetimeIndex(rows.timestamps.view("datetime64[ns]"), copy=False)
    index = naive.tz_localize("UTC").rename("timestamp")
    del naive
    rows.timestamps = np.empty(0, dtype=np.int64)
    labels = RowLabels(index, rows.lines, str(path))
    frame, labels = validate_block(rows.block, index, str(path), labels)
    check_log_returns(frame, str(path), bound, labels)
    return frame


# --- the raw bytes --------------------------------------------------------------------------------------


@dataclass
class _Source:
    """The file's bytes: the path (streamed), or a transcoded in-memory copy for UTF-16 files."""

    path: Path
    head: bytes
    data: bytes | None = None  # set for UTF-16 files, transcoded to UTF-8

    @classmethod
    def open(cls, path: Path) -> _Source:
        try:
            with path.open("rb") as handle:
                head = handle.read(_SNIFF_BYTES)
        except FileNotFoundError as exc:
            raise DataError(f"{path}: file not found; check the path (CSV files go in data/prices/).") from exc
        except OSError as exc:
            raise DataError(f"{path}: cannot read the file ({exc}).") from exc
        not_text = DataError(
            f"{path}: not a text CSV (binary content such as NUL bytes found); export the prices as a "
            "comma-, semicolon- or tab-separated text file."
        )
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" export is UTF-16
            try:
                data = path.read_bytes().decode("utf-16").encode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_text from exc
            source = cls(path, data[:_SNIFF_BYTES], data)
        elif b"\x00" in head:
            raise not_text
        else:
            source = cls(path, head)
        sample = source.head.decode("utf-8", errors="replace")
        # Control characters other than tab/CR/LF, counted on the bytes (UTF-8 encodes them as themselves).
        controls = len(source.head) - len(source.head.translate(None, _CONTROL_BYTES))
        if sample and controls / len(sample) > 0.01:
            raise not_text
        return source

    def stream(self, offset: int) -> pa.NativeFile:
        """A native Arrow file at ``offset`` (a Python file object would make Arrow read ahead into ~60 MB of
        Python bytes objects it cannot account for)."""
        if self.data is not None:
            return pa.BufferReader(self.data[offset:])
        handle = pa.OSFile(str(self.path), "r")
        handle.seek(offset)
        return handle

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size


@dataclass
class _Layout:
    delimiter: str
    histdata: bool
    header: list[str]
    data_line: int  # 1-based line number of the first line after the header
    data_offset: int  # byte offset of that line
    row_bytes: int = 1  # a lower estimate of one data line's bytes (sizes the output arrays)


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _sniff_layout(path: Path, source: _Source) -> _Layout:
    """Delimiter, header and where the data starts, from the first 64 KB.

    Besides a one-line header and HistData's none, yfinance's three-line header (``Price,Close,...`` /
    ``Ticker,AAPL,...`` / ``Date,,,``, written by ``yf.download(...).to_csv()``) is recognised.
    """
    raw_lines = source.head.split(b"\n")
    lines = [_decode(raw).rstrip("\r") for raw in raw_lines]
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise DataError(f"{path}: the file is empty; it needs a header line and at least one row of prices.")
    delimiter = _detect_delimiter(lines[first])
    fields = _split(lines[first], delimiter)
    histdata = bool(_HISTDATA_FIRST_FIELD.match(fields[0].strip().strip('"')))
    if histdata:
        if len(fields) < 5:
            raise DataError(
                f"{path}: looks like HistData (first field 'YYYYMMDD HHMMSS') but has {len(fields)} fields; "
                "expected 'YYYYMMDD HHMMSS;open;high;low;close;volume'."
            )
        names = ["datetime", "open", "high", "low", "close", "volume"][: len(fields)]
        header = names + [f"extra{i}" for i in range(len(fields) - len(names))]
        header_lines = 0
    else:
        header = [h.strip().strip('"') or f"column{i + 1}" for i, h in enumerate(fields)]
        header_lines = 1
        following = [_normalise_name(_split(line, delimiter)[0]) for line in lines[first + 1 : first + 3]]
        if _normalise_name(header[0]) == "price" and following[:1] == ["ticker"]:
            header_lines = 2
            if following[1:2] and following[1] in ("date", "datetime"):
                header[0], header_lines = _split(lines[first + 2], delimiter)[0].strip(), 3
            else:
                header[0] = "Date"
    start = first + header_lines
    offset = sum(len(raw) + 1 for raw in raw_lines[:start])
    if start == 0 and source.head.startswith(b"\xef\xbb\xbf"):
        offset = 3  # a UTF-8 byte-order mark before headerless data
    sample = [len(raw) + 1 for raw in raw_lines[start:-1] if raw.strip()][:1000]
    row_bytes = min(sample) if sample else len(header)
    return _Layout(delimiter, histdata, header, data_line=start + 1, data_offset=offset, row_bytes=row_bytes)


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter), None) or [""]


def _detect_delimiter(line: str) -> str:
    """The most frequent of ``,`` ``;`` and tab in the first line (header or first HistData row)."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _printable(delimiter: str) -> str:
    return "\\t" if delimiter == "\t" else delimiter


def _normalise_name(name: object) -> str:
    return re.sub(r"[\s_\-.]", "", str(name)).lower()


_TIME_KEYS = ("datetime", "timestamp", "date", "time")
_USED_KEYS = frozenset({"close", "adjclose", "open", "high", "low", "volume", *_TIME_KEYS})


def _map_columns(path: Path, header: list[str]) -> dict[str, int]:
    """Map contract names (and ``datetime``/``timestamp``/``date``/``time``) to the file's column positions."""
    found: dict[str, int] = {}
    for position, col in enumerate(header):
        key = _normalise_name(col)
        if key in found and key in _USED_KEYS:
            raise DataError(
                f"{path}: columns '{header[found[key]]}' and '{col}' mean the same thing; keep only one of them."
            )
        found.setdefault(key, position)
    close_key = "close" if "close" in found else "adjclose" if "adjclose" in found else None
    if close_key is None:
        raise DataError(
            f"{path}: no close column; found columns {header}. Add a 'Close' (or 'Adj Close') column with "
            "the closing prices (if the file has no header line, add one: Date,Open,High,Low,Close,Volume)."
        )
    columns = {"close": found[close_key]}
    columns.update({key: found[key] for key in ("open", "high", "low", "volume", *_TIME_KEYS) if key in found})
    if not any(key in columns for key in _TIME_KEYS):
        raise DataError(
            f"{path}: no date/time column; found columns {header}. "
            "Name the time column 'Date', 'Datetime', 'Timestamp' or 'Time'."
        )
    return columns


# --- streaming the rows ---------------------------------------------------------------------------------


class _LineMap:
    """Row -> line number in the file, computed only when a message needs it.

    pyarrow turns every line after the header into a row except whitespace-only lines, which are skipped (and
    recorded); rows that are blank (no date, no values) are dropped afterwards (also recorded). Both lists are
    empty in a clean file, so a lookup is O(1) there.
    """

    def __init__(self, data_line: int) -> None:
        self.data_line = data_line
        self.skipped_lines: list[int] = []  # 1-based line numbers counted from the first data line
        self.dropped_rows: list[int] = []  # pyarrow row numbers of blank rows
        self.n_rows = 0

    def line_of_arrow_row(self, row: int) -> int:
        line = row + 1
        for skipped in self.skipped_lines:
            if skipped <= line:
                line += 1
            else:
                break
        return self.data_line - 1 + line

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, row: int) -> str:
        arrow_row = row
        for dropped in self.dropped_rows:
            if dropped <= arrow_row:
                arrow_row += 1
            else:
                break
        return f"line {self.line_of_arrow_row(arrow_row)}"


@dataclass
class _Rows:
    block: np.ndarray  # (5, rows) float64 in OHLCV_COLUMNS order
    timestamps: np.ndarray  # (rows,) int64 ns UTC
    lines: _LineMap = field(repr=False)


@dataclass(frozen=True)
class _Pass:
    """How one read of the data lines runs; the default is the exact pass (see the module docstring)."""

    threads: bool = False  # the fast pass: pyarrow's threads, no line numbers for rows it cannot parse
    typed: bool = True  # prices parsed to float64 by pyarrow (else as text, to name a bad cell)
    encoding: str = "utf8"
    native_times: pa.DataType | None = None  # the time column parsed by pyarrow as this timestamp type


class _Retry(Exception):
    """Restart the read in a slower, more forgiving mode."""

    def __init__(self, mode: _Pass) -> None:
        super().__init__(f"retry {mode}")
        self.mode = mode


def _read_rows(
    path: Path, source: _Source, layout: _Layout, columns: dict[str, int], date_format: str | None
) -> _Rows:
    """Stream the data lines: the fast pass first (when :data:`FAST_PASS`), and the exact pass if the fast one
    gives up or finds a problem. Either starts with prices typed as float64 by pyarrow and, only if a cell is
    not a number, reads again with every cell as text so the bad cell's line and value can be reported exactly
    (and again as latin-1 if the file is not UTF-8)."""
    mode = _Pass()
    if FAST_PASS:
        mode = _Pass(threads=True, native_times=_native_time_type(source, layout, columns, date_format))
    while True:
        try:
            return _stream(path, source, layout, columns, date_format, mode)
        except _Retry as retry:
            mode = retry.mode
        except DataError:
            if not mode.threads:
                raise
            mode = _Pass()  # the exact pass owns every message, so the error is the one it gives


def _stream(
    path: Path,
    source: _Source,
    layout: _Layout,
    columns: dict[str, int],
    date_format: str | None,
    mode: _Pass,
) -> _Rows:
    """One pass over the data lines: per block, drop blank rows, parse the times and the values, append."""
    typed = mode.typed
    names = [f"f{i}" for i in range(len(layout.header))]
    time_keys = _time_keys(columns)
    time_columns = [names[columns[k]] for k in time_keys]
    value_keys = [k for k in ("close", "open", "high", "low", "volume") if k in columns]
    value_columns = {k: names[columns[k]] for k in value_keys}
    lines = _LineMap(layout.data_line)
    times = TimestampParser(path, " + ".join(layout.header[columns[k]] for k in time_keys), date_format)
    out = _Columns(value_keys, estimated_rows=source.size() // max(1, layout.row_bytes))
    arrow_rows = 0
    for batch in _batches(path, source, layout, names, time_columns, value_columns, mode, lines):
        first_row = arrow_rows
        arrow_rows += batch.num_rows
        if mode.native_times is not None:
            out.append_parsed(batch, value_columns, time_columns[0], mode)
            continue
        time_text = _time_text(batch, time_columns)
        if typed:
            values = {k: batch.column(col).to_numpy(zero_copy_only=False) for k, col in value_columns.items()}
            empty_values = [np.isnan(v) for v in values.values()]
        else:
            text = {k: pc.utf8_trim_whitespace(batch.column(col)) for k, col in value_columns.items()}
            empty_values = [pc.equal(t, "").to_numpy(zero_copy_only=False) for t in text.values()]
        blank = pc.equal(time_text, "").to_numpy(zero_copy_only=False) & np.logical_and.reduce(empty_values)
        keep = ~blank
        kept_rows = np.flatnonzero(keep)
        if blank.any():
            lines.dropped_rows.extend((first_row + np.flatnonzero(blank)).tolist())
            time_text = time_text.filter(pa.array(keep))

        def line_of(i: int, _first: int = first_row, _kept: np.ndarray = kept_rows) -> int:
            return lines.line_of_arrow_row(_first + int(_kept[i]))

        if not typed:
            values = {
                k: _parse_numbers(path, t.filter(pa.array(keep)), layout.header[columns[k]], line_of)
                for k, t in text.items()
            }
        elif blank.any():
            values = {k: v[keep] for k, v in values.items()}
        times.add(time_text, line_of)
        out.append(values)

    lines.n_rows = arrow_rows - len(lines.dropped_rows)
    stamps = out.finish_stamps() if mode.native_times is not None else times.finish(lines.__getitem__)
    if len(stamps) == 0:
        raise DataError(f"{path}: the file has a header but no rows of prices; add data rows below the header line.")
    return _Rows(out.finish(len(stamps)), stamps, lines)


def _batches(
    path: Path,
    source: _Source,
    layout: _Layout,
    names: list[str],
    time_columns: list[str],
    value_columns: dict[str, str],
    mode: _Pass,
    lines: _LineMap,
) -> Iterator[pa.RecordBatch]:
    """pyarrow's streaming reader over the data lines, its errors turned into a retry or a DataError."""
    if layout.data_offset >= source.size():
        return
    malformed: list[tuple[int, int]] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        if mode.threads:  # row.number is unknown (-1) with threads: let the exact pass handle the row
            malformed.append((-1, int(row.actual_columns)))
            return "error"
        if row.text.replace(layout.delimiter, "").strip() == "":
            lines.skipped_lines.append(int(row.number))
            return "skip"
        malformed.append((int(row.number), int(row.actual_columns)))
        return "error"

    time_type = mode.native_times or pa.string()
    convert = pacsv.ConvertOptions(
        column_types={
            **{col: time_type for col in time_columns},
            **{col: pa.float64() if mode.typed else pa.string() for col in value_columns.values()},
        },
        include_columns=[*time_columns, *value_columns.values()],
        null_values=_NULL_VALUES if mode.typed else [],
        strings_can_be_null=False,
        timestamp_parsers=[pacsv.ISO8601],
    )
    # The exact pass reads with one thread: pyarrow then reports the line number of every skipped line.
    read = pacsv.ReadOptions(
        column_names=names,
        use_threads=mode.threads,
        block_size=FAST_BLOCK_BYTES if mode.threads else BLOCK_BYTES,
        encoding=mode.encoding,
    )
    parse = pacsv.ParseOptions(delimiter=layout.delimiter, ignore_empty_lines=False, invalid_row_handler=on_invalid_row)
    with source.stream(layout.data_offset) as stream:
        try:
            if not mode.threads:
                yield from pacsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
                return
            # pyarrow's streaming reader parses on one thread whatever use_threads says (measured: one thread
            # busy); its table reader parses blocks on every core. The table holds the used columns only (~48
            # bytes a row), and each block is handed on and dropped in turn, so it shrinks as the output grows.
            table = pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            _explain_arrow_error(path, layout, exc, malformed, mode)
    batches = table.to_batches()
    del table
    batches.reverse()
    while batches:
        yield batches.pop()
        if len(batches) % 32 == 0:  # hand the consumed blocks' pages back to the OS (mimalloc keeps them)
            pa.default_memory_pool().release_unused()


def _native_time_type(
    source: _Source, layout: _Layout, columns: dict[str, int], date_format: str | None
) -> pa.DataType | None:
    """The timestamp type pyarrow can parse the time column as, or None to parse the times as text.

    Only for one time column (no date_format) whose values in the first 64 KB are all ISO 8601 that pyarrow
    reads, all naive (-> ``timestamp[ns]``) or all with an offset (-> ``timestamp[ns, UTC]``). pyarrow's ISO
    reader is stricter than pandas' (no ``2024-1-31``, no spaces) and gives the same instant for everything it
    accepts, so a file it reads gives the frame the text path would; a later value it refuses only sends the
    fast pass back to the text path.
    """
    keys = _time_keys(columns)
    if date_format is not None or len(keys) != 1:
        return None
    sample = source.head[layout.data_offset : source.head.rfind(b"\n") + 1]
    name = f"f{columns[keys[0]]}"
    try:
        table = pacsv.read_csv(
            pa.BufferReader(sample),
            read_options=pacsv.ReadOptions(column_names=[f"f{i}" for i in range(len(layout.header))]),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string()}, include_columns=[name], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    text = table.column(name)
    if len(text) == 0:
        return None
    for time_type in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            pc.cast(text, time_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return time_type
    return None


def _time_keys(columns: dict[str, int]) -> tuple[str, ...]:
    if "datetime" in columns or "timestamp" in columns:
        return ("datetime",) if "datetime" in columns else ("timestamp",)
    if "date" in columns and "time" in columns:
        return ("date", "time")
    return ("date",) if "date" in columns else ("time",)


def _time_text(batch: pa.RecordBatch, names: list[str]) -> pa.Array:
    parts = [pc.utf8_trim_whitespace(batch.column(name)) for name in names]
    if len(parts) == 1:
        return parts[0]
    joined = pc.binary_join_element_wise(parts[0], parts[1], " ")
    return pc.utf8_trim_whitespace(joined)


class _Columns:
    """The five OHLCV columns, written block by block straight into one preallocated ``(5, capacity)`` array.

    Why not collect per-block arrays and concatenate: that holds every value twice at the end. The capacity
    comes from the file size and the header's bytes per row, with 25% headroom, and doubles if a file has
    shorter lines than that; pages past the last row are never written, so the OS never backs them with
    memory, and the result is a view of the first ``rows`` columns.
    """

    def __init__(self, keys: list[str], estimated_rows: int) -> None:
        self.keys = keys
        self.rows = 0
        self.block = np.empty((len(OHLCV_COLUMNS), max(1024, int(estimated_rows * 1.25))), dtype=np.float64)
        self.stamps: np.ndarray | None = None  # int64 ns, written by the fast pass's pyarrow-parsed times

    def append(self, values: dict[str, np.ndarray], stamps: np.ndarray | None = None) -> None:
        n = len(next(iter(values.values())))
        if self.rows + n > self.block.shape[1]:
            grown = np.empty((len(OHLCV_COLUMNS), 2 * (self.rows + n)), dtype=np.float64)
            grown[:, : self.rows] = self.block[:, : self.rows]
            self.block = grown
            if self.stamps is not None:
                stamps_grown = np.empty(grown.shape[1], dtype=np.int64)
                stamps_grown[: self.rows] = self.stamps[: self.rows]
                self.stamps = stamps_grown
        for key, column in values.items():
            self.block[OHLCV_COLUMNS.index(key), self.rows : self.rows + n] = column
        if stamps is not None:
            if self.stamps is None:
                self.stamps = np.empty(self.block.shape[1], dtype=np.int64)
            self.stamps[self.rows : self.rows + n] = stamps
        self.rows += n

    def append_parsed(
        self, batch: pa.RecordBatch, value_columns: dict[str, str], time_column: str, mode: _Pass
    ) -> None:
        """Append a block whose times pyarrow parsed; an empty or null-token time cell (a blank row or an error,
        both the text path's business) restarts the pass with the times as text."""
        stamps = batch.column(time_column)
        if stamps.null_count:
            raise _Retry(_Pass(threads=mode.threads, encoding=mode.encoding))
        values = {k: batch.column(col).to_numpy(zero_copy_only=False) for k, col in value_columns.items()}
        self.append(values, stamps.view(pa.int64()).to_numpy())

    def finish_stamps(self) -> np.ndarray:
        stamps = self.stamps[: self.rows] if self.stamps is not None else np.empty(0, dtype=np.int64)
        self.stamps = None
        return stamps

    def finish(self, rows: int) -> np.ndarray:
        block = self.block[:, :rows]
        close = block[OHLCV_COLUMNS.index("close")]
        for i, name in enumerate(OHLCV_COLUMNS):
            if name not in self.keys:  # open/high/low default to the close, volume to 0
                block[i] = 0.0 if name == "volume" else close
        self.block = np.empty((0, 0))
        return block


def _explain_arrow_error(
    path: Path, layout: _Layout, exc: pa.ArrowInvalid, malformed: list[tuple[int, int]], mode: _Pass
) -> NoReturn:
    """Turn a pyarrow parse error into a retry (a non-number or non-UTF-8 cell, or anything the fast pass
    leaves to the exact one) or a DataError."""
    message = str(exc)
    if mode.threads and malformed:
        raise _Retry(_Pass()) from exc
    if mode.native_times is not None:  # a time pyarrow cannot read (or a bad cell anywhere): times as text
        raise _Retry(_Pass(threads=mode.threads, encoding=mode.encoding)) from exc
    typed, encoding = mode.typed, mode.encoding
    if malformed:
        number, actual = malformed[0]
        raise DataError(
            f"{path}: malformed CSV: line {layout.data_line + number - 1} has {actual} fields but the first line "
            f"has {len(layout.header)}; every row needs the same number of '{_printable(layout.delimiter)}'-"
            "separated fields as the first line."
        ) from exc
    if "conversion error" in message.lower() and typed:
        raise _Retry(_Pass(threads=mode.threads, typed=False, encoding=encoding)) from exc
    if "utf8" in message.lower().replace("-", "") and encoding == "utf8":
        raise _Retry(_Pass(threads=mode.threads, typed=typed, encoding="latin-1")) from exc
    raise DataError(f"{path}: malformed CSV ({message}).") from exc


def _parse_numbers(path: Path, text: pa.Array, column: str, line_of) -> np.ndarray:
    """float64 values, NaN for empty/missing tokens; any other non-number is a DataError (text mode only)."""
    series = pd.Series(text.to_pandas(), dtype=object)
    missing = series.str.lower().isin(_MISSING_TOKENS).to_numpy()
    values = pd.to_numeric(series.where(~missing, None), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = np.flatnonzero(np.isnan(values) & ~missing)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: line {line_of(i)}, column '{column}': {series.iloc[i]!r} is not a number "
            f"({bad.size} bad row(s) in this block). Use plain numbers with '.' as the decimal point."
        )
    return values
