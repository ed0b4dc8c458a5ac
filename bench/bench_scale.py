"""Scale-out benchmark: N Merton-jump-diffusion series x 2,500 daily bars through the data assets.

Run on demand (never in CI):  .venv/bin/python bench/bench_scale.py [--sizes 10,25,50] [--bars 2500] [--parallel P]
                              [--rounds R]
Quick check (3-4 minutes on 2 cores: each series' steps start in their own processes):  .venv/bin/python bench/bench_scale.py --quick

For each N, in a fresh process with its own empty storage, prices folder and Dagster instance:

1. writes N CSVs of seeded MJD daily bars (`simulate_mjd(freq="daily")`, one seed per series) into the prices
   folder: they become the partitions `csv-mjd_000` ... (the way users add series);
2. registers them as `series` partitions (`register_series`, as `make run` and the sensor do);
3. materializes raw_prices -> clean_prices -> segments -> scalograms for every series the way `make run` does:
   one `ingest` run per series, P runs at a time, each on the multiprocess executor
   (`wavefin_assets.run_all.ingest_in_parallel`), or, with P = 1 (`make run`'s default below 4 cores), one run
   after another in this process (`_ingest_one_by_one`). P defaults to `run_all.default_parallel()`.

It prints one row per N: wall time of step 3, time per series (wall / N) and its ratio to the smallest N. The
goal is a flat time per series (at most 1.3x from 10 to 50): nothing in the data path may grow with the
number of series (scanning the prices folder, the instance's partition list and event log, the IO manager).
With `--rounds R` the sizes are measured R times, interleaved (10, 25, 50, 10, 25, 50, ...), and each N keeps
its fastest round, so a burst of load from other processes hits every N alike. `--quick` measures 2 and 4
series of 1,000 bars, one round: a smoke check that the path works and does not grow, not the README's table.
A failed series fails the benchmark (its error is printed): a time per series that skipped work means nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_scale(n: int, bars: int, parallel: int, root: Path) -> dict:
    """Steps 1-3 for one N (run in a child process whose environment points at `root`)."""
    import dagster as dg

    from wavefin_assets.partitions import register_series
    from wavefin_assets.run_all import _ingest_one_by_one, ingest_in_parallel, ingest_job
    from wavefin_core.data import simulate_mjd

    prices = Path(os.environ["WAVEFIN_PRICES_DIR"])
    t0 = time.perf_counter()
    for i in range(n):
        frame = simulate_mjd(days=bars, freq="daily", seed=1000 + i)
        frame.columns = [c.capitalize() for c in frame.columns]
        frame.insert(0, "Date", frame.index.strftime("%Y-%m-%d"))
        frame.to_csv(prices / f"mjd_{i:03d}.csv", index=False)
    written = time.perf_counter() - t0
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.get() as instance:
        keys = sorted(register_series(instance, prices))
        keys = [k for k in keys if k.startswith("csv-")]
        assert len(keys) == n, keys
        t0 = time.perf_counter()
        failed = (ingest_in_parallel(instance, keys, quiet, parallel) if parallel > 1
                  else _ingest_one_by_one(ingest_job(), instance, keys, quiet))
        wall = time.perf_counter() - t0
        runs = instance.get_runs()
        durations = sorted(r.end_time - r.start_time for r in (instance.get_run_record_by_id(x.run_id)
                                                                 for x in runs) if r and r.end_time)
    return {"n": n, "wall_s": wall, "per_series_s": wall / n, "failed": failed, "write_s": written,
            "median_run_s": durations[len(durations) // 2] if durations else float("nan")}


def run_one(n: int, bars: int, parallel: int) -> dict | None:
    """One N in a fresh process with its own storage, prices folder and Dagster instance; None if it failed."""
    with tempfile.TemporaryDirectory(prefix=f"wavefin-scale-{n}-") as tmp:
        root = Path(tmp)
        (root / "prices").mkdir()
        env = {**os.environ, "WAVEFIN_STORAGE": str(root / "storage"), "WAVEFIN_PRICES_DIR": str(root / "prices"),
               "DAGSTER_HOME": str(root / "dagster_home"), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
               "WAVEFIN_PROFILE": os.environ.get("WAVEFIN_PROFILE", "quick")}
        (root / "dagster_home").mkdir()
        from wavefin_assets.recovery import write_instance_config

        write_instance_config(root / "dagster_home")
        proc = subprocess.run(
            [sys.executable, "-W", "ignore", __file__, "--one", str(n), "--bars", str(bars),
             "--parallel", str(parallel)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return None
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    if row["failed"]:
        errors = [line for line in proc.stdout.splitlines() if ": FAILED — " in line]
        print(f"N={n}: {len(row['failed'])} series failed, so the timing means nothing:", file=sys.stderr)
        print("\n".join(errors[:5]) or proc.stdout[-3000:], file=sys.stderr)
        return None
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,25,50", help="comma-separated numbers of series")
    parser.add_argument("--bars", type=int, default=2500, help="daily bars per series")
    from wavefin_assets.run_all import default_parallel

    parser.add_argument("--parallel", type=int, default=default_parallel(),
                        help="ingest runs at a time (1: one after another in-process; default: as `make run`)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; each N keeps its fastest")
    parser.add_argument("--quick", action="store_true", help="2 and 4 series of 1,000 bars, one round")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one N in this process
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_scale(args.one, args.bars, args.parallel, Path(os.environ["WAVEFIN_STORAGE"]))))
        return 0
    if args.quick:
        args.sizes, args.bars, args.rounds = "2,4", 1000, 1

    sizes = [int(x) for x in args.sizes.split(",") if x]
    best: dict[int, dict] = {}
    load_before = os.getloadavg()[0]
    for round_ in range(1, args.rounds + 1):
        for n in sizes:
            row = run_one(n, args.bars, args.parallel)
            if row is None:
                return 1
            print(f"round {round_}, N={n}: {row['wall_s']:.1f}s ({row['per_series_s']:.2f}s per series)", flush=True)
            if n not in best or row["wall_s"] < best[n]["wall_s"]:
                best[n] = row
    rows = [best[n] for n in sizes]

    base = rows[0]["per_series_s"]
    how = "multiprocess executor" if args.parallel > 1 else "in-process, one after another"
    print(f"\n{args.bars} daily bars per series, {args.parallel} ingest run(s) at a time ({how}), "
          f"{os.cpu_count()} CPUs, best of {args.rounds} interleaved round(s), load average (1 min) "
          f"{load_before:.1f} before and {os.getloadavg()[0]:.1f} after\n")
    print("| series | wall (s) | per series (s) | vs smallest | median run (s) | failed |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['n']} | {row['wall_s']:.1f} | {row['per_series_s']:.2f} | {row['per_series_s'] / base:.2f}x | "
              f"{row['median_run_s']:.1f} | {len(row['failed'])} |")
    ratio = rows[-1]["per_series_s"] / base
    print(f"\nTime per series, N={rows[-1]['n']} / N={rows[0]['n']}: {ratio:.2f}x (goal: at most 1.3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
