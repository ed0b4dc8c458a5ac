"""Benchmark CSV ingest: `load_ohlcv` against a bare `pyarrow.csv.read_csv` of the same file.

Run on demand (never in CI):
    .venv/bin/python bench/bench_ingest.py [--mb 1000] [--path /tmp/x.csv] [--keep] [--rounds 3] [--exact]

Generates a Yahoo-style minute-bar CSV of about ``--mb`` megabytes (default ~1 GB, ~15 M rows) in /tmp, then
measures, each in a fresh subprocess so one run's memory cannot hide in the other's:

- ``pyarrow``: ``pyarrow.csv.read_csv(path)`` with type inference (the columnar floor: parse only, no checks,
  all cores);
- ``load_ohlcv``: wavefin's loader (parses and validates every row; its fast multi-threaded pass on a clean
  file);
- with ``--exact``, also ``load_ohlcv`` with the fast pass off (``csv_loader.FAST_PASS = False``): the
  single-thread pass a file with a ragged row, a whitespace-only line or a bad cell ends up in.

The readers run in interleaved rounds (``--rounds``, default 3: pyarrow, load_ohlcv[, exact], pyarrow, ...), so a
machine shared with other work slows them alike; the ratios are per round, and the table shows the median
round. It reports wall and CPU time (CPU: all threads of the child, the work done whatever the load), peak RSS
(``VmHWM`` of the child, which includes the interpreter and imports; the RSS after imports is shown too), the
ratios to pyarrow, peak RSS / file size (the loader's goal: at most 2x the file), and the load average before
and after (``os.getloadavg``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
ROW_BYTES = 68  # about one generated line: "2020-01-01 00:00:00,100.123456,...,1234\n"


def generate(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write ~``megabytes`` MB of minute bars (random walk) in 1-M-row blocks; returns the row count."""
    rows = int(megabytes * 1e6 / ROW_BYTES)
    rng = np.random.default_rng(seed)
    start = np.datetime64("2000-01-01T00:00:00")
    price = 100.0
    with path.open("wb") as handle:
        handle.write(b"Date,Open,High,Low,Close,Volume\n")
        for first in range(0, rows, 1_000_000):
            n = min(1_000_000, rows - first)
            times = start + np.arange(first, first + n).astype("timedelta64[m]")
            close = price * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
            open_ = np.concatenate([[price], close[:-1]])
            high = np.maximum(open_, close) * 1.0001
            low = np.minimum(open_, close) * 0.9999
            volume = rng.integers(1, 10_000, n)
            price = float(close[-1])
            table = pa.table({
                "Date": pa.array(np.datetime_as_string(times, unit="s")).cast(pa.string()),
                "Open": np.round(open_, 6), "High": np.round(high, 6), "Low": np.round(low, 6),
                "Close": np.round(close, 6), "Volume": volume,
            })
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
            handle.write(buffer.getvalue().to_pybytes().replace(b"T", b" "))
    return rows


CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
which, path = sys.argv[1], sys.argv[2]
if which == "pyarrow":
    import pyarrow.csv as pacsv
    run = lambda: pacsv.read_csv(path)
else:
    from wavefin_core.data import csv_loader, load_ohlcv
    csv_loader.FAST_PASS = which != "exact"
    run = lambda: load_ohlcv(path)
def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
base = rss_mb()
c0, t0 = time.process_time(), time.perf_counter()
result = run()
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
with open("/proc/self/status") as f:  # VmHWM: peak RSS of this process image (ru_maxrss survives exec)
    peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
print(json.dumps({{"seconds": seconds, "cpu": cpu, "peak_mb": peak, "base_mb": base, "rows": len(result)}}))
"""
NAMES = {"pyarrow": "pyarrow.csv.read_csv", "load_ohlcv": "load_ohlcv", "exact": "load_ohlcv, exact pass only"}


def measure(which: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), which, str(path)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1000.0, help="size of the generated CSV in MB (default 1000)")
    parser.add_argument("--path", type=Path, default=None, help="CSV to use (generated if missing)")
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every reader (default 3)")
    parser.add_argument("--exact", action="store_true", help="also time the exact (single-thread) pass alone")
    args = parser.parse_args()
    readers = ["pyarrow", "load_ohlcv", *(["exact"] if args.exact else [])]
    path = args.path or Path(f"/tmp/wavefin-bench-ingest-{int(args.mb)}mb.csv")
    generated = not path.exists()
    if generated:
        t0 = time.perf_counter()
        rows = generate(path, args.mb)
        print(f"generated {path} ({rows:,} rows) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    size_mb = path.stat().st_size / 2**20
    load_before = os.getloadavg()
    rounds: list[dict[str, dict]] = []
    try:
        for i in range(args.rounds):
            rounds.append({which: measure(which, path) for which in readers})
            last = rounds[-1]
            ratios = ", ".join(f"{w} {last[w]['seconds'] / last['pyarrow']['seconds']:.2f}x" for w in readers[1:])
            load = os.getloadavg()[0]
            print(f"round {i + 1}/{args.rounds}: {ratios} pyarrow's time (load {load:.1f})", file=sys.stderr)
    finally:
        if generated and not args.keep:
            path.unlink()
    load_after = os.getloadavg()
    rows = rounds[0]["load_ohlcv"]["rows"]

    def median(which: str, key: str) -> float:
        return statistics.median(r[which][key] for r in rounds)

    def ratio(which: str, key: str) -> float:  # per round, then the median: both readers saw the same load
        return statistics.median(r[which][key] / r["pyarrow"][key] for r in rounds)

    print(f"file: {size_mb:.0f} MiB, {rows:,} rows; python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{args.rounds} interleaved rounds, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    print(
        "| reader | time (s) | CPU (s) | time / pyarrow | peak RSS (MiB) | RSS after imports (MiB) | peak RSS / file |"
    )
    print("|---|---|---|---|---|---|---|")
    for which in readers:
        print(
            f"| {NAMES[which]} | {median(which, 'seconds'):.2f} | {median(which, 'cpu'):.2f} | "
            f"{ratio(which, 'seconds'):.2f}x | {median(which, 'peak_mb'):.0f} | {median(which, 'base_mb'):.0f} | "
            f"{median(which, 'peak_mb') / size_mb:.2f} |"
        )
    per_round = ", ".join(f"{r['load_ohlcv']['seconds'] / r['pyarrow']['seconds']:.2f}" for r in rounds)
    print(
        f"\nload_ohlcv / pyarrow (median of per-round ratios): time {ratio('load_ohlcv', 'seconds'):.2f}x "
        f"(rounds: {per_round}), "
        f"CPU {ratio('load_ohlcv', 'cpu'):.2f}x, peak RSS {ratio('load_ohlcv', 'peak_mb'):.2f}x; "
        f"load_ohlcv peak RSS / file size {median('load_ohlcv', 'peak_mb') / size_mb:.2f} (goal <= 2)"
    )


if __name__ == "__main__":
    main()
