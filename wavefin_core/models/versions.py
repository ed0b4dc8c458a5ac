"""Versioned model directories: every training writes a new version; the newest K are kept.

A model asset writes `<root>/<version>/` (the orchestrator uses its run id as the version) and names that exact
directory in its manifest, so a downstream step reads the weights its own upstream step trained, even when
another run trains the same asset in between. Old versions are pruned by modification time after each
successful save; the version just written is never pruned, and neither are the temporary directories of saves
still in progress (`atomic_directory` names them `.<name>.tmp-*`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from wavefin_core.errors import ConfigError, DataError
from wavefin_core.io import atomic_path

MANIFEST_FILE = "manifest.json"


def check_keep_versions(keep: int) -> int:
    """Return `keep`, or raise ConfigError unless it is a positive integer."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"keep_versions={keep!r} must be an integer >= 1 (how many model versions to keep); e.g. 3.")
    return keep


def version_dir(root: str | Path, version: str) -> Path:
    """`<root>/<version>`, refusing version names that would leave `root` or hide the directory."""
    if not version or version.startswith(".") or "/" in version or "\\" in version:
        raise ConfigError(f"model version {version!r} must be a plain, non-hidden directory name (e.g. a run id).")
    return Path(root) / version


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write `manifest` as `<directory>/manifest.json`, atomically: the record of what this version holds."""
    path = Path(directory) / MANIFEST_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
    return path


def read_manifest(directory: str | Path) -> dict[str, Any] | None:
    """The manifest a version directory holds, or None when it has none (not written by this run)."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); delete that model version and retrain it.") from exc


def prune_versions(root: str | Path, keep: int, current: str | Path) -> list[Path]:
    """Delete all but the `keep` newest version directories under `root` (by mtime); return those deleted.

    `current` (the version just written) is always kept, counted among the `keep`.
    """
    check_keep_versions(keep)
    root, current = Path(root), Path(current)
    versions = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    others = sorted((p for p in versions if p != current), key=lambda p: p.stat().st_mtime, reverse=True)
    doomed = others[keep - 1 :]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed
