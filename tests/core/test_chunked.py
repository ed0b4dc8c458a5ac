"""The data chain in chunks: segments and scalograms streamed to Parquet give the in-memory numbers, their memory
does not grow with the series, and the files read back through the readers downstream assets use."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from wavefin_core.data.memory import DISK_RESERVE_BYTES, check_disk
from wavefin_core.errors import ConfigError
from wavefin_core.io import StagedFile, find_leftovers, publish_staged, staged_file
from wavefin_core.scalograms import (
    ScalogramSet,
    build_scalograms,
    contiguous_returns,
    scalogram_chunk_windows,
    write_scalograms,
)
from wavefin_core.segments import Segments, SegmentsFile, make_segments, plan_segments, write_segments

SEGMENT_FIELDS = ("windows", "target_return", "direction", "split", "start_time", "end_time", "label_time")


def returns_series(n: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="min", tz="UTC", name="timestamp")
    return pd.Series(rng.standard_t(4, n) * 1e-3, index=index, name="log_return")


def assert_same_segments(a: Segments, b: Segments) -> None:
    for name in SEGMENT_FIELDS:
        np.testing.assert_array_equal(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name)
    assert (a.mean, a.std, a.stride_of("test")) == (b.mean, b.std, b.stride_of("test"))


def test_streamed_segments_file_is_what_to_frame_writes(tmp_path) -> None:
    returns = returns_series(3000)
    whole = make_segments(returns, window=16, stride=4, horizon=2)
    write_segments(plan_segments(returns, window=16, stride=4, horizon=2), tmp_path / "s.parquet", chunk_windows=7)
    whole.to_frame().to_parquet(tmp_path / "frame.parquet")

    assert pq.ParquetFile(tmp_path / "s.parquet").metadata.num_row_groups == -(-len(whole) // 7)
    streamed, reference = pq.read_schema(tmp_path / "s.parquet"), pq.read_schema(tmp_path / "frame.parquet")
    assert streamed.equals(reference, check_metadata=False)
    # What pandas readers (the IO manager, downstream assets) get back: the same frame, attrs included.
    frame = pd.read_parquet(tmp_path / "s.parquet")
    assert frame.attrs == pd.read_parquet(tmp_path / "frame.parquet").attrs
    assert_same_segments(Segments.from_frame(frame), whole)
    # The chunked reader the scalograms asset uses: the same windows, chunk after chunk.
    source = SegmentsFile(tmp_path / "s.parquet")
    chunks = list(source.iter_chunks(50))
    assert [len(c) for c in chunks[:-1]] == [50] * (len(chunks) - 1) and sum(map(len, chunks)) == len(whole)
    assert_same_segments(source.read(), whole)
    np.testing.assert_array_equal(np.concatenate([c.windows for c in chunks]), whole.windows)
    assert source.count("train") == whole.counts()["train"]


def test_train_statistics_need_no_window_array() -> None:
    """The plan's mean/std count every value once per train window that holds it, as windows.mean() does."""
    returns = returns_series(5000, seed=3)
    plan = plan_segments(returns, window=32, stride=5)
    windows = plan.to_segments().windows[plan.split == "train"]
    # Same values, different summation order (weighted dot vs numpy's pairwise sum): a few ulps apart.
    assert plan.mean == pytest.approx(windows.mean(), rel=1e-12, abs=1e-18)
    assert plan.std == pytest.approx(windows.std(), rel=1e-12)


