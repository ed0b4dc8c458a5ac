"""The Dagster UI, used the way a person uses it, in a real browser.

`dagster dev` (what `make ui` runs: webserver + daemon) starts on a free loopback port with a throw-away
DAGSTER_HOME and storage. Debian's Chromium, driven by Playwright, opens the asset graph and checks that the
nine assets are drawn, then launches the `ingest` job for the `mjd` partition with clicks (Materialize all →
the partition picker → Launch 1 run) and waits for the run to succeed. Screenshots go to
`storage/ui-screenshots/` (git-ignored; `$WAVEFIN_UI_SCREENSHOTS` moves them); with
`WAVEFIN_UPDATE_SCREENSHOTS=1` small copies also replace the README's `docs/screenshots/*.png`.

Playwright's own browser download does not work on offline machines, so the test uses the system Chromium
(`apt-get install chromium`; `.ci/run` installs it) and skips with the reason when it or the `playwright`
package is missing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.assets.test_definitions import EXPECTED_ASSETS

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the `playwright` package is missing: `pip install -e '.[dev]'` installs it")

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("WAVEFIN_CHROMIUM", "/usr/bin/chromium"))
# Chromium flags for a headless, offline, throw-away browser: no sandbox (CI runs as root), no GPU, and no
# background connections (this machine's closed network refuses them, many at a time, and slows start-up).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_TIMEOUT_S = 150  # dagster dev imports the code location in three processes; slow on 2 busy cores
RUN_TIMEOUT_S = 150
UI_TIMEOUT_MS = 30_000
IN_PROCESS_CONFIG = "execution: {config: {in_process: {}}}"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: `apt-get install chromium` "
                       "(as .ci/run does) to run the browser test"),
]

RUNS_QUERY = """
query ($jobName: String!) {
  runsOrError(filter: {pipelineName: $jobName}) {
    ... on Runs { results { runId status runConfigYaml tags { key value } } }
  }
}
"""
LOCATION_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename
  ... on PythonError { message } } } } } }
"""
FAILURE_QUERY = """
query ($runId: ID!) {
  logsForRun(runId: $runId) { ... on EventConnection { events { __typename
    ... on MessageEvent { message }
    ... on ExecutionStepFailureEvent { error { message } } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _register_mjd(dagster_home: Path) -> None:
    """Make sure the `mjd` partition exists before the UI is opened (the series partitions are dynamic: the
    sensor registers the built-ins on its first tick, which may come after the page loads)."""
    import dagster as dg

    from wavefin_assets.partitions import series_partitions

    if isinstance(series_partitions, dg.DynamicPartitionsDefinition):
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            if not instance.has_dynamic_partition(series_partitions.name, "mjd"):
                instance.add_dynamic_partitions(series_partitions.name, ["mjd"])


class DagsterDev:
    """`dagster dev` in its own process group, stopped (SIGINT, then SIGKILL) with all its children."""

    def __init__(self, root: Path) -> None:
        self.port = _free_port()
        self.home = root / "dagster_home"
        self.home.mkdir()
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        prices = root / "prices"  # empty: only the built-in series
        prices.mkdir()
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "WAVEFIN_STORAGE": str(root / "storage"),
            "WAVEFIN_PRICES_DIR": str(prices),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'storage' / 'mlflow.db'}",
            "WAVEFIN_PROFILE": "quick",
            "WAVEFIN_DEVICE": "cpu",
        }
        self.log_path = root / "dagster_dev.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        _register_mjd(self.home)
        dagster = Path(sys.executable).with_name("dagster")
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [str(dagster), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_until_loaded(self) -> str:
        """The code location's name, once the webserver serves it."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dagster dev exited early:\n{self.log_tail()}")
            try:
                entries = _graphql(self.port, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
                loaded = entries and entries[0]["locationOrLoadError"]
                if loaded:
                    assert loaded["__typename"] == "RepositoryLocation", loaded
                    return entries[0]["name"]
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"dagster dev did not serve the code location in {SERVER_START_TIMEOUT_S}s:\n"
                             f"{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGINT, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)  # the group this test created: dagster dev and its children
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                if sig == signal.SIGINT:  # children (webserver, daemon, code servers) may outlive the parent
                    time.sleep(2)
                    os.killpg(self.proc.pid, signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        self.log.close()


@pytest.fixture
def dagster_dev(tmp_path):
    server = DagsterDev(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _screenshot_dir() -> Path:
    path = Path(os.environ.get("WAVEFIN_UI_SCREENSHOTS", REPO / "storage" / "ui-screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(shots: dict[str, Path]) -> None:
    """Small copies for the README (`WAVEFIN_UPDATE_SCREENSHOTS=1` only: a test run never dirties the tree)."""
    if os.environ.get("WAVEFIN_UPDATE_SCREENSHOTS") != "1":
        return
    from wavefin_assets.metadata import thumbnail_png

    docs = REPO / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    for name, path in shots.items():
        (docs / f"{name}.png").write_bytes(thumbnail_png(path.read_bytes(), max_bytes=120_000, max_width=1100))


def _wait_for_run(port: int, run_id: str, server: DagsterDev) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    status = "?"
    while time.monotonic() < deadline:
        runs = _graphql(port, RUNS_QUERY, {"jobName": "ingest"})["runsOrError"]["results"]
        status = next(r["status"] for r in runs if r["runId"] == run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    if status != "SUCCESS":
        events = _graphql(port, FAILURE_QUERY, {"runId": run_id})["logsForRun"].get("events", [])
        errors = [e.get("error", {}).get("message") or e.get("message") for e in events
                  if "Failure" in e["__typename"] or "Error" in e["__typename"]]
        raise AssertionError(f"ingest run {run_id} ended {status}: {errors[-5:]}\n{server.log_tail()}")
    return status


def test_ui_shows_the_asset_graph_and_runs_ingest_from_clicks(dagster_dev):
    shots_dir = _screenshot_dir()
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    location = dagster_dev.wait_until_loaded()
    lap("server_start_s")
    base = f"http://127.0.0.1:{dagster_dev.port}"
    shots: dict[str, Path] = {}
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)

            # 1. The asset graph: expand every collapsed group node, then every asset key is drawn.
            page.goto(f"{base}/asset-groups")
            page.get_by_role("button", name="Materialize all").wait_for()
            _dismiss_welcome(page)
            graph = page.locator("foreignObject")
            for group, keys in _asset_groups(dagster_dev.port).items():
                node = graph.filter(has=page.get_by_text(group, exact=True))
                if node.count() and not graph.get_by_text(keys[0], exact=True).count():
                    node.first.dblclick()  # a collapsed group node expands on double-click (and zooms in)
                    graph.get_by_text(keys[0], exact=True).first.wait_for(state="visible")
            # The expanded groups are remembered: reload for the whole graph fitted to the window, nothing
            # selected. Nodes outside the view are not drawn, so zoom out until all nine are.
            page.evaluate("window.localStorage.removeItem('defaultZoom')")  # forget the double-click's zoom
            page.goto(f"{base}/asset-groups")
            any_key = graph.get_by_text("raw_prices", exact=True)
            for key in EXPECTED_ASSETS:  # the layout is computed in the page: wait until some node is drawn
                any_key = any_key.or_(graph.get_by_text(key, exact=True))
            any_key.first.wait_for()
            try:
                _wait_until_all_drawn(page, graph)
            finally:
                page.screenshot(path=shots_dir / "asset_graph.png")
            shown = {key for key in EXPECTED_ASSETS if graph.get_by_text(key, exact=True).count()}
            assert shown == EXPECTED_ASSETS
            shots["asset_graph"] = shots_dir / "asset_graph.png"
            lap("asset_graph_s")

            # 2. Launch `ingest` for `mjd` with clicks: Materialize all → pick the partition → run config →
            #    Launch 1 run. The run config picks the in-process executor: one process instead of one per
            #    step, because this test is about the UI, and step start-up on a busy 2-core CI machine would
            #    dominate its time (the multiprocess path is covered by run_all and the asset tests).
            page.goto(f"{base}/locations/{location}/jobs/ingest")
            page.get_by_role("button", name="Materialize all").wait_for()
            _dismiss_welcome(page)
            page.get_by_role("button", name="Materialize all").click()
            dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
            dialog.get_by_text("Select a partition or create one").click()
            page.get_by_role("menuitem", name="mjd").or_(page.get_by_text("mjd", exact=True)).first.click()
            dialog.get_by_text("Launch runs to materialize").click()  # closes the picker, keeps the dialog
            shots["launch_dialog"] = shots_dir / "launch_ingest_mjd.png"
            page.screenshot(path=shots["launch_dialog"])
            if not dialog.get_by_text("Add config").is_visible():
                dialog.get_by_text("Config", exact=True).click()  # expand the dialog's Config section
            dialog.get_by_text("Add config").click()
            editor = page.get_by_role("dialog").filter(has_text="Config Editor")
            editor.locator(".CodeMirror").first.click()
            page.keyboard.insert_text(IN_PROCESS_CONFIG)  # as pasted: no auto-closed brackets
            editor.get_by_role("button", name="Save config").click()
            dialog.get_by_text("Config saved").wait_for()
            before = {r["runId"] for r in _graphql(dagster_dev.port, RUNS_QUERY, {"jobName": "ingest"})
                      ["runsOrError"]["results"]}
            dialog.get_by_role("button", name="Launch 1 run").click()
            lap("launch_clicks_s")

            # 3. The run the click created succeeds (polled through GraphQL), and its page says so.
            run_id = _new_run(dagster_dev.port, before)
            runs = _graphql(dagster_dev.port, RUNS_QUERY, {"jobName": "ingest"})["runsOrError"]["results"]
            tags = {t["key"]: t["value"] for r in runs if r["runId"] == run_id for t in r["tags"]}
            assert tags.get("dagster/partition") == "mjd", tags
            config = next(r["runConfigYaml"] for r in runs if r["runId"] == run_id)
            assert "in_process" in config, config
            _wait_for_run(dagster_dev.port, run_id, dagster_dev)
            lap("run_s")
            page.goto(f"{base}/runs/{run_id}")
            page.get_by_text("Success", exact=False).first.wait_for()
            try:  # for the picture only: let the event log finish loading
                page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=15_000)
            except Exception:  # noqa: BLE001 - Playwright's TimeoutError; the run already succeeded
                pass
            shots["run"] = shots_dir / "ingest_run.png"
            page.screenshot(path=shots["run"])
        finally:
            browser.close()
    lap("run_page_s")
    (shots_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    assert all(p.stat().st_size > 10_000 for p in shots.values())  # real pictures, not blank pages
    _publish(shots)


def _wait_until_all_drawn(page, graph, patience_s: float = 5.0, zoom_outs: int = 4) -> None:
    """Wait for the nine asset nodes; the graph fits itself to the window once its layout is done, and if
    some nodes stay outside the view (they are then not drawn), zoom out one step at a time."""
    for attempt in range(zoom_outs + 1):
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            if all(graph.get_by_text(key, exact=True).count() for key in EXPECTED_ASSETS):
                return
            page.wait_for_timeout(250)
        if attempt < zoom_outs:  # the mouse wheel over the graph zooms it (the zoom buttons have no label)
            size = page.viewport_size  # the graph panel fills the right ~70% of the window
            page.mouse.move(size["width"] * 0.65, size["height"] * 0.5)
            page.mouse.wheel(0, 250)


def _dismiss_welcome(page) -> None:
    """The first visit to a new instance may open a 'Join the Dagster community' dialog; skip it if shown."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(state="visible", timeout=3000)
    except Exception:  # noqa: BLE001 - Playwright's TimeoutError: no dialog this time
        return
    skip.click()


def _asset_groups(port: int) -> dict[str, list[str]]:
    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    groups: dict[str, list[str]] = {}
    for node in nodes:
        groups.setdefault(node["groupName"], []).append("/".join(node["assetKey"]["path"]))
    return groups


def _new_run(port: int, before: set[str]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = _graphql(port, RUNS_QUERY, {"jobName": "ingest"})["runsOrError"]["results"]
        new = [r["runId"] for r in runs if r["runId"] not in before]
        if new:
            assert len(new) == 1, f"one click launched {len(new)} runs"
            return new[0]
        time.sleep(0.5)
    raise AssertionError("clicking 'Launch 1 run' created no ingest run within 30 s")
