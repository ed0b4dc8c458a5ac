"""The bad-input corpus (tests/data/bad/): every bad file fails `raw_prices` with a message naming the file, the
row or field and the fix, and leaves storage exactly as it was.

Each case runs the data assets for real through Dagster, with the bad file as the `csv-good` partition of a
throw-away prices directory (the partition keys are fixed when the definitions are imported) and a storage
pre-filled by one good materialization, so "nothing written" covers both "nothing created" and "nothing
overwritten".
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from tests.assets.conftest import DATA_ASSETS, TINY_DATA_CONFIG, series_instance
from wavefin_assets.io_manager import WavefinIOManager
from wavefin_assets.partitions import MAX_KEY_CHARS, csv_partition_key, scan_csv_series

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad"
KEY = "csv-good"

# file in the corpus -> fragments the failure message must contain (besides the file's path)
BAD_FILES = {
    "no_close_column.csv": ["no close column", "Add a 'Close'"],
    "empty.csv": ["empty"],
    "header_only.csv": ["no rows"],
    "non_numeric_price.csv": ["line 3", "'Open'", "abc"],
    "negative_price.csv": ["line 3", "close", "Fix or remove"],
    "bad_date.csv": ["line 3", "2020-13-45", "date_format"],
    "conflicting_duplicate.csv": ["line 2", "line 4", "share timestamp"],
    "ragged_rows.csv": ["malformed", "line 2"],
    "nul_bytes.csv": ["not a text CSV"],
    "dayfirst_ambiguous.csv": ["ambiguous", "line 2", "date_format='%d/%m/%Y'", "'%m/%d/%Y'"],
    "dates_mixed_order.csv": ["mixes day-first", "line 2", "line 3"],
    "absurd_price.csv": ["line 3", "log return of 705", "max_abs_log_return"],
    "short_series.csv": ["20 rows", "needs at least", "segments.window"],
}


def _good_csv(path: Path, rows: int = 600) -> None:
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    times = pd.date_range("2021-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    pd.DataFrame({"Date": times, "Close": close, "Volume": 10}).to_csv(path, index=False)


def _run(prices: Path, storage: Path, monkeypatch, run_config=None) -> dg.ExecuteInProcessResult:
    from wavefin_assets.definitions import defs

    monkeypatch.setenv("WAVEFIN_PRICES_DIR", str(prices))
    resources = {**defs.resources, "io_manager": WavefinIOManager(base_dir=str(storage))}
    return dg.materialize(
        list(defs.assets), selection=DATA_ASSETS, partition_key=KEY, resources=resources,
        run_config=run_config or TINY_DATA_CONFIG, instance=series_instance(KEY), raise_on_error=False,
    )


def _snapshot(storage: Path) -> dict[str, str]:
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*")) if p.is_file()}


def _failure(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_key, str(failure.step_failure_data.error.to_string())


@pytest.fixture(scope="module")
def good_storage(tmp_path_factory, request) -> Path:
    """Storage holding one good materialization of every data asset of `csv-good`."""
    monkeypatch = pytest.MonkeyPatch()
    request.addfinalizer(monkeypatch.undo)
    prices, storage = tmp_path_factory.mktemp("good-prices"), tmp_path_factory.mktemp("good-storage")
    _good_csv(prices / "good.csv")
    assert _run(prices, storage, monkeypatch).success
    assert len(_snapshot(storage)) == len(DATA_ASSETS)
    return storage


@pytest.fixture
def case_dirs(tmp_path, good_storage) -> tuple[Path, Path, dict[str, str]]:
    prices, storage = tmp_path / "prices", tmp_path / "storage"
    prices.mkdir()
    shutil.copytree(good_storage, storage)
    return prices, storage, _snapshot(storage)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_fails_raw_prices_and_writes_nothing(name, case_dirs, monkeypatch):
    prices, storage, before = case_dirs
    target = prices / "good.csv"
    shutil.copyfile(CORPUS / name, target)
    step, message = _failure(_run(prices, storage, monkeypatch))
    assert step == "raw_prices", message
    assert "DataError" in message and str(target) in message, message
    for fragment in BAD_FILES[name]:
        assert fragment in message, f"{fragment!r} missing from: {message}"
    assert _snapshot(storage) == before


def test_every_corpus_file_has_a_case():
    files = {p.name for p in CORPUS.glob("*.csv")}
    assert files == set(BAD_FILES) | {"dayfirst_proven.csv"}


def test_day_first_dates_load_when_the_data_proves_the_order():
    from wavefin_core.data import load_ohlcv

    frame = load_ohlcv(CORPUS / "dayfirst_proven.csv")
    assert list(frame.index) == [pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-01-13", tz="UTC")]


def test_colliding_file_names_fail_naming_both_and_never_renumber(case_dirs, monkeypatch):
    prices, storage, before = case_dirs
    _good_csv(prices / "good.csv")
    _good_csv(prices / "Good.csv")  # same key ignoring case: one file on macOS/Windows disks
    step, message = _failure(_run(prices, storage, monkeypatch))
    assert step == "raw_prices" and "'Good.csv'" in message and "'good.csv'" in message, message
    assert "Rename" in message
    assert _snapshot(storage) == before
    # The issue's own example: the key of `a_b.csv` never moves to `a b.csv`.
    (prices / "a b.csv").write_text("x")
    (prices / "a_b.csv").write_text("x")
    scan = scan_csv_series(prices)
    assert "csv-a_b" in scan.refused and "csv-a_b" not in scan.files and "csv-a_b-2" not in scan.keys()
    assert "'a b.csv' and 'a_b.csv'" in scan.refused["csv-a_b"]


def test_symlink_out_of_the_prices_directory_is_refused(case_dirs, tmp_path, monkeypatch):
    prices, storage, before = case_dirs
    outside = tmp_path / "elsewhere.csv"
    _good_csv(outside)
    (prices / "good.csv").symlink_to(outside)
    step, message = _failure(_run(prices, storage, monkeypatch))
    assert step == "raw_prices" and "outside the prices directory" in message and "Copy the file" in message
    assert _snapshot(storage) == before


def test_long_file_name_gets_a_short_stable_key(tmp_path):
    long_name = "x" * 200 + " é" + "y" * 38 + ".csv"  # 240 characters plus the suffix
    (tmp_path / long_name).write_text("Date,Close\n2020-01-01,1\n")
    key = csv_partition_key(tmp_path / long_name)
    assert len(key) <= MAX_KEY_CHARS and key.startswith("csv-xxx")
    assert scan_csv_series(tmp_path).files == {key: tmp_path / long_name}
    assert csv_partition_key(tmp_path / ("x" * 200 + " é" + "y" * 37 + "z.csv")) != key  # hash tells them apart
    # The IO manager can store it (the full name crashed it with `File name too long`).
    store = WavefinIOManager(base_dir=str(tmp_path / "io"))
    context = dg.build_output_context(asset_key=dg.AssetKey("raw_prices"), partition_key=key)
    store.handle_output(context, pd.DataFrame({"a": [1.0]}))
    assert (tmp_path / "io" / "raw_prices" / f"{key}.parquet").exists()


def test_window_below_the_minimum_fails_at_the_first_asset(case_dirs, monkeypatch):
    prices, storage, before = case_dirs
    _good_csv(prices / "good.csv")
    config = {"ops": {**TINY_DATA_CONFIG["ops"], "segments": {"config": {"window": 2, "stride": 1}}}}
    step, message = _failure(_run(prices, storage, monkeypatch, config))
    assert step == "raw_prices" and "segments.window=2" in message and "minimum of 4" in message, message
    assert _snapshot(storage) == before


def test_huge_num_scales_is_refused_with_the_estimate(case_dirs, monkeypatch):
    prices, storage, before = case_dirs
    _good_csv(prices / "good.csv")
    config = {"ops": {**TINY_DATA_CONFIG["ops"], "scalograms": {"config": {"num_scales": 1_000_000}}}}
    step, message = _failure(_run(prices, storage, monkeypatch, config))
    assert step == "scalograms" and "GiB" in message and "scalograms.num_scales" in message, message
    scalograms = [k for k in before if k.startswith("scalograms")]
    assert scalograms and all(_snapshot(storage)[k] == before[k] for k in scalograms)
