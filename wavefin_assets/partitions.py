"""Series partitions: one partition per price series, so many tickers materialize in parallel.

The partitions are dynamic (`DynamicPartitionsDefinition(name="series")`): they live in the Dagster instance,
not in the code, so a new CSV becomes a partition without reloading the code location. The built-in series —
`mjd` (a Merton jump diffusion simulation), `sp500` (the daily S&P 500 series shipped inside the `arch` package)
and `planted` (a simulation with planted, known structure) — are registered on first start (`make run`,
`make ui`, and the `series_csv_sensor`'s first tick), and the sensor registers one `csv-<name>` partition per
valid CSV dropped into `data/prices/` and requests its ingest run (see `wavefin_assets.sensors`).

A partition key names a series for good (its stored values and its history hang off the key), so a key is a
pure function of its own file's name, never of the other files in the folder, and a registered key is never
removed or renumbered:

- characters outside `A-Za-z0-9_.-` become `_`; a key longer than `MAX_KEY_CHARS` is cut and ends in a hash of
  the whole name, so a 240-character file name still gives a short, stable key (and storage file name);
- two files whose names give the same key (`a b.csv` and `a_b.csv`, or names differing only in case, which
  collide on case-insensitive disks) are never renumbered: the sensor refuses to register the key, naming both
  files, and an already registered key fails with a `DataError` naming both files until one is renamed;
- a symlink that leads outside the prices directory is refused the same way (a partition that reads files
  from elsewhere on the machine would be a surprise, and its data could change under the key);
- a removed file keeps its partition (and its history); materializing it fails with a `DataError` that says
  the file is gone and how to bring it back.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from wavefin_core.errors import DataError

#: Series that need no file; registered as partitions on first start.
BUILTIN_SERIES = ("mjd", "sp500", "planted")
#: Built-in series that exist to check the forecasters (a known, planted signal), not to be generated:
#: the diffusion model leaves them out unless they are named in its `series` config.
FORECAST_CHECK_SERIES = ("planted",)
#: The name of the dynamic partitions definition (the instance stores its keys under this name).
SERIES_PARTITIONS_NAME = "series"
CSV_PREFIX = "csv-"
#: Longest partition key: it is also a file name in storage (`<key>.parquet`), and file systems cap names at
#: 255 bytes; 64 keeps keys readable in the UI.
MAX_KEY_CHARS = 64
_HASH_CHARS = 8


def prices_dir() -> Path:
    """Where user CSVs live: `$WAVEFIN_PRICES_DIR`, default `data/prices`."""
    return Path(os.environ.get("WAVEFIN_PRICES_DIR", "data/prices")).resolve()


def csv_partition_key(path: Path) -> str:
    """`csv-<sanitised stem>`, at most `MAX_KEY_CHARS` characters (long stems end in a hash of the full stem)."""
    key = CSV_PREFIX + re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.sha256(path.stem.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]
    return f"{key[: MAX_KEY_CHARS - _HASH_CHARS - 1]}-{digest}"


@dataclass
class CsvSeries:
    """The prices directory as partitions: usable files, and keys that exist but must not be read."""

    files: dict[str, Path] = field(default_factory=dict)  # key -> file
    refused: dict[str, str] = field(default_factory=dict)  # key -> why (a DataError message)

    def keys(self) -> list[str]:
        return sorted({*self.files, *self.refused})

    def path_for(self, key: str) -> Path:
        """The file behind `key`, or a DataError that says what is wrong and how to fix it."""
        if key in self.refused:
            raise DataError(self.refused[key])
        if key not in self.files:
            raise DataError(
                f"Series {key!r} has no CSV in {prices_dir()} any more (CSV series there now: "
                f"{self.keys() or 'none'}; built-in: {list(BUILTIN_SERIES)}). Put the file back as "
                f"'{key.removeprefix(CSV_PREFIX)}.csv' to materialize it again; the partition and its history "
                "are kept."
            )
        return self.files[key]


def scan_csv_series(directory: Path | None = None) -> CsvSeries:
    """Every `*.csv` (any case) in the prices directory, as partition keys; see the module docstring."""
    directory = (directory or prices_dir()).resolve()
    result = CsvSeries()
    if not directory.is_dir():
        return result
    claims: dict[str, list[Path]] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() == ".csv"):
        if not (path.is_file() or path.is_symlink()):
            continue
        key = csv_partition_key(path)
        claims.setdefault(key.casefold(), []).append(path)
    for paths in claims.values():
        key = csv_partition_key(paths[0])
        if len(paths) > 1:
            names = " and ".join(f"'{p.name}'" for p in paths)
            message = (
                f"{directory}: files {names} all map to partition key {key!r}, so it is not clear which one the "
                f"key (and its stored history) means. Rename all but one of them (keys keep only letters, "
                "digits, '_', '.' and '-', and ignore case), then reload the code location."
            )
            result.refused.update({csv_partition_key(p): message for p in paths})
            continue
        path = paths[0]
        problem = _link_problem(path, directory)
        if problem:
            result.refused[key] = problem
        else:
            result.files[key] = path
    return result


def _link_problem(path: Path, directory: Path) -> str | None:
    if not path.is_symlink():
        return None
    target = path.resolve()
    if not target.is_relative_to(directory):
        return (
            f"{path}: a symlink to {target}, outside the prices directory {directory}; series are read only "
            "from inside it. Copy the file into the prices directory instead of linking it."
        )
    if not target.is_file():
        return f"{path}: a symlink to {target}, which is not a file; fix or remove the link."
    return None


def discover_csv_series(directory: Path | None = None) -> dict[str, Path]:
    """`{partition key: path}` for every usable CSV in the prices directory (refused keys left out)."""
    return scan_csv_series(directory).files


def series_partition_keys(instance: dg.DagsterInstance | None = None) -> list[str]:
    """The series to process: built-ins, then every CSV key in the prices directory (refused ones included:
    they fail with their reason when run), then, given an instance, every other key registered there (a
    removed file's partition, which fails clearly)."""
    keys = [*BUILTIN_SERIES, *scan_csv_series().keys()]
    if instance is not None:
        keys += [k for k in instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME) if k not in keys]
    return keys


def register_series(instance: dg.DagsterInstance, directory: Path | None = None) -> list[str]:
    """Register the built-in series and every usable CSV that is not a partition yet; return the keys added.

    Keys are only ever added: a removed or refused file keeps its partition. Refused files (collisions,
    symlinks out) are not registered; the sensor says why.
    """
    known = set(instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME))
    new = [key for key in (*BUILTIN_SERIES, *scan_csv_series(directory).files) if key not in known]
    if new:
        instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, new)
    return new


series_partitions = dg.DynamicPartitionsDefinition(name=SERIES_PARTITIONS_NAME)
