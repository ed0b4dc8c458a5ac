"""The real Dagster webserver loads the code location and serves every asset, check, job and schedule."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.assets.test_definitions import EXPECTED_ASSETS

QUERY = """
{
  assetNodes { assetKey { path } isPartitioned assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename
      ... on RepositoryLocation { repositories { jobs { name } schedules { name scheduleState { status } }
      sensors { name sensorState { status } } } } } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_webserver_serves_the_asset_graph(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    port = _free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    proc = subprocess.Popen(
        [str(webserver), "-w", str(repo / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=repo, env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"dagster-webserver exited early:\n{proc.stdout.read()}")
            try:
                data = _graphql(port, QUERY)["data"]
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:
                    break
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(1)
        assert data is not None, "webserver never answered"
        location = data["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert set(nodes) == EXPECTED_ASSETS
        assert nodes["scalograms"]["isPartitioned"] and not nodes["diffusion_model"]["isPartitioned"]
        checks = nodes["clean_prices"]["assetChecksOrError"]["checks"]
        assert {c["name"] for c in checks} == {"monotonic_unique_index", "no_nan", "positive_prices", "enough_rows"}
        assert all(c["blocking"] for c in checks)
        repo_data = location["repositories"][0]
        assert {"retrain", "ingest"} <= {j["name"] for j in repo_data["jobs"]}
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repo_data["schedules"]}
        assert schedules == {"weekly_retrain": "STOPPED", "daily_data_refresh": "STOPPED"}
        sensors = {s["name"]: s["sensorState"]["status"] for s in repo_data["sensors"]}
        assert sensors == {"series_csv_sensor": "RUNNING", "free_crashed_runs": "RUNNING",
                           "wavefin_automation": "STOPPED"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
