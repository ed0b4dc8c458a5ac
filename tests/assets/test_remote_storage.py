"""`WAVEFIN_STORAGE=<fsspec URL>`: models and reports go to the object store, only staging copies stay local.

fsspec's `memory://` filesystem stands in for S3/GCS: it has the same object-store semantics (no directories,
no renames, objects written whole) and lives in this process, which is why the assets run in-process here.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from tests.assets.conftest import DATA_ASSETS, TINY_DATA_CONFIG, TINY_MODEL_CONFIG, series_instance

MODEL_AND_REPORT_ASSETS = ["diffusion_model", "synthetic_series", "generation_report", "forecasters",
                           "forecast_report"]


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """(storage URL, local storage dir): the environment of a deployment whose storage is an object store.

    Torch runs on one thread meanwhile: with tiny tensors on a busy 2-core machine, intra-op threads spin and a
    training step takes seconds instead of milliseconds.
    """
    import torch

    url = f"memory://wavefin-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "local"
    monkeypatch.setenv("WAVEFIN_STORAGE", url)
    monkeypatch.setenv("WAVEFIN_LOCAL_STORAGE", str(local))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield url, local
    torch.set_num_threads(threads)
    root = UPath(url)
    if root.exists():
        root.fs.rm(root.path, recursive=True)


def _tiny_model_config() -> dict:
    """The shared tiny model config, smaller still: storage is under test here, not the scores or the samplers."""
    ops = json.loads(json.dumps(TINY_MODEL_CONFIG["ops"]))
    ops["diffusion_model"]["config"]["max_steps"] = 4
    ops["synthetic_series"]["config"].update(benchmark_samplers=False, n_samples=12, num_inference_steps=2)
    ops["generation_report"]["config"].update(discriminative_seeds=1, classifier_steps=5, augmentation_seeds=0)
    ops["forecasters"]["config"].update(epochs=1, models=["logistic"], walk_forward_folds=0,
                                        volatility_task=False, volume_translation=False)
    return {"ops": ops}


def _files(root: UPath) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_models_and_reports_are_stored_in_the_object_store_and_nothing_local_but_staging(remote):
    from wavefin_assets.definitions import build_defs

    url, local = remote
    defs = build_defs()  # resources from the environment: io manager, storage and staging follow WAVEFIN_STORAGE
    instance = series_instance()
    data = dg.materialize(list(defs.assets), selection=DATA_ASSETS, partition_key="mjd", instance=instance,
                          resources=defs.resources, run_config=TINY_DATA_CONFIG)
    assert data.success
    models = dg.materialize(list(defs.assets), selection=MODEL_AND_REPORT_ASSETS, instance=instance,
                            resources=defs.resources, run_config=_tiny_model_config())
    assert models.success

    root = UPath(url)
    stored = _files(root)
    diffusion = json.loads((root / "io" / "diffusion_model" / "__all__.json").read_text())
    version = f"models/diffusion_model/{diffusion['version']}"
    assert diffusion["path"] == f"{url}/{version}"  # manifests name the stored copy, never the staging one
    assert f"{version}/manifest.json" in stored
    assert [f for f in stored if f.startswith(f"{version}/unet_ema/") and f.endswith(".safetensors")]
    assert "models/plots/diffusion_loss.png" in stored
    forecasters = json.loads((root / "io" / "forecasters" / "__all__.json").read_text())
    assert forecasters["predictions"] == f"{url}/models/forecasters/{forecasters['version']}/predictions.parquet"
    assert UPath(forecasters["predictions"]).is_file()
    for report in ("generation", "forecast"):
        output = json.loads((root / "io" / f"{report}_report" / "__all__.json").read_text())
        assert output["metrics_json"] == f"{url}/reports/{report}/metrics.json"
        assert json.loads(UPath(output["metrics_json"]).read_text())["series"]  # complete, parseable JSON
        assert UPath(output["report"]).read_text().startswith("#")
    assert [f for f in stored if f.startswith("reports/generation/figures/") and f.endswith(".png")]
    assert not [f for f in stored if ".tmp-" in f or ".old-" in f]  # no temporary name ever reached the store

    # Locally: only the staging area (what writers wrote before publishing, and training checkpoints).
    assert sorted(p.name for p in local.iterdir()) == ["staging"]

    # A machine without those staging copies reads the stored version back: sampling fetches the diffusion
    # model from the store (forecast_report fetches its predictions file the same way: storage.fetch).
    import shutil

    shutil.rmtree(local)
    sampling = {"ops": {"synthetic_series": _tiny_model_config()["ops"]["synthetic_series"]}}
    again = dg.materialize(list(defs.assets), selection=["synthetic_series"], instance=instance,
                           resources=defs.resources, run_config=sampling)
    assert again.success
    fetched = local / "staging" / "memory" / url.removeprefix("memory://") / version
    assert json.loads((fetched / "manifest.json").read_text()) == diffusion
    assert list(fetched.rglob("*.safetensors"))


def test_publish_fetch_and_prune_on_an_object_store(remote):
    from wavefin_assets.resources import StorageResource

    url, local = remote
    storage = StorageResource(root=url)
    for version in ["v1", "v2", "v3"]:  # stored one after another: v1 is the oldest
        work = storage.workdir("models", "m", version)
        (work / "weights.bin").write_bytes(version.encode())
        (work / "manifest.json").write_text(json.dumps({"version": version}))
        storage.publish("models", "m", version)
        time.sleep(0.01)  # versions are ordered by their manifests' store times
    in_progress = storage.workdir("models", "m", "v4")
    (in_progress / "weights.bin").write_bytes(b"v4")
    (in_progress / ".weights.bin.tmp-1-0badf00d-0badf00d").write_bytes(b"torn")  # never uploaded
    storage.publish("models", "m", "v4")  # a version being published: no manifest yet
    (UPath(url) / "models" / "m" / "v4" / "manifest.json").unlink(missing_ok=True)

    deleted = storage.prune_versions(("models", "m"), keep=2, current="v1")
    # v1 is current and kept; of the others with a manifest, the newest one (keep - 1); v4 is still uploading
    assert [Path(d).name for d in deleted] == ["v2"]
    assert sorted(p.name for p in (UPath(url) / "models" / "m").iterdir()) == ["v1", "v3", "v4"]
    assert _files(UPath(url) / "models" / "m" / "v4") == ["weights.bin"]

    # fetch: an atomic local copy, not downloaded again while the manifest is unchanged
    import shutil

    shutil.rmtree(local)
    copy = storage.fetch(f"{url}/models/m/v3")
    assert (copy / "weights.bin").read_bytes() == b"v3"
    (copy / "weights.bin").write_bytes(b"local edit")
    assert (storage.fetch(f"{url}/models/m/v3") / "weights.bin").read_bytes() == b"local edit"  # cached
    assert storage.fetch(f"{url}/models/m/v3/weights.bin").read_bytes() == b"v3"  # a single file: downloaded
    with pytest.raises(FileNotFoundError, match="materialize"):
        storage.fetch(f"{url}/models/m/v2")
