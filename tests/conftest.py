"""Test-wide set-up: every test writes into a throw-away storage, never into ./storage.

The environment is set here, before any test imports `wavefin_assets`, because the series partitions and the
default resources are resolved when the definitions module is imported (exactly as in `dagster dev`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

_ROOT = Path(tempfile.mkdtemp(prefix="wavefin-tests-"))
PRICES_DIR = _ROOT / "prices"
PRICES_DIR.mkdir()
os.environ["WAVEFIN_STORAGE"] = str(_ROOT / "storage")
os.environ["WAVEFIN_PRICES_DIR"] = str(PRICES_DIR)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_ROOT / 'storage' / 'mlflow' / 'mlflow.db'}"
os.environ["WAVEFIN_MLFLOW_ARTIFACTS"] = str(_ROOT / "storage" / "mlflow" / "artifacts")
os.environ["WAVEFIN_PROFILE"] = "quick"
os.environ.setdefault("WAVEFIN_DEVICE", "cpu")
os.environ.pop("DAGSTER_HOME", None)

# Two user CSVs become partitions `csv-good` and `csv-noclose` (the second one is broken on purpose).
def _write_good_csv(path: Path, rows: int = 1200, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    times = pd.date_range("2020-01-01", periods=rows, freq="h")
    frame = pd.DataFrame({"Date": times.strftime("%Y-%m-%d %H:%M:%S"), "Open": open_, "High": high, "Low": low,
                          "Close": close, "Volume": rng.integers(100, 1000, rows)})
    frame.to_csv(path, index=False)


_write_good_csv(PRICES_DIR / "good.csv")
(PRICES_DIR / "noclose.csv").write_text("Date,Open,High,Low,Volume\n2020-01-01,1,2,0.5,10\n2020-01-02,1,2,0.5,10\n")
