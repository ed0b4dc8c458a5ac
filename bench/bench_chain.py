"""Benchmark the whole data chain on a long series: raw_prices → clean_prices → segments → scalograms.

Run on demand (never in CI):
    .venv/bin/python bench/bench_chain.py [--mb 1000] [--stride 8] [--test-stride 8] [--keep]
    .venv/bin/python bench/bench_chain.py --stage clean [--rows 15e6] [--rounds 1] [--root OTHER_CHECKOUT ...]

Generates (or reuses) the minute-bar CSV of ``bench_ingest.py`` (~1 GB, ~15 M rows), registers it as the series
``csv-chain`` and materializes the four data assets with ``dagster.materialize``, one asset per fresh
subprocess, into a throw-away storage: exactly what a Dagster run with the multiprocess executor does (each step
reads its upstream value back through the IO manager). Per stage it prints the wall time, the peak RSS of the
step's process (``VmHWM``; it includes the interpreter and the imports, whose RSS is shown too) and the size of
the stored output. The scalograms (2 x 16 scales x 64 samples float32 = 8 KiB a window) are streamed to disk a
chunk at a time, so their memory does not grow with the series; the pre-flight disk check refuses a stride the
disk cannot hold.

``--stage clean`` measures the cleaning step alone, in under two minutes at 15 M rows: it writes a synthetic
``--rows``-bar raw_prices value (a random walk of minute bars, ``--missing`` of the closes and, separately, of
the opens and volumes missing) where the IO manager keeps it, then materializes ``clean_prices`` from it in a fresh
process, and prints the step's peak RSS above the RSS after imports as a multiple of the raw frame's in-memory
size (the input the step loads). ``--root`` runs the same measurement on another checkout (e.g. ``git archive`` of
an older commit), alternating with this one for ``--rounds`` rounds, so a before/after ratio comes from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import generate  # noqa: E402 - the same generated CSV as the ingest bench

STAGES = ("raw_prices", "clean_prices", "segments", "scalograms")
SERIES = "csv-chain"

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
stage, config = sys.argv[1], json.loads(sys.argv[2])
import dagster as dg
from wavefin_assets.definitions import defs
from wavefin_assets.partitions import SERIES_PARTITIONS_NAME
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) / 1024
base = status("VmRSS")
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, [{series!r}])
t0 = time.perf_counter()
result = dg.materialize(list(defs.assets), selection=[stage], partition_key={series!r}, instance=instance,
                        resources=defs.resources, run_config=config, raise_on_error=True)
seconds = time.perf_counter() - t0
meta = {{k: (v.value if hasattr(v, "value") else v) for k, v in
        result.asset_materializations_for_node(stage)[0].metadata.items()
        if k in ("rows", "windows", "shape", "roundtrip_rel_error", "chunks", "train_windows", "test_windows")}}
print(json.dumps({{"seconds": seconds, "peak_mb": status("VmHWM"), "base_mb": base, "meta": meta}}, default=str))
"""


def run_stage(stage: str, config: dict, env: dict, root: Path = ROOT) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(root), series=SERIES), stage, json.dumps(config)],
        capture_output=True, text=True, env=env, cwd=root,
    )
    if out.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic_raw_prices(rows: int, missing: float, seed: int = 0) -> pd.DataFrame:
    """A raw_prices value as the CSV loader returns it: minute bars of a random walk on a UTC index, one
    (5, rows) float64 block, with ``missing`` of the closes, opens and volumes NaN (independently)."""
    rng = np.random.default_rng(seed)
    block = np.empty((5, rows))
    open_, high, low, close, volume = block
    close[:] = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, rows)))
    open_[0], open_[1:] = 100.0, close[:-1]
    np.maximum(open_, close, out=high)
    high *= 1.0001
    np.minimum(open_, close, out=low)
    low *= 0.9999
    volume[:] = rng.integers(1, 10_000, rows)
    for row in (3, 0, 4):  # close, open, volume
        block[row, rng.random(rows) < missing] = np.nan
    start = np.datetime64("2000-01-01T00:00:00", "ns")
    index = pd.DatetimeIndex(start + np.arange(rows).astype("timedelta64[m]"), tz="UTC", name="timestamp")
    frame = pd.DataFrame(block.T, index=index, columns=["open", "high", "low", "close", "volume"], copy=False)
    frame.attrs = {"source": f"bench_chain synthetic ({rows:,} minute bars)"}
    return frame


