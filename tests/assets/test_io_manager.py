"""The Parquet/JSON IO manager: formats, partitions, no pickle; on local disk and on fsspec's memory://."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from upath import UPath

from wavefin_assets.io_manager import WavefinIOManager
from wavefin_core.io import host_tag


@pytest.fixture(params=["local", "memory"])
def base(request, tmp_path) -> Iterator[UPath]:
    """Where the IO manager writes: a local temporary directory, or a fresh prefix of fsspec's memory://
    filesystem (the stand-in for an object store: same UPath code path as s3://, no network)."""
    if request.param == "local":
        yield UPath(tmp_path)
        return
    root = UPath(f"memory://wavefin-test-{uuid.uuid4().hex[:8]}/io")
    yield root
    if root.exists():
        root.fs.rm(root.path, recursive=True)


def _files(root: UPath) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _roundtrip(manager: WavefinIOManager, value, partition: str | None = None):
    key = dg.AssetKey(["thing"])
    partitions = dg.StaticPartitionsDefinition(["a", "b"]) if partition else None
    out = dg.build_output_context(asset_key=key, partition_key=partition, asset_partitions_def=partitions)
    manager.handle_output(out, value)
    inp = dg.build_input_context(asset_key=key, partition_key=partition, asset_partitions_def=partitions,
                                 upstream_output=out)
    return manager.load_input(inp)


def test_dataframe_with_attrs_round_trips_as_parquet(base):
    manager = WavefinIOManager(base_dir=str(base))
    frame = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2020", periods=2, tz="UTC", name="timestamp"))
    frame.attrs["winsor_bounds"] = [-0.1, 0.1]
    loaded = _roundtrip(manager, frame, partition="a")
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)
    assert loaded.attrs["winsor_bounds"] == [-0.1, 0.1]
    assert _files(base) == ["thing/a.parquet"]  # no pickle, no temporary file left


def test_arrow_table_keeps_schema_metadata_and_dict_is_json(base):
    manager = WavefinIOManager(base_dir=str(base))
    table = pa.table({"image": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ones((3, 2, 2), np.float32))})
    table = table.replace_schema_metadata({b"k": b"v"})
    loaded = _roundtrip(manager, table)
    assert loaded.schema.metadata[b"k"] == b"v"
    np.testing.assert_array_equal(loaded.column("image").combine_chunks().to_numpy_ndarray(), np.ones((3, 2, 2)))
    assert _roundtrip(manager, {"path": "/x", "n": 3}) == {"path": "/x", "n": 3}
    assert _files(base) == ["thing/__all__.json"]  # the stale Parquet of the same asset was removed


def test_unsupported_types_are_refused_before_anything_is_written(base):
    manager = WavefinIOManager(base_dir=str(base))
    with pytest.raises(TypeError, match="DataFrame, pyarrow.Table or dict"):
        _roundtrip(manager, object())
    assert not base.exists() or _files(base) == []


def test_dots_in_partition_keys_do_not_collide(base):
    manager = WavefinIOManager(base_dir=str(base))
    key = dg.AssetKey(["raw"])
    partitions = dg.StaticPartitionsDefinition(["csv-EUR.USD", "csv-EUR.GBP"])
    for name, value in (("csv-EUR.USD", 1.0), ("csv-EUR.GBP", 2.0)):
        out = dg.build_output_context(asset_key=key, partition_key=name, asset_partitions_def=partitions)
        manager.handle_output(out, pd.DataFrame({"x": [value]}))
    assert _files(base) == ["raw/csv-EUR.GBP.parquet", "raw/csv-EUR.USD.parquet"]


def test_a_downstream_asset_reads_the_materialized_partitions_and_skips_missing_ones(base):
    """Real materializations through Dagster: a partitioned asset, then an unpartitioned one reading them all."""
    partitions = dg.StaticPartitionsDefinition(["mjd", "sp500", "csv-never"])

    @dg.asset(partitions_def=partitions)
    def prices(context) -> pd.DataFrame:
        return pd.DataFrame({"close": [1.0, 2.0]}).assign(series=context.partition_key)

    @dg.asset
    def model(prices: dict[str, pd.DataFrame]) -> dict:
        return {"series": sorted(prices), "rows": sum(len(f) for f in prices.values())}

    resources = {"io_manager": WavefinIOManager(base_dir=str(base))}
    instance = dg.DagsterInstance.ephemeral()
    for key in ("mjd", "sp500"):
        dg.materialize([prices], partition_key=key, resources=resources, instance=instance)
    result = dg.materialize([prices, model], selection=["model"], resources=resources, instance=instance)
    assert result.output_for_node("model") == {"series": ["mjd", "sp500"], "rows": 4}
    assert _files(base) == ["model/__all__.json", "prices/mjd.parquet", "prices/sp500.parquet"]
    (event,) = result.asset_materializations_for_node("model")
    assert event.metadata["path"].value == str(base / "model" / "__all__.json")


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


def test_storage_resource_publishes_local_work_to_the_storage_root(base, tmp_path, monkeypatch):
    """Writers that need a local directory write into workdir(); publish() makes it appear under path()."""
    from wavefin_assets.resources import StorageResource

    monkeypatch.setenv("WAVEFIN_LOCAL_STORAGE", str(tmp_path / "local"))
    storage = StorageResource(root=str(base))
    work = storage.workdir("reports", "forecast")
    assert isinstance(work, os.PathLike) and os.path.isdir(work)
    (work / "figures").mkdir(exist_ok=True)
    (work / "report.md").write_text("# report")
    (work / "figures" / "a.png").write_bytes(b"\x89PNG")
    published = storage.publish("reports", "forecast")
    assert published == storage.path("reports", "forecast") == base / "reports" / "forecast"
    assert (published / "report.md").read_text() == "# report"
    assert (published / "figures" / "a.png").read_bytes() == b"\x89PNG"
    fetched = storage.fetch(str(published))  # a reader's local copy (the directory itself on local disk)
    assert (fetched / "figures" / "a.png").read_bytes() == b"\x89PNG"
    assert storage.is_local == (base.protocol in ("", "file", "local"))
