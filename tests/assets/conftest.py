"""One tiny end-to-end materialization shared by the asset tests (each asset runs once, for real)."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pytest

DATA_SERIES = ("mjd", "sp500", "csv-good")

TINY_DATA_CONFIG = {
    "ops": {
        "raw_prices": {"config": {"days": 1, "freq": "minute", "seed": 3}},
        "segments": {"config": {"window": 32, "stride": 8}},
        "scalograms": {"config": {"num_scales": 16}},
    }
}
TINY_MODEL_CONFIG = {
    "ops": {
        "diffusion_model": {
            "config": {"block_out_channels": [16, 32], "batch_size": 16, "epochs": 50, "max_steps": 80,
                       # the volatility-regime lever on, with 2 buckets: labels (series, bucket), rescaled samples
                       "vol_buckets": 2, "vol_normalize": "window"}
        },
        # 24 windows per series; the samplers table on 10 windows per extra sampler, scored with 2 seeds
        "synthetic_series": {"config": {"n_samples": 24, "num_inference_steps": 5, "benchmark_samplers": True,
                                        "bench_ddpm_samples": 10,
                                        "bench_ddim_samples": 10, "bench_discriminative_seeds": 2}},
        # the report's structure and units are under test here, not its scores: few seeds and classifier steps
        "generation_report": {"config": {"discriminative_seeds": 2, "predictive_seeds": 1, "classifier_steps": 10,
                                         "augmentation_seeds": 2, "augmentation_epochs": 2}},
        # the Dense U-Net volume translation: 4 steps per series, every 8th test window (contract under test)
        "forecasters": {"config": {"epochs": 3, "batch_size": 32, "volume_max_steps": 4, "volume_test_stride": 8}},
    }
}
DATA_ASSETS = ["raw_prices", "clean_prices", "segments", "scalograms"]
MODEL_ASSETS = ["diffusion_model", "synthetic_series", "generation_report", "forecasters", "forecast_report"]


@dataclass
class Pipeline:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    data_results: dict[str, dg.ExecuteInProcessResult]
    model_result: dg.ExecuteInProcessResult

    def load(self, asset: str, partition: str | None = None):
        return self.defs.load_asset_value(asset, partition_key=partition, instance=self.instance)

    def materialization(self, asset: str, partition: str | None = None) -> dg.AssetMaterialization:
        result = self.data_results[partition] if partition else self.model_result
        events = result.asset_materializations_for_node(asset)
        assert len(events) == 1, f"{asset} was not materialized exactly once"
        return events[0]


def series_instance(*keys: str) -> dg.DagsterInstance:
    """An ephemeral instance with the built-in series and `keys` registered as `series` partitions (they are
    dynamic partitions: a run of an unregistered key fails with DagsterUnknownPartitionError)."""
    from wavefin_assets.partitions import BUILTIN_SERIES, SERIES_PARTITIONS_NAME

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, list(dict.fromkeys([*BUILTIN_SERIES, *keys])))
    return instance


def materialize_data(defs: dg.Definitions, instance: dg.DagsterInstance, partition: str, **kwargs):
    from wavefin_assets.partitions import SERIES_PARTITIONS_NAME

    if not instance.has_dynamic_partition(SERIES_PARTITIONS_NAME, partition):
        instance.add_dynamic_partitions(SERIES_PARTITIONS_NAME, [partition])
    return dg.materialize(
        list(defs.assets),
        selection=DATA_ASSETS,
        partition_key=partition,
        instance=instance,
        resources=defs.resources,
        run_config=TINY_DATA_CONFIG,
        **kwargs,
    )


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """Every asset materialized once, on one intra-op torch thread (restored afterwards).

    One thread, like the other fixtures that train (`own_storage`, `remote`): these tensors are tiny, and on a
    2-core machine shared with other work torch's intra-op threads spin while they wait for each other. An
    interleaved A/B of this fixture's diffusion step at load 8-10: 0.33 s on one thread, 5.0 s on torch's two
    (15x), and 0.084 vs 0.319 s (3.8x) at top CPU priority (`nice -n -20`, close to an idle machine); the
    fixture's diffusion_model step took 6 min 39 s on two threads (load 10-12), 24 s on one (load 6-7). The
    computation is the same on any thread count; only its speed differs.
    """
    import torch

    from wavefin_assets.definitions import defs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        instance = dg.DagsterInstance.ephemeral()
        data_results = {series: materialize_data(defs, instance, series) for series in DATA_SERIES}
        model_result = dg.materialize(
            list(defs.assets),
            selection=MODEL_ASSETS,
            instance=instance,
            resources=defs.resources,
            run_config={**TINY_MODEL_CONFIG},
        )
    finally:
        torch.set_num_threads(threads)
    return Pipeline(defs, instance, data_results, model_result)
