"""Every asset of wavefin, and the automation condition that keeps the reports in step with their models.

`FOLLOW_MODELS` is Dagster's `AutomationCondition.eager()` restricted to dependencies in the `models` group:
when the automation sensor (`wavefin_automation`, stopped by default) is on and a model asset is materialized
on its own (from the UI, or `run_all --assets diffusion_model`), the assets downstream of it run next, in one
run: `synthetic_series` and `generation_report` after `diffusion_model`; `forecast_report` after `forecasters`.
`eager()` already waits while a dependency is missing or in progress and never runs an asset twice for one
update, so a `retrain` run that rebuilds models and reports together triggers nothing more. Updates of the
data assets are ignored (a new series' scalograms do not re-run a report by themselves: the models they
would change are retrained by the `retrain` job or the weekly schedule).
"""

from __future__ import annotations

import dagster as dg

from wavefin_assets.assets import data, forecasting, generation
from wavefin_assets.assets.common import MODEL_GROUP

FOLLOW_MODELS = dg.AutomationCondition.eager().allow(dg.AssetSelection.groups(MODEL_GROUP))
#: Assets that re-run when the model they read is re-materialized.
FOLLOWERS = ("synthetic_series", "generation_report", "forecast_report")

ALL_ASSETS = [
    data.raw_prices,
    data.clean_prices,
    data.segments,
    data.scalograms,
    generation.diffusion_model,
    generation.synthetic_series,
    generation.generation_report,
    forecasting.forecasters,
    forecasting.forecast_report,
]


def _follow_models(spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.key.to_user_string() in FOLLOWERS:
        return spec.replace_attributes(automation_condition=FOLLOW_MODELS)
    return spec


defs = dg.Definitions(assets=dg.map_asset_specs(_follow_models, ALL_ASSETS))
