"""Data assets materialized for real on tiny inputs: properties of what they store."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from tests.assets.conftest import materialize_data
from wavefin_core.scalograms import ScalogramSet
from wavefin_core.segments import Segments


def test_raw_prices_follow_the_ohlcv_contract(pipeline):
    for series in ("mjd", "sp500", "csv-good"):
        frame = pipeline.load("raw_prices", series)
        assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
        assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC"
        assert frame.index.is_monotonic_increasing
    assert len(pipeline.load("raw_prices", "mjd")) == 1440  # one day of minute bars
    meta = pipeline.materialization("raw_prices", "mjd").metadata
    assert meta["rows"].value == 1440 and "close" in meta


def test_clean_prices_pass_blocking_checks_and_have_log_returns(pipeline):
    frame = pipeline.load("clean_prices", "mjd")
    raw = pipeline.load("raw_prices", "mjd")
    expected = np.log(raw["close"].to_numpy()[1:] / raw["close"].to_numpy()[:-1])
    np.testing.assert_allclose(frame["log_return"].to_numpy(), expected, rtol=1e-9, atol=1e-15)
    checks = pipeline.data_results["mjd"].get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {"monotonic_unique_index", "no_nan", "positive_prices", "enough_rows"}
    assert all(c.passed for c in checks)


def test_segments_never_straddle_splits(pipeline):
    segs = Segments.from_frame(pipeline.load("segments", "sp500"))
    clean = pipeline.load("clean_prices", "sp500")
    times = clean.index
    order = {"train": 0, "val": 1, "test": 2}
    # Each window's label time lies before the next split's first window start, by at least the embargo.
    for earlier, later in (("train", "val"), ("val", "test")):
        last_label = pd.Timestamp(segs.label_time[segs.mask(earlier)].max())
        first_start = pd.Timestamp(segs.start_time[segs.mask(later)].min())
        gap = times.get_loc(first_start) - times.get_loc(last_label)
        assert gap > segs.embargo, (earlier, later, gap)
    assert [order[s] for s in segs.split] == sorted(order[s] for s in segs.split)
    train = segs.windows[segs.mask("train")]
    assert segs.mean == pytest.approx(train.mean()) and segs.std == pytest.approx(train.std(), rel=1e-6)


def test_scalograms_are_tensors_that_round_trip_to_returns(pipeline):
    table = pipeline.load("scalograms", "mjd")
    result = ScalogramSet.from_table(table)
    assert result.images.dtype == np.float32 and result.images.shape[1:] == (2, 16, 32)
    assert isinstance(table.schema.field("image").type, __import__("pyarrow").FixedShapeTensorType)
    assert result.roundtrip_error() < 1e-4
    meta = pipeline.materialization("scalograms", "mjd").metadata
    assert meta["roundtrip_rel_error"].value < 1e-4
    # Dataset-level scaling is fitted on train: train images have unit RMS per scale.
    train = result.images[result.mask("train")]
    rms = np.sqrt((train**2).sum(axis=1).mean(axis=(0, 2)))
    np.testing.assert_allclose(rms, 1.0, rtol=1e-3)


def test_csv_without_close_fails_and_writes_nothing(pipeline, tmp_path):
    from wavefin_assets.resources import storage_root

    result = materialize_data(pipeline.defs, pipeline.instance, "csv-noclose", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.error.to_string())
    assert "noclose.csv" in message and "close" in message.lower()
    stored = list((storage_root() / "io").rglob("csv-noclose*"))
    assert stored == []


def test_materialization_is_recorded_with_partition(pipeline):
    record = pipeline.instance.get_latest_materialization_event(dg.AssetKey("scalograms"))
    assert record is not None
    status = pipeline.instance.get_materialized_partitions(dg.AssetKey("scalograms"))
    assert {"mjd", "sp500", "csv-good"} <= set(status)


def test_test_windows_are_every_row_while_train_keeps_the_stride(pipeline):
    """Stride-1 test windows (horizon 1): the tiny config's stride 8 thins train and val only, and the stride
    of each split is recorded in the segments metadata and the scalograms' metadata."""
    segs = Segments.from_frame(pipeline.load("segments", "mjd"))
    clean = pipeline.load("clean_prices", "mjd")
    rows = {split: clean.index.get_indexer(segs.start_time[segs.mask(split)]) for split in ("train", "val", "test")}
    assert (np.diff(rows["train"]) == 8).all() and (np.diff(rows["val"]) == 8).all()
    assert (np.diff(rows["test"]) == 1).all()
    meta = pipeline.materialization("segments", "mjd").metadata
    assert meta["stride"].value == 8 and meta["test_stride"].value == 1
    s = ScalogramSet.from_table(pipeline.load("scalograms", "mjd"))
    assert (s.extra["stride"], s.extra["test_stride"]) == (8, 1)


def test_planted_partition_is_a_daily_series_with_the_planted_regimes(tmp_path):
    from tests.assets.conftest import TINY_DATA_CONFIG, series_instance
    from wavefin_assets.definitions import defs
    from wavefin_assets.io_manager import WavefinIOManager
    from wavefin_assets.resources import StorageResource
    from wavefin_core.data.simulate import simulate_planted

    resources = {**defs.resources, "io_manager": WavefinIOManager(base_dir=str(tmp_path / "io")),
                 "storage": StorageResource(root=str(tmp_path))}
    config = {"ops": {**TINY_DATA_CONFIG["ops"], "raw_prices": {"config": {"planted_days": 1500, "seed": 2}}}}
    instance = series_instance()
    result = dg.materialize(list(defs.assets), selection=["raw_prices", "clean_prices", "segments", "scalograms"],
                            partition_key="planted", instance=instance, resources=resources, run_config=config)
    assert result.success
    raw = result.asset_value("raw_prices")
    pd.testing.assert_frame_equal(raw, simulate_planted(days=1500, seed=2), check_freq=False)
    assert raw.attrs["source"] == "simulate_planted"
    s = ScalogramSet.from_table(result.asset_value("scalograms"))
    assert s.mask("test").sum() > 150  # stride-1 test windows of the 15% test split
