"""`make run`: materialize every series partition, then the models and reports, and say where the reports are.

Runs go through the persistent Dagster instance (`$DAGSTER_HOME`, default storage/dagster_home), so everything
materialized here shows up in `make ui` afterwards. A series that fails (say, a broken CSV in data/prices/) is
reported and skipped; the models train on the series that succeeded, and the exit code is non-zero.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dagster as dg


def main() -> int:
    from wavefin_assets.resources import storage_root

    os.environ.setdefault("DAGSTER_HOME", str(storage_root() / "dagster_home"))
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    from wavefin_assets.definitions import defs
    from wavefin_assets.partitions import series_partition_keys
    from wavefin_assets.profiles import PROFILE

    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    print(f"wavefin: profile {PROFILE.name!r}, storage {storage_root()}", flush=True)

    # Dagster's console logger defaults to DEBUG (every event); INFO keeps the asset's own progress lines.
    quiet = {"loggers": {"console": {"config": {"log_level": os.environ.get("WAVEFIN_LOG_LEVEL", "INFO")}}}}
    failed: list[str] = []
    ingest = defs.resolve_job_def("ingest")
    for key in series_partition_keys():
        t0 = time.perf_counter()
        print(f"[data] {key}: raw_prices → clean_prices → segments → scalograms …", flush=True)
        result = ingest.execute_in_process(
            run_config=quiet, partition_key=key, instance=instance, raise_on_error=False
        )
        if result.success:
            print(f"[data] {key}: done in {time.perf_counter() - t0:.1f}s", flush=True)
        else:
            failed.append(key)
            print(f"[data] {key}: FAILED — {_first_error(result)}", flush=True)
    if len(failed) == len(series_partition_keys()):
        print("No series could be processed; nothing to train on.", file=sys.stderr)
        return 1

    t0 = time.perf_counter()
    print("[models] diffusion_model, synthetic_series, forecasters and reports …", flush=True)
    # Train on the series that made it this time, never on a failed series' files from an earlier run.
    succeeded = [key for key in series_partition_keys() if key not in failed]
    models_config = {
        **quiet,
        "ops": {name: {"config": {"series": succeeded}} for name in ("diffusion_model", "forecasters")},
    }
    result = defs.resolve_job_def("retrain").execute_in_process(
        run_config=models_config, instance=instance, raise_on_error=False
    )
    if not result.success:
        print(f"[models] FAILED — {_first_error(result)}", file=sys.stderr)
        return 1
    print(f"[models] done in {time.perf_counter() - t0:.1f}s", flush=True)

    reports = storage_root() / "reports"
    print(f"\nFinished in {time.perf_counter() - started:.1f}s. Reports:")
    for path in sorted(reports.glob("*/*.md")):
        print(f"  {path}")
    print("Browse runs with `make ui` (Dagster) and `make mlflow` (MLflow).")
    if failed:
        print(f"Series that failed and were skipped: {failed}", file=sys.stderr)
        return 1
    return 0


def _first_error(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "DagsterExecutionStepExecutionError" in error.cls_name:
                error = error.cause
            return f"{event.step_key}: {error.message.strip()}"
    return "see the Dagster run logs"


if __name__ == "__main__":
    sys.exit(main())
