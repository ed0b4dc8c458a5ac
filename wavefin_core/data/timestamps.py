r"""Parse a CSV's date/time column block by block, in one consistent format, without guessing day vs month.

The loader reads a file in blocks (see :mod:`wavefin_core.data.csv_loader`), so the format is chosen once, on
the first block, and then applied to every block; a value that does not fit is that row's error rather than a
reason to switch formats midway. Recognised, in this order:

- an explicit ``date_format`` (strptime codes, e.g. ``%d/%m/%Y %H:%M``), when the user gives one;
- HistData's ``YYYYMMDD HHMMSS``; Unix epoch seconds (10 digits) or milliseconds (13 digits);
- numeric dates with the year last (``02/01/2024``, ``2.1.24``, ``02-01-2024 15:30``): day-first or
  month-first is decided from the **whole** file, never from the first value. A first field above 12 proves
  day-first, a second field above 12 proves month-first; a file with neither is ambiguous (``02/01/2024`` is
  2 January or 1 February) and is refused with the ``date_format`` to set, and a file with both is refused
  as mixed. Why not pandas' default: it reads ``02/01/2024`` month-first without a word, so a European file
  silently scrambles its time order;
- anything else pandas reads as ISO 8601 or infers (``2024-01-31``, ``2024-01-31T15:30:00+02:00``, ...).

Naive times are taken as UTC; aware ones are converted to UTC. The result is int64 nanoseconds since the epoch.

Speed: pandas' parsers cost ~0.5 us a row through Python strings, more than pyarrow's whole CSV parse, so the
common formats are read by vectorised fast paths that accept only values they read exactly as the general
parser would, and leave any block with one other value to it (which then gives the very same result or error):
ISO 8601 through pyarrow's ISO reader (stricter than pandas' ``format="ISO8601"``, same instant for everything
it accepts), HistData's fixed-width digits through numpy. The format is chosen with pyarrow's regex engine on
the block's strings, with Python's Unicode ``\d``/``\s`` classes spelled out, so no Python string is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wavefin_core.errors import DataError

_NUMERIC_DATE = r"(\d{1,2})([/.\-])(\d{1,2})[/.\-](\d{4}|\d{2})"
_NUMERIC_DATE_ROW = re.compile(
    rf"^{_NUMERIC_DATE}(?:[ T]+\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?)?$"
)
_ISO_HINT = "Use ISO dates like 2024-01-31 or 2024-01-31 15:30:00"
# Python's str-regex classes in RE2 (pyarrow's engine), so a format is chosen as pandas' .str methods would:
# \d is any Unicode decimal digit, \s Python's whitespace (str.isspace()).
_RE2_DIGIT = r"\p{Nd}"
_RE2_SPACE = r"[\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_NUMERIC_DATE_ROW_RE2 = (
    _NUMERIC_DATE_ROW.pattern.replace(r"\d", _RE2_DIGIT).replace(r"\s", _RE2_SPACE).removesuffix("$") + r"\n?$"
)
_NS_YEARS = (1678, 2261)  # whole years inside int64 nanoseconds

LineOf = Callable[[int], int]  # block row -> 1-based line number in the file


class TimestampParser:
    """Accumulates parsed blocks of one time column; :meth:`finish` returns all of them as int64 ns (UTC)."""

    def __init__(self, path: Path, column: str, date_format: str | None = None) -> None:
        self.path, self.column, self.date_format = path, column, date_format
        self.style: str | None = None
        self._chunks: list[np.ndarray] = []
        self._numeric: _NumericDates | None = None

    def add(self, text: pa.Array, line_of: LineOf) -> None:
        """Parse one block of stripped strings (rows in file order); errors name the row's line."""
        if len(text) == 0:  # a block of blank lines: nothing to parse, and nothing to choose a format from
            return
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if self.style is None:
            self.style = self._choose_style(text)
        fast = _FAST_PATHS.get(self.style)
        parsed_fast = fast(text) if fast is not None else None
        if parsed_fast is not None:
            self._chunks.append(parsed_fast)
            return
        values = pd.Series(text.to_pandas(), dtype=object)
        if self.style == "numeric_date":
            assert self._numeric is not None
            self._numeric.add(text, values, line_of)
            return
        parsed = self._parse(values)
        self._raise_on_nat(values, parsed, line_of)
        self._chunks.append(parsed.to_numpy(dtype="datetime64[ns]").view(np.int64))

    def finish(self, row_label: Callable[[int], str]) -> np.ndarray:
        """All blocks' timestamps; ``row_label(i)`` names row ``i`` (e.g. ``"line 12"``) in late errors."""
        if self._numeric is not None:
            return self._numeric.finish(row_label)
        if not self._chunks:
            return np.empty(0, dtype=np.int64)
        out = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = []
        return out

    def _choose_style(self, text: pa.Array) -> str:
        """The format most of the first block's non-empty values have (pyarrow regex, Python's classes)."""
        if self.date_format:
            return "explicit"
        present = text.filter(pc.not_equal(text, ""))
        if len(present) == 0:
            return "iso"

        def share(pattern: str) -> float:
            return pc.sum(pc.match_substring_regex(present, pattern)).as_py() / len(present)

        if share(rf"^{_RE2_DIGIT}{{8}} {_RE2_DIGIT}{{6}}$") > 0.5:
            return "histdata"
        for digits, style in ((10, "epoch_s"), (13, "epoch_ms")):
            if share(rf"^{_RE2_DIGIT}{{{digits}}}$") > 0.5:
                return style
        if share(_NUMERIC_DATE_ROW_RE2) > 0.5:
            self._numeric = _NumericDates(self.path, self.column)
            return "numeric_date"
        return "iso"

    def _parse(self, text: pd.Series) -> pd.Series:
        if self.style == "explicit":
            return _as_ns(pd.to_datetime(text, format=self.date_format, utc=True, errors="coerce"))
        if self.style == "histdata":  # strptime alone would accept "1701" as a time; require all six digits
            ok = text.str.fullmatch(r"\d{8} \d{6}")
            return _as_ns(pd.to_datetime(text.where(ok), format="%Y%m%d %H%M%S", utc=True, errors="coerce"))
        if self.style in ("epoch_s", "epoch_ms"):
            digits, unit = (10, "s") if self.style == "epoch_s" else (13, "ms")
            seconds = pd.to_numeric(text.where(text.str.fullmatch(rf"\d{{{digits}}}")), errors="coerce")
            return _as_ns(pd.to_datetime(seconds, unit=unit, utc=True))
        best = _as_ns(pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce"))
        if best.isna().any():
            numeric = text[best.isna() & text.str.match(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d")]
            if len(numeric):  # pandas would guess month-first for these: refuse instead of guessing
                raise DataError(
                    f"{self.path}: column '{self.column}': {numeric.iloc[0]!r} starts with a day and a month in an "
                    "order this file cannot prove. Set the date_format option (strptime codes, e.g. "
                    "'%d/%m/%Y %H:%M:%S %z' or '%m/%d/%Y %I:%M %p'), or write ISO dates (2024-01-31 15:30:00)."
                )
            inferred = _as_ns(pd.to_datetime(text, utc=True, errors="coerce"))
            if inferred.isna().sum() < best.isna().sum():
                best = inferred
        return best

    def _raise_on_nat(self, text: pd.Series, parsed: pd.Series, line_of: LineOf) -> None:
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if not bad.size:
            return
        i = int(bad[0])
        fix = (
            f"The date_format option is {self.date_format!r}: fix that row, or set date_format to match the "
            "file (strptime codes, e.g. '%d/%m/%Y %H:%M')."
            if self.style == "explicit"
            else f"{_ISO_HINT}, or set the date_format option (strptime codes, e.g. '%d/%m/%Y %H:%M')."
        )
        raise DataError(
            f"{self.path}: line {line_of(i)}, column '{self.column}': cannot parse date/time {text.iloc[i]!r} "
            f"({bad.size} bad row(s) in this block). {fix}"
        )


def _iso_fast(text: pa.Array) -> np.ndarray | None:
    """int64 ns if pyarrow's ISO 8601 reader takes every value, all naive or all with an offset; else None."""
    for time_type in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            parsed = pc.cast(text, time_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        if parsed.null_count == 0:
            return parsed.view(pa.int64()).to_numpy(zero_copy_only=False)
    return None


def _histdata_fast(text: pa.Array) -> np.ndarray | None:
    """int64 ns for a block of ``YYYYMMDD HHMMSS`` values that are all ASCII digits and real calendar times
    (the ones ``%Y%m%d %H%M%S`` reads the same way); None when any value is anything else."""
    n = len(text)
    if text.null_count or not pc.all(pc.match_substring_regex(text, r"^[0-9]{8} [0-9]{6}$")).as_py():
        return None
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * text.offset)
    raw = np.frombuffer(text.buffers()[2], dtype=np.uint8, count=int(offsets[-1] - offsets[0]), offset=int(offsets[0]))
    d = raw.reshape(n, 15).astype(np.int64) - ord("0")  # every value is 15 bytes (checked above)

    def number(first: int, width: int) -> np.ndarray:
        out = d[:, first]
        for k in range(first + 1, first + width):
            out = out * 10 + d[:, k]
        return out

    year, month, day = number(0, 4), number(4, 2), number(6, 2)
    hour, minute, second = number(9, 2), number(11, 2), number(13, 2)
    ok = (year >= _NS_YEARS[0]) & (year <= _NS_YEARS[1]) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (hour < 24) & (minute < 60) & (second < 60)
    if not ok.all():
        return None
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    month_days = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
    if (day > month_days).any():
        return None
    days = months.astype("datetime64[D]").astype(np.int64) + day - 1
    return ((days * 24 + hour) * 60 + minute) * 60_000_000_000 + second * 1_000_000_000


_FAST_PATHS = {"iso": _iso_fast, "histdata": _histdata_fast}


def _as_ns(parsed: pd.Series) -> pd.Series:
    """pandas 3 picks a resolution per call; the contract is nanoseconds."""
    return parsed.dt.as_unit("ns") if len(parsed) else parsed.astype("datetime64[ns, UTC]")


class _NumericDates:
    """``a/b/year [time]`` dates kept as parts until the whole file has said which of ``a``/``b`` is the day.

    Parts are small integers (1 + 1 + 2 bytes a row) plus the time of day (8 bytes), so a 15-million-row file
    costs ~180 MB here, and no row is parsed twice.
    """

    def __init__(self, path: Path, column: str) -> None:
        self.path, self.column = path, column
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self._rows = 0
        self._example: dict[str, tuple[int, str]] = {}  # "day_first"/"month_first"/"ambiguous" -> (line, text)
        self._separator = "/"
        self._year_digits = 4
        self._time_colons = 0
        self._meridiem = False

    def add(self, text: pa.Array, values: pd.Series, line_of: LineOf) -> None:
        parts = pc.extract_regex(
            text,
            pattern=r"^(?P<a>\d{1,2})(?P<sep>[/.\-])(?P<b>\d{1,2})[/.\-](?P<y>\d{4}|\d{2})(?P<rest>.*)$",
        )
        matched = ~np.asarray(parts.is_null().to_numpy(zero_copy_only=False))
        rest = pc.struct_field(parts, "rest")
        tod = _time_of_day(rest)
        bad = np.flatnonzero(~matched | np.isnan(tod))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{self.path}: line {line_of(i)}, column '{self.column}': cannot parse date/time "
                f"{values.iloc[i]!r} ({bad.size} bad row(s) in this block); the file's dates look like "
                "'31/01/2024 15:30:00'. Fix that row, or set the date_format option (strptime codes, "
                "e.g. '%d/%m/%Y %H:%M')."
            )
        a = pc.cast(pc.struct_field(parts, "a"), pa.int8()).to_numpy()
        b = pc.cast(pc.struct_field(parts, "b"), pa.int8()).to_numpy()
        year_text = pc.struct_field(parts, "y")
        year = pc.cast(year_text, pa.int16()).to_numpy().copy()
        short = pc.utf8_length(year_text).to_numpy() == 2
        year[short] += np.where(year[short] < 69, 2000, 1900).astype(np.int16)  # strptime's %y rule
        if not self._parts:
            self._separator = pc.struct_field(parts, "sep")[0].as_py()
            self._year_digits = 2 if short[0] else 4
            first_rest = str(rest[0].as_py()).strip()
            self._time_colons = first_rest.count(":")
            self._meridiem = first_rest[-2:].upper() in ("AM", "PM")
        for kind, rows in (("day_first", a > 12), ("month_first", b > 12), ("ambiguous", a != b)):
            if kind not in self._example and rows.any():
                i = int(np.argmax(rows))
                self._example[kind] = (line_of(i), str(values.iloc[i]))
        self._parts.append((a, b, year, tod.astype(np.int64)))
        self._rows += len(a)

    def finish(self, row_label: Callable[[int], str]) -> np.ndarray:
        day_first = "day_first" in self._example
        month_first = "month_first" in self._example
        if day_first and month_first:
            (l1, t1), (l2, t2) = self._example["day_first"], self._example["month_first"]
            raise DataError(
                f"{self.path}: column '{self.column}' mixes day-first dates (line {l1}: {t1!r}) and month-first "
                f"dates (line {l2}: {t2!r}). Write every date in one order (ISO 2024-01-31 is unambiguous)."
            )
        if not day_first and not month_first and "ambiguous" in self._example:
            line, text = self._example["ambiguous"]
            raise DataError(
                f"{self.path}: column '{self.column}': every date is ambiguous between day-first and month-first "
                f"(line {line}: {text!r} could be either, and no day above 12 settles it). Set the date_format "
                f"option: date_format={self._format(True)!r} for day-first or {self._format(False)!r} for "
                "month-first (the load_ohlcv argument, or the raw_prices config field `date_format`)."
            )
        if not self._parts:
            return np.empty(0, dtype=np.int64)
        a, b, year, tod = (np.concatenate(cols) for cols in zip(*self._parts, strict=True))
        self._parts = []
        day, month = (a, b) if day_first else (b, a)
        dates = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce"
        ).dt.as_unit("ns")
        bad = np.flatnonzero(dates.isna().to_numpy())
        if bad.size:
            i = int(bad[0])
            order = "day-first" if day_first else "month-first"
            raise DataError(
                f"{self.path}: {row_label(i)}, column '{self.column}': {int(day[i])}/{int(month[i])}/{int(year[i])} "
                f"(day/month/year, read {order}) is not a calendar date ({bad.size} such row(s)). Fix the date, "
                "or set the date_format option if the order was misread."
            )
        return dates.to_numpy(dtype="datetime64[ns]").view(np.int64) + tod

    def _format(self, day_first: bool) -> str:
        sep, year = self._separator, "%Y" if self._year_digits == 4 else "%y"
        date = f"%d{sep}%m{sep}{year}" if day_first else f"%m{sep}%d{sep}{year}"
        hour = "%I" if self._meridiem else "%H"
        clock = {0: "", 1: f" {hour}:%M", 2: f" {hour}:%M:%S"}.get(self._time_colons, f" {hour}:%M:%S")
        return date + clock + (" %p" if self._meridiem and clock else "")


def _time_of_day(rest: pa.Array) -> np.ndarray:
    """Nanoseconds since midnight from what follows the date (``''``, ``' 15:30'``, ``'T15:30:00.5'``); NaN if bad."""
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(rest), pattern=r"^T", replacement="")
    meridiem = pd.Series(pc.utf8_upper(text).to_pandas(), dtype=object).str.extract(r"([AP]M)$")[0].to_numpy()
    text = pc.replace_substring_regex(text, pattern=r"\s*[AaPp][Mm]$", replacement="")
    text = pc.replace_substring_regex(text, pattern=r"^(\d{1,2}:\d{2})$", replacement=r"\1:00")
    series = pd.Series(text.to_pandas(), dtype=object)
    empty = (series == "").to_numpy()
    if empty.all():
        return np.zeros(len(series))
    delta = pd.to_timedelta(series.where(~empty), errors="coerce")
    ns = delta.to_numpy(dtype="timedelta64[ns]").view(np.int64).astype(np.float64)
    ns[delta.isna().to_numpy()] = np.nan
    ns[empty] = 0.0
    hour = 3_600e9
    pm, am = meridiem == "PM", meridiem == "AM"
    ns[(pm | am) & ((ns < hour) | (ns >= 13 * hour))] = np.nan  # a 12-hour clock runs 1:00 .. 12:59
    ns[pm & (ns < 12 * hour)] += 12 * hour  # 1 PM -> 13:00; 12 PM stays noon
    ns[am & (ns >= 12 * hour)] -= 12 * hour  # 12 AM -> midnight
    ns[(ns < 0) | (ns >= 24 * hour)] = np.nan
    return ns
