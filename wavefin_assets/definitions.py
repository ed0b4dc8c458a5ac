"""The Dagster code location (`wavefin_assets.definitions:defs`): every asset, check, job, schedule, sensor and
resource of wavefin, gathered from the `dg` defs folder `wavefin_assets/defs/` (see `[tool.dg]` in pyproject).

Loading it is light on purpose: no torch, diffusers, statsmodels, arch, sklearn or mlflow is imported until a
step needs it, so `dg dev` starts quickly and every step subprocess starts in seconds.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from wavefin_assets.defs.assets import ALL_ASSETS  # noqa: F401 - kept importable from here
from wavefin_assets.defs.resources import build_resources  # noqa: F401 - kept importable from here


def build_defs() -> dg.Definitions:
    """The code location, with resources as the environment says now (run_all and tests build their own)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)


defs = build_defs()
