"""The data assets with tiny chunks: segments and scalograms are streamed in many row groups, stored through the
IO manager, and read back by the same readers the model assets use, with the in-memory numbers."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from wavefin_core.scalograms import ScalogramSet, build_scalograms
from wavefin_core.segments import Segments


def test_data_assets_in_chunks_store_what_the_model_assets_read(tmp_path) -> None:
    from tests.assets.conftest import series_instance
    from wavefin_assets.assets.common import select_series
    from wavefin_assets.definitions import defs
    from wavefin_assets.io_manager import WavefinIOManager

    resources = {**defs.resources, "io_manager": WavefinIOManager(base_dir=str(tmp_path / "io"))}
    config = {"ops": {"raw_prices": {"config": {"days": 1, "freq": "minute", "seed": 5}},
                      "segments": {"config": {"window": 32, "stride": 8, "chunk_windows": 50}},
                      "scalograms": {"config": {"num_scales": 8, "chunk_windows": 70}}}}
    instance = series_instance()
    result = dg.materialize(list(defs.assets), selection=["raw_prices", "clean_prices", "segments", "scalograms"],
                            partition_key="mjd", instance=instance, resources=resources, run_config=config)
    assert result.success
    stored = tmp_path / "io" / "scalograms" / "mjd.parquet"
    windows = pq.ParquetFile(stored).metadata.num_rows
    assert pq.ParquetFile(stored).metadata.num_row_groups == -(-windows // 70)
    assert pq.ParquetFile(tmp_path / "io" / "segments" / "mjd.parquet").metadata.num_row_groups == -(-windows // 50)
    meta = result.asset_materializations_for_node("scalograms")[0].metadata
    assert meta["chunks"].value == -(-windows // 70) and meta["dagster/row_count"].value == windows
    assert not [p for p in (tmp_path / "io").rglob(".*tmp-*")]  # nothing temporary left behind

    io_manager = resources["io_manager"]
    segments = io_manager.load_from_path(dg.build_input_context(), io_manager._base_path / "segments" / "mjd")
    table = io_manager.load_from_path(dg.build_input_context(), io_manager._base_path / "scalograms" / "mjd")
    chunked = select_series({"mjd": table}, [])["mjd"]  # how diffusion_model and forecasters read it
    reference = build_scalograms(Segments.from_frame(segments), num_scales=8, series="mjd")
    np.testing.assert_array_equal(chunked.windows, reference.windows)
    np.testing.assert_array_equal(chunked.split, reference.split)
    # Per-scale scaling summed chunk by chunk in float64 vs numpy's float32 mean: a few float32 ulps.
    np.testing.assert_allclose(chunked.images, reference.images, rtol=2e-6, atol=2e-6)
    in_process = ScalogramSet.from_table(result.asset_value("scalograms"))  # the in-process value: the file
    np.testing.assert_array_equal(in_process.images, chunked.images)
