"""Series partitions: one partition per price series, so many tickers materialize in parallel.

The initial partitions are the built-in series — `mjd` (a Merton jump diffusion simulation) and `sp500` (the
daily S&P 500 series shipped inside the `arch` package) — plus one `csv-<name>` partition per CSV dropped into
`data/prices/` (reload the code location in the UI after adding a file).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dagster as dg

BUILTIN_SERIES = ("mjd", "sp500")
CSV_PREFIX = "csv-"


def prices_dir() -> Path:
    """Where user CSVs live: `$WAVEFIN_PRICES_DIR`, default `data/prices`."""
    return Path(os.environ.get("WAVEFIN_PRICES_DIR", "data/prices")).resolve()


def csv_partition_key(path: Path) -> str:
    return CSV_PREFIX + re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)


def discover_csv_series(directory: Path | None = None) -> dict[str, Path]:
    """`{partition key: path}` for every `*.csv` (any case) in the prices directory, sorted by name.

    Two names that sanitise to the same key (`a b.csv`, `a_b.csv`) get `-2`, `-3`, … so neither is lost.
    """
    directory = directory or prices_dir()
    if not directory.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".csv"):
        key, n = csv_partition_key(path), 2
        while key in found:
            key, n = f"{csv_partition_key(path)}-{n}", n + 1
        found[key] = path
    return found


def series_partition_keys() -> list[str]:
    return [*BUILTIN_SERIES, *discover_csv_series()]


series_partitions = dg.StaticPartitionsDefinition(series_partition_keys())
