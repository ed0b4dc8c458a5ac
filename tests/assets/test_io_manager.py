"""The Parquet/JSON IO manager: formats, partitions, and no pickle."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from wavefin_assets.io_manager import WavefinIOManager
from wavefin_core.io import host_tag


def _roundtrip(manager: WavefinIOManager, value, partition: str | None = None):
    key = dg.AssetKey(["thing"])
    partitions = dg.StaticPartitionsDefinition(["a", "b"]) if partition else None
    out = dg.build_output_context(asset_key=key, partition_key=partition, asset_partitions_def=partitions)
    manager.handle_output(out, value)
    inp = dg.build_input_context(asset_key=key, partition_key=partition, asset_partitions_def=partitions,
                                 upstream_output=out)
    return manager.load_input(inp)


def test_dataframe_with_attrs_round_trips_as_parquet(tmp_path):
    manager = WavefinIOManager(base_dir=str(tmp_path))
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2020", periods=2, tz="UTC", name="timestamp"))
    frame.attrs["winsor_bounds"] = [-0.1, 0.1]
    loaded = _roundtrip(manager, frame, partition="a")
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)
    assert loaded.attrs["winsor_bounds"] == [-0.1, 0.1]
    assert (tmp_path / "thing" / "a.parquet").exists()
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob(".*tmp*"))


def test_arrow_table_keeps_schema_metadata_and_dict_is_json(tmp_path):
    manager = WavefinIOManager(base_dir=str(tmp_path))
    table = pa.table({"image": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ones((3, 2, 2), np.float32))})
    table = table.replace_schema_metadata({b"k": b"v"})
    loaded = _roundtrip(manager, table)
    assert loaded.schema.metadata[b"k"] == b"v"
    np.testing.assert_array_equal(loaded.column("image").combine_chunks().to_numpy_ndarray(), np.ones((3, 2, 2)))
    assert _roundtrip(manager, {"path": "/x", "n": 3}) == {"path": "/x", "n": 3}
    assert (tmp_path / "thing" / "__all__.json").exists()
    assert not (tmp_path / "thing" / "__all__.parquet").exists()  # the stale format was removed


def test_unsupported_types_are_refused(tmp_path):
    manager = WavefinIOManager(base_dir=str(tmp_path))
    with pytest.raises(TypeError, match="DataFrame, pyarrow.Table or dict"):
        _roundtrip(manager, object())


def test_dots_in_partition_keys_do_not_collide(tmp_path):
    manager = WavefinIOManager(base_dir=str(tmp_path))
    key = dg.AssetKey(["raw"])
    partitions = dg.StaticPartitionsDefinition(["csv-EUR.USD", "csv-EUR.GBP"])
    for name, value in (("csv-EUR.USD", 1.0), ("csv-EUR.GBP", 2.0)):
        out = dg.build_output_context(asset_key=key, partition_key=name, asset_partitions_def=partitions)
        manager.handle_output(out, pd.DataFrame({"x": [value]}))
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["csv-EUR.GBP.parquet", "csv-EUR.USD.parquet"]


def test_io_manager_start_removes_orphaned_temp_files(tmp_path):
    folder = tmp_path / "raw_prices"
    folder.mkdir()
    torn = folder / f".mjd.parquet.tmp-{_dead_pid()}-{host_tag()}-0badf00d"
    torn.write_bytes(b"PAR1 torn")  # the 20 MB corrupt Parquet of issue 6, in small
    in_progress = folder / f".sp500.parquet.tmp-{os.getpid()}-{host_tag()}-0badf00d"
    in_progress.write_bytes(b"PAR1 still writing")
    with dg.build_resources({"io_manager": WavefinIOManager(base_dir=str(tmp_path))}):
        pass
    assert not torn.exists()
    assert in_progress.exists()
    assert sorted(p.name for p in folder.iterdir()) == [in_progress.name]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
