"""An IO manager that stores asset values as Parquet and JSON — never pickle.

Dagster's default IO manager pickles every output. wavefin's outputs are tables (OHLCV frames, segments,
scalogram tensors) and small JSON-able manifests (where a model was saved, its metrics), so each is stored in
the format a user can open with any tool: a `pd.DataFrame` or `pyarrow.Table` as Parquet, a `dict` as JSON.
Writes go to a temporary file that is renamed into place, so a failed run never leaves a half-written file; the
temporary files of a killed run are removed when the next run starts.

Layout: `<base_dir>/<asset key path>/<partition>.parquet|json` (`__all__` for unpartitioned assets).
Downstream assets that read every partition of an upstream asset get a `{partition: value}` dict holding the
partitions that have been materialized (missing ones are skipped with a warning, so one unmaterialized user CSV
does not block training on the rest).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wavefin_core.io import atomic_path, remove_orphans

UNPARTITIONED = "__all__"
SUFFIXES = (".parquet", ".json")


def _with(stem: Path, suffix: str) -> Path:
    """`stem` + `suffix`; unlike `Path.with_suffix` it keeps dots in partition keys (`csv-EUR.USD`)."""
    return stem.parent / f"{stem.name}{suffix}"


class WavefinIOManager(dg.ConfigurableIOManager):
    """Parquet/JSON storage under `base_dir` (default `storage/io`)."""

    base_dir: str = "storage/io"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remove the temporary files of writes that were killed (their writer is gone) before writing anew."""
        for path in remove_orphans(self.base_dir):
            if context.log is not None:
                context.log.info(f"Cleaned up after an interrupted write: {path}")

    def _stem(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path) / (partition or UNPARTITIONED)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        stem = self._stem(context.asset_key, partition)
        stem.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            path = _with(stem, ".parquet")
            with atomic_path(path) as tmp:
                obj.to_parquet(tmp)
        elif isinstance(obj, pa.Table):
            path = _with(stem, ".parquet")
            with atomic_path(path) as tmp:
                pq.write_table(obj, tmp)
        elif isinstance(obj, dict):
            path = _with(stem, ".json")
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(obj, indent=2, default=str))
        else:
            raise TypeError(
                f"WavefinIOManager stores DataFrame, pyarrow.Table or dict outputs; asset "
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}."
            )
        # Remove a stale file of the other format, so a load never finds two candidates.
        for suffix in SUFFIXES:
            other = _with(stem, suffix)
            if other != path and other.exists():
                other.unlink()
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        asset_key = context.asset_key
        if not context.has_asset_partitions:
            return self._load(self._stem(asset_key, None), asset_key)
        keys = list(context.asset_partition_keys)
        if len(keys) == 1 and context.has_partition_key and context.partition_key == keys[0]:
            # A partitioned asset reading the same partition of its partitioned parent.
            return self._load(self._stem(asset_key, keys[0]), asset_key)
        loaded: dict[str, Any] = {}
        for key in keys:
            stem = self._stem(asset_key, key)
            if any(_with(stem, s).exists() for s in SUFFIXES):
                loaded[key] = self._load(stem, asset_key)
            else:
                context.log.warning(
                    f"{asset_key.to_user_string()} partition {key!r} is not materialized; skipping it."
                )
        if not loaded:
            raise FileNotFoundError(
                f"No partition of {asset_key.to_user_string()} is materialized under {self.base_dir}; "
                f"materialize it first (e.g. `make run`, or the asset's partitions in the Dagster UI)."
            )
        return loaded

    @staticmethod
    def _load(stem: Path, asset_key: dg.AssetKey) -> Any:
        parquet, js = _with(stem, ".parquet"), _with(stem, ".json")
        if parquet.exists():
            if pq.read_schema(parquet).pandas_metadata is not None:
                return pd.read_parquet(parquet)
            return pq.read_table(parquet)
        if js.exists():
            return json.loads(js.read_text())
        raise FileNotFoundError(
            f"{asset_key.to_user_string()} has no stored value at {stem}.*; materialize it first."
        )


def default_io_manager() -> WavefinIOManager:
    """The IO manager under `$WAVEFIN_STORAGE/io` (default `storage/io`)."""
    return WavefinIOManager(base_dir=str(Path(os.environ.get("WAVEFIN_STORAGE", "storage")).resolve() / "io"))