def bench_clean(args: argparse.Namespace) -> None:
    """Peak RSS of the clean_prices step (IO-manager load + cleaning + checks + write) against its input."""
    rows = int(args.rows or 15e6)
    roots = [ROOT] if args.root is None else [args.root.resolve(), ROOT]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="wavefin-bench-clean-"))
    t0 = time.perf_counter()
    frame = synthetic_raw_prices(rows, args.missing)
    frame_mb = frame.memory_usage(index=True).sum() / 2**20
    raw = work / "storage" / "io" / "raw_prices" / f"{SERIES}.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(raw)  # what the IO manager stores for raw_prices
    del frame
    print(f"raw_prices: {rows:,} rows, {frame_mb:.0f} MiB in memory, {raw.stat().st_size / 2**20:.0f} MiB Parquet "
          f"(made in {time.perf_counter() - t0:.0f} s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
          flush=True)
    (work / "dagster_home").mkdir(exist_ok=True)
    env = {**os.environ, "WAVEFIN_STORAGE": str(work / "storage"), "WAVEFIN_PRICES_DIR": str(work / "prices"),
           "DAGSTER_HOME": str(work / "dagster_home"), "WAVEFIN_PROFILE": "quick"}
    results: dict[str, list[dict]] = {str(root): [] for root in roots}
    try:
        for round_ in range(args.rounds):
            for root in roots:
                r = run_stage("clean_prices", {}, env, root)
                r["ratio"] = (r["peak_mb"] - r["base_mb"]) / frame_mb
                results[str(root)].append(r)
                print(f"  round {round_ + 1} {root}: {r['seconds']:.1f} s, peak RSS {r['peak_mb']:.0f} MiB "
                      f"({r['base_mb']:.0f} after imports): {r['ratio']:.2f}x the input frame; {r['meta']} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nclean_prices on {rows:,} rows ({frame_mb:.0f} MiB frame); python {sys.version.split()[0]}\n")
    print("| checkout | time (s) | peak RSS (MiB) | RSS after imports (MiB) | (peak - imports) / input frame |")
    print("|---|---|---|---|---|")
    for root, runs in results.items():
        best = min(runs, key=lambda r: r["peak_mb"])
        print(f"| {root} | {min(r['seconds'] for r in runs):.1f} | {best['peak_mb']:.0f} | {best['base_mb']:.0f} | "
              f"{best['ratio']:.2f}x |")
    print(json.dumps({"rows": rows, "frame_mb": frame_mb, "runs": results}, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=("chain", "clean"), default="chain",
                        help="chain: the four data assets from a CSV (default); clean: clean_prices alone")
    parser.add_argument("--rows", type=float, default=None,
                        help="--stage clean: bars of the synthetic series (default 15e6)")
    parser.add_argument("--missing", type=float, default=0.001,
                        help="--stage clean: fraction of missing closes (and opens, volumes); default 0.001")
    parser.add_argument("--rounds", type=int, default=1, help="--stage clean: measurements per checkout")
    parser.add_argument("--root", type=Path, default=None,
                        help="--stage clean: also measure this other checkout, alternating with this one")
    parser.add_argument("--mb", type=float, default=1000.0, help="size of the generated CSV in MB (default 1000)")
    parser.add_argument("--csv", type=Path, default=None, help="an existing Yahoo-style CSV to use instead")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--test-stride", type=int, default=None, help="default: the pipeline's (1 for horizon 1)")
    parser.add_argument("--num-scales", type=int, default=16)
    parser.add_argument("--chunk-windows", type=int, default=None, help="scalograms.chunk_windows (default auto)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the storage goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the storage and the generated CSV")
    args = parser.parse_args()
    if args.stage == "clean":
        bench_clean(args)
        return

    work = Path(args.workdir or tempfile.mkdtemp(prefix="wavefin-bench-chain-"))
    prices = work / "prices"
    prices.mkdir(parents=True, exist_ok=True)
    csv = prices / "chain.csv"
    if args.csv is not None:
        shutil.copyfile(args.csv, csv)  # a symlink out of the prices directory is refused by design
    elif not csv.exists():
        t0 = time.perf_counter()
        rows = generate(csv, args.mb)
        print(f"generated {csv} ({rows:,} rows) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    env = {**os.environ, "WAVEFIN_STORAGE": str(work / "storage"), "WAVEFIN_PRICES_DIR": str(prices),
           "DAGSTER_HOME": str(work / "dagster_home"), "WAVEFIN_PROFILE": "quick"}
    (work / "dagster_home").mkdir(exist_ok=True)
    segments = {"window": args.window, "stride": args.stride}
    if args.test_stride is not None:
        segments["test_stride"] = args.test_stride
    scalograms = {"num_scales": args.num_scales}
    if args.chunk_windows is not None:
        scalograms["chunk_windows"] = args.chunk_windows
    config = {"ops": {"segments": {"config": segments}, "scalograms": {"config": scalograms}}}
    size_mb = csv.stat().st_size / 2**20
    print(f"CSV {size_mb:.0f} MiB; segments {segments}, scalograms {scalograms}; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    try:
        for stage in STAGES:
            own = {"ops": {stage: config["ops"][stage]}} if stage in config["ops"] else {}
            results[stage] = run_stage(stage, own, env)
            stored = work / "storage" / "io" / stage / f"{SERIES}.parquet"
            results[stage]["output_mb"] = stored.stat().st_size / 2**20 if stored.exists() else float("nan")
            r = results[stage]
            print(f"  {stage}: {r['seconds']:.1f} s, peak RSS {r['peak_mb']:.0f} MiB, output "
                  f"{r['output_mb']:.0f} MiB, {r['meta']} (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(r["seconds"] for r in results.values())
    print(f"\nfile: {size_mb:.0f} MiB CSV; python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    # What each step holds as its input: the CSV file, then the raw frame (5 float64 columns + the int64 index).
    raw_rows = int(results.get("raw_prices", {}).get("meta", {}).get("rows", 0))
    inputs = {"raw_prices": size_mb, "clean_prices": raw_rows * 6 * 8 / 2**20}
    print("| stage | time (s) | peak RSS (MiB) | RSS after imports (MiB) | output (MiB) | (peak - imports) / input |")
    print("|---|---|---|---|---|---|")
    for stage, r in results.items():
        ratio = f"{(r['peak_mb'] - r['base_mb']) / inputs[stage]:.2f}x" if inputs.get(stage) else "-"
        print(f"| {stage} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | {r['output_mb']:.0f} | "
              f"{ratio} |")
    print(f"\nwhole chain: {total:.0f} s; largest peak RSS {max(r['peak_mb'] for r in results.values()):.0f} MiB")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
