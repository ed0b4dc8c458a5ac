"""Benchmark the whole data chain on a long series: raw_prices → clean_prices → segments → scalograms.

Run on demand (never in CI):
    .venv/bin/python bench/bench_chain.py [--mb 1000] [--stride 8] [--test-stride 8] [--keep]

Generates (or reuses) the minute-bar CSV of ``bench_ingest.py`` (~1 GB, ~15 M rows), registers it as the series
``csv-chain`` and materializes the four data assets with ``dagster.materialize``, one asset per fresh
subprocess, into a throw-away storage: exactly what a Dagster run with the multiprocess executor does (each step
reads its upstream value back through the IO manager). Per stage it prints the wall time, the peak RSS of the
step's process (``VmHWM``; it includes the interpreter and the imports, whose RSS is shown too) and the size of
the stored output. The scalograms (2 x 16 scales x 64 samples float32 = 8 KiB a window) are streamed to disk a
chunk at a time, so their memory does not grow with the series; the pre-flight disk check refuses a stride the
disk cannot hold.
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


def run_stage(stage: str, config: dict, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), series=SERIES), stage, json.dumps(config)],
        capture_output=True, text=True, env=env,
    )
    if out.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    print("| stage | time (s) | peak RSS (MiB) | RSS after imports (MiB) | output (MiB) |")
    print("|---|---|---|---|---|")
    for stage, r in results.items():
        print(f"| {stage} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r['base_mb']:.0f} | {r['output_mb']:.0f} |")
    print(f"\nwhole chain: {total:.0f} s; largest peak RSS {max(r['peak_mb'] for r in results.values()):.0f} MiB")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
