"""Metadata the UI shows stays small and standard: bounded thumbnails, one stored copy of a report, and
Dagster's table metadata (row count, column schema) on every data asset."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import dagster as dg
import numpy as np
from PIL import Image

from wavefin_assets.metadata import (
    THUMBNAIL_MAX_BYTES,
    add_report_metadata,
    image_md,
    report_md,
    thumbnail_png,
)

_INLINE = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


def _noise_png(path: Path, width: int = 1600, height: int = 900) -> Path:
    """Random RGB noise: the worst case for PNG compression (a real plot compresses far better)."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _inlined(markdown: str) -> list[bytes]:
    return [base64.b64decode(m) for m in _INLINE.findall(markdown)]


def test_image_md_inlines_a_bounded_thumbnail_and_names_the_full_file(tmp_path):
    big = _noise_png(tmp_path / "loss.png")
    assert big.stat().st_size > 10 * THUMBNAIL_MAX_BYTES
    text = image_md(big, "loss").value
    (thumb,) = _inlined(text)
    assert len(thumb) <= THUMBNAIL_MAX_BYTES
    assert Image.open(io.BytesIO(thumb)).format == "PNG"
    assert str(big) in text  # the full-size figure stays reachable


def test_thumbnail_keeps_the_aspect_ratio_and_never_upscales():
    buffer = io.BytesIO()
    Image.new("RGB", (300, 100), "white").save(buffer, format="PNG")
    small = Image.open(io.BytesIO(thumbnail_png(buffer.getvalue())))
    assert small.size == (300, 100)


def test_report_md_inlines_thumbnails_within_the_budget(tmp_path):
    (tmp_path / "figures").mkdir()
    for i in range(3):
        _noise_png(tmp_path / "figures" / f"f{i}.png", 800, 400)
    (tmp_path / "report.md").write_text("# r\n" + "".join(f"![fig {i}](figures/f{i}.png)\n" for i in range(3)))
    text = report_md(tmp_path / "report.md", max_inline_bytes=2 * THUMBNAIL_MAX_BYTES).value
    images = _inlined(text)
    assert 1 <= len(images) <= 2 and all(len(b) <= THUMBNAIL_MAX_BYTES for b in images)
    assert sum(map(len, images)) <= 2 * THUMBNAIL_MAX_BYTES
    assert "not inlined" in text and str(tmp_path / "figures" / "f2.png") in text


def test_report_markdown_is_stored_once_per_materialization(tmp_path):
    (tmp_path / "report.md").write_text("# a report\nUNIQUE-REPORT-MARKER\n")

    @dg.asset
    def tiny_report(context):  # no annotation: Dagster cannot resolve a string one on a local function
        add_report_metadata(context, tmp_path / "report.md")
        return dg.Output(1, metadata={"small": 1})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([tiny_report], instance=instance)
    (materialization,) = result.asset_materializations_for_node("tiny_report")
    assert "UNIQUE-REPORT-MARKER" in materialization.metadata["report"].value
    records = instance.all_logs(result.run_id)
    holding = [r.dagster_event.event_type_value for r in records
               if r.dagster_event and "UNIQUE-REPORT-MARKER" in repr(r.dagster_event.event_specific_data)]
    assert holding == ["ASSET_MATERIALIZATION"]


def test_data_assets_carry_row_count_and_column_schema():
    """Dagster's standard table metadata on each data asset, equal to what was stored (a data-only run of `mjd`
    on its own instance: a few seconds, independent of the model assets)."""
    from tests.assets.conftest import materialize_data
    from wavefin_assets.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    partitions = defs.resolve_assets_def("raw_prices").partitions_def
    if isinstance(partitions, dg.DynamicPartitionsDefinition):
        instance.add_dynamic_partitions(partitions.name, ["mjd"])
    result = materialize_data(defs, instance, "mjd")
    for asset in ("raw_prices", "clean_prices", "segments", "scalograms"):
        (event,) = result.asset_materializations_for_node(asset)
        stored = defs.load_asset_value(asset, partition_key="mjd", instance=instance)
        rows = stored.num_rows if hasattr(stored, "num_rows") else len(stored)
        assert event.metadata["dagster/row_count"].value == rows > 0, asset
        columns = event.metadata["dagster/column_schema"].schema.columns
        assert columns and all(c.name and c.type for c in columns), asset
        if asset == "raw_prices":  # the UTC index is stored as a column, then the OHLCV columns
            assert [c.name for c in columns] == ["timestamp", "open", "high", "low", "close", "volume"]
            assert columns[0].type == "datetime64[ns, UTC]"


def test_synthetic_series_log_says_when_the_leverage_calibration_fitted_nothing():
    """A series whose train split is too short for a leverage curve stores an empty one: its fit's means are
    None, and the log line says nothing was fitted instead of failing to format them."""
    from wavefin_assets.assets.generation import _leverage_log
    from wavefin_core.models.leverage import LeverageFit

    empty = np.zeros(0)
    assert "nothing fitted" in _leverage_log(LeverageFit(0.0, 0.5, empty, empty, empty, fitted=False).to_dict())
    curve = np.full(10, -0.05)
    assert "theta 1.10, memory 0.93" in _leverage_log(LeverageFit(1.1, 0.93, curve, 0.1 * curve, curve).to_dict())
    assert _leverage_log(None) == ""
