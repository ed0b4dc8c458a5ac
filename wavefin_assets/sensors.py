"""The prices-directory sensor: a CSV dropped into `data/prices/` becomes a partition and is ingested.

Every tick (30 s while `make ui` / `dg dev` runs) the sensor

- registers the built-in series that are not partitions yet (the first tick of a fresh instance);
- registers each new usable CSV as `csv-<name>` (keys by `wavefin_assets.partitions.scan_csv_series`: stable,
  never renumbered) and requests an `ingest` run for it; a file that changed since its last ingest is
  ingested again (the run key names the file's size and modification time, so a file is never ingested twice
  for the same content);
- waits for a file modified in the last `SETTLE_SECONDS` (it may still be being copied in);
- refuses, with a message naming both files, names that collide on one key, and symlinks leading out of the
  directory (logged on the tick; nothing registered, nothing run);
- never removes a partition: a deleted file keeps its key and history, and materializing it fails with a
  `DataError` saying the file is gone.

Whether a CSV's content is valid (columns, dates, prices) is decided by `raw_prices` in the ingest run, which
fails before anything is stored; the sensor only decides which files are series.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from wavefin_assets.jobs import ingest_job
from wavefin_assets.partitions import (
    BUILTIN_SERIES,
    SERIES_PARTITIONS_NAME,
    prices_dir,
    scan_csv_series,
    series_partitions,
)

#: A file modified less than this long ago may still be being written: it waits for a later tick.
SETTLE_SECONDS = 10.0
SENSOR_NAME = "series_csv_sensor"


@dataclass
class CsvTick:
    """What one tick decided: partitions to add, ingest runs to request, files refused or not settled."""

    new_keys: list[str] = field(default_factory=list)
    ingest: dict[str, str] = field(default_factory=dict)  # key -> `<size>-<mtime ns>` of the file to ingest
    refused: dict[str, str] = field(default_factory=dict)  # key -> why (a message naming the file(s))
    settling: list[str] = field(default_factory=list)  # file names still being written
    cursor: dict[str, str] = field(default_factory=dict)  # key -> `<size>-<mtime ns>` when last requested

    def summary(self) -> str:
        parts = [f"{len(self.new_keys)} new partition(s)", f"{len(self.ingest)} ingest run(s)"]
        if self.refused:
            parts.append(f"{len(self.refused)} refused")
        if self.settling:
            parts.append(f"waiting for {', '.join(self.settling)} to finish being written")
        return "; ".join(parts)


def plan_tick(
    registered: set[str], cursor: dict[str, str], directory: Path | None = None, now: float | None = None,
) -> CsvTick:
    """The sensor's decision, given the registered keys and the previous cursor (pure: reads only the folder)."""
    now = time.time() if now is None else now
    scan = scan_csv_series(directory)
    tick = CsvTick(cursor=dict(cursor), refused=dict(scan.refused))
    tick.new_keys = [key for key in BUILTIN_SERIES if key not in registered]
    for key, path in scan.files.items():
        try:
            stat = path.stat()
        except OSError:  # removed between the scan and now: next tick
            continue
        if now - stat.st_mtime < SETTLE_SECONDS:
            tick.settling.append(path.name)
            continue
        if key not in registered:
            tick.new_keys.append(key)
        stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
        if cursor.get(key) != stamp:
            tick.ingest[key] = stamp
            tick.cursor[key] = stamp
    return tick


@dg.sensor(
    name=SENSOR_NAME,
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the prices directory ($WAVEFIN_PRICES_DIR, default data/prices): registers the built-in "
    "series, makes each new or changed CSV a `csv-<name>` partition and requests its `ingest` run. Colliding "
    "names and symlinks out of the directory are refused (see the tick log); partitions are never removed.",
)
def series_csv_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    registered = set(context.instance.get_dynamic_partitions(SERIES_PARTITIONS_NAME))
    cursor = json.loads(context.cursor) if context.cursor else {}
    tick = plan_tick(registered, cursor)
    for key, why in sorted(tick.refused.items()):
        if cursor.get(f"refused:{key}") != why:  # say it once per problem, not every 30 s
            context.log.error(f"{key}: not registered. {why}")
        tick.cursor[f"refused:{key}"] = why
    for key in [k for k in cursor if k.startswith("refused:") and k.removeprefix("refused:") not in tick.refused]:
        tick.cursor.pop(key)  # fixed: say it again if it comes back
    if not tick.new_keys and not tick.ingest:
        return dg.SkipReason(f"{prices_dir()}: nothing new ({tick.summary()})")
    context.log.info(f"{prices_dir()}: {tick.summary()}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"{key}@{stamp}", partition_key=key, tags={"wavefin/source": "csv-sensor"})
            for key, stamp in sorted(tick.ingest.items())
        ],
        dynamic_partitions_requests=[series_partitions.build_add_request(tick.new_keys)] if tick.new_keys else [],
        cursor=json.dumps(tick.cursor, sort_keys=True),
    )