def test_chunked_scalograms_equal_the_in_memory_ones(tmp_path) -> None:
    returns = returns_series(4000, seed=1)
    plan = plan_segments(returns, window=32, stride=8)
    write_segments(plan, tmp_path / "s.parquet")
    source = SegmentsFile(tmp_path / "s.parquet")
    reference = build_scalograms(plan.to_segments(), num_scales=8, series="x")

    one = write_scalograms(source, tmp_path / "one.parquet", num_scales=8, series="x")
    many = write_scalograms(source, tmp_path / "many.parquet", num_scales=8, series="x", chunk_windows=37)
    assert (one.chunks, many.chunks) == (1, -(-len(plan) // 37))
    # One chunk: exactly today's table (same numbers, same metadata; Parquet renames the list's child field).
    stored, expected = pq.read_table(tmp_path / "one.parquet"), reference.to_table()
    assert stored.schema.metadata == expected.schema.metadata and stored.column_names == expected.column_names
    assert all(stored.column(name).equals(expected.column(name)) for name in expected.column_names)
    chunked = ScalogramSet.from_table(pq.read_table(tmp_path / "many.parquet"))
    for name in ("windows", "target_return", "direction", "split", "end_time", "label_time", "scales"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(reference, name), err_msg=name)
    assert (chunked.norm_mean, chunked.norm_std, chunked.extra) == (reference.norm_mean, reference.norm_std,
                                                                    reference.extra)
    # The per-scale scaling is the train RMS summed chunk by chunk in float64 instead of numpy's float32 mean
    # of the whole array: a few float32 ulps apart, and the images by as much.
    np.testing.assert_allclose(chunked.channel_scale, reference.channel_scale, rtol=2e-6)
    np.testing.assert_allclose(chunked.images, reference.images, rtol=2e-6, atol=2e-6)
    # With the same scaling, every window's image is bit for bit the in-memory one (each window is
    # transformed on its own, whatever chunk it is in).
    same_scale = build_scalograms(plan.to_segments(), num_scales=8, series="x", channel_scale=chunked.channel_scale)
    np.testing.assert_array_equal(chunked.images, same_scale.images)
    # The round trip (float32 images through a float32 matmul) depends on the batch the BLAS kernel gets: the
    # chunked error is the same float32 storage noise, not the same number.
    assert many.roundtrip_error < 1e-6 and reference.roundtrip_error() < 1e-6
    np.testing.assert_array_equal(many.examples.rows, one.examples.rows)
    np.testing.assert_array_equal(many.examples.images, chunked.images[many.examples.rows])


def _peak_bytes(n: int, directory, chunk: int) -> tuple[int, int]:
    """tracemalloc peak (numpy and Python memory) of segments + scalograms for an ``n``-row series, and the
    bytes of its images."""
    returns = returns_series(n, seed=2)
    tracemalloc.start()
    try:
        plan = plan_segments(returns, window=32, stride=8, test_stride=8)
        write_segments(plan, directory / f"s{n}.parquet", chunk_windows=chunk)
        del plan
        summary = write_scalograms(SegmentsFile(directory / f"s{n}.parquet"), directory / f"x{n}.parquet",
                                   num_scales=8, chunk_windows=chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, summary.image_bytes


def test_memory_is_bounded_by_the_chunk_not_the_series(tmp_path) -> None:
    """A 10x longer series with the same chunk size: the peak may grow by the O(rows) arrays (returns, their
    timestamps, the train statistics' temporaries: ~50 bytes a row), never by its windows or images (1 KiB a
    window here).
    tracemalloc sees numpy and Python allocations; Arrow's buffers (the Parquet writer) are bounded by the row
    group and measured as RSS by bench/bench_chain.py."""
    small, small_images = _peak_bytes(6_000, tmp_path, chunk=500)
    large, large_images = _peak_bytes(60_000, tmp_path, chunk=500)
    assert large_images > 9 * small_images
    # measured 3.5 MB -> 3.2 MB (the 10x series' O(rows) arrays are smaller than one chunk's working memory);
    # in memory the images alone would grow 10x
    assert large < 1.5 * small, (small, large)
    assert large < large_images / 3, (large, large_images)  # the images are never all in memory


def test_stored_scalograms_read_back_through_every_reader(tmp_path) -> None:
    returns = returns_series(3000, seed=4)
    plan = plan_segments(returns, window=32, stride=8)
    with staged_file(tmp_path / "staging", "x.parquet") as staged_segments:
        write_segments(plan, staged_segments, chunk_windows=64)
    with staged_file(tmp_path / "staging", "y.parquet") as staged:
        write_scalograms(SegmentsFile(staged_segments), staged, num_scales=8, series="x", chunk_windows=64)
    assert {leftover.path for leftover in find_leftovers(tmp_path)} == {staged_segments, staged}  # temp-named
    value = StagedFile(staged)
    publish_staged(value, tmp_path / "io" / "scalograms" / "x.parquet")
    assert value.path == tmp_path / "io" / "scalograms" / "x.parquet" and not staged.exists()

    from_file = ScalogramSet.from_table(value)  # what an in-process result hands a test
    from_table = ScalogramSet.from_table(pq.read_table(value.path, memory_map=True))  # the IO manager's load
    np.testing.assert_array_equal(from_file.images, from_table.images)
    # The evaluation's reader: the split's contiguous returns are the series' own returns.
    test_returns = contiguous_returns(from_table, "test")
    first_test = int(plan.starts[plan.split == "test"][0])
    np.testing.assert_array_equal(test_returns, returns.to_numpy()[first_test:first_test + len(test_returns)])
    # The inverse map still holds across chunks (float32 storage precision).
    assert from_table.roundtrip_error() < 1e-6


def test_a_failed_write_leaves_nothing_behind(tmp_path) -> None:
    with pytest.raises(ConfigError):
        with staged_file(tmp_path, "x.parquet") as path:
            write_scalograms(SegmentsFile(_segments_file(tmp_path)), path, num_scales=8, chunk_windows=0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x.parquet")]


def _segments_file(directory):
    path = directory / "segments.parquet"
    write_segments(plan_segments(returns_series(1500), window=16, stride=8), path)
    return path


def test_disk_check_names_the_size_the_free_space_and_the_fix(tmp_path) -> None:
    import shutil

    free = shutil.disk_usage(tmp_path).free
    check_disk("scalograms of series 'x'", free - 2 * DISK_RESERVE_BYTES, tmp_path, "formula", "Raise the stride.")
    with pytest.raises(ConfigError) as info:
        check_disk("scalograms of series 'x'", free + 2**30, tmp_path / "not" / "yet", "1 x 2 x 3",
                   "Raise segments.stride.")
    message = str(info.value)
    assert "scalograms of series 'x'" in message and "GiB on disk (1 x 2 x 3)" in message
    assert f"{free / 2**30:.1f} GiB free" in message and str(tmp_path) in message and "segments.stride" in message


def test_chunk_size_default_and_validation() -> None:
    assert scalogram_chunk_windows(16, 64) == 8192  # 256 MiB of working memory at the quick sizes
    assert scalogram_chunk_windows(64, 256) == 512
    assert scalogram_chunk_windows(16, 64, 100) == 100
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="chunk_windows"):
            scalogram_chunk_windows(16, 64, bad)
