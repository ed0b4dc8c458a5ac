"""Loading the code location stays light: every Dagster process (the webserver, the daemon, each step's
subprocess) imports the definitions first, so a heavy import there delays every step of every run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "statsmodels", "arch", "sklearn", "mlflow")

# A fresh interpreter: the test process itself has long imported torch.
PROBE = """
import json, sys, time
started = time.perf_counter()
import wavefin_assets.definitions
loaded = time.perf_counter() - started
after_load = sorted(m for m in {heavy} if m in sys.modules)

import dagster as dg
from tests.assets.conftest import TINY_DATA_CONFIG, series_instance
from wavefin_assets.definitions import defs
steps = ["raw_prices", "clean_prices", "segments"]
config = {{"ops": {{k: v for k, v in TINY_DATA_CONFIG["ops"].items() if k in steps}}}}
started = time.perf_counter()
result = dg.materialize(list(defs.assets), selection=steps, partition_key="mjd", instance=series_instance(),
                        resources=defs.resources, run_config=config)
steps = time.perf_counter() - started
print(json.dumps({{"load_s": loaded, "after_load": after_load, "steps_s": steps, "success": result.success,
                  "after_steps": sorted(m for m in {heavy} if m in sys.modules)}}))
"""


def test_loading_the_definitions_imports_no_heavy_library(record_property):
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", PROBE.format(heavy=repr(HEAVY))],
        cwd=repo, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    record_property("definitions_import_s", round(report["load_s"], 2))
    print(f"importing wavefin_assets.definitions took {report['load_s']:.1f}s; "
          f"raw_prices → segments of mjd took {report['steps_s']:.1f}s")
    assert report["after_load"] == []
    # The data steps before the CWT need none of them either (scalograms brings torch: the CWT can run on it).
    assert report["success"]
    assert report["after_steps"] == []
