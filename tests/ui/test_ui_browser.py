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
import urllib.parse
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
        # A short grace for SIGINT: the instance is thrown away, so a clean shutdown (which takes dagster
        # dev 5-10 s on 2 busy cores) buys nothing here.
        for sig, wait in ((signal.SIGINT, 3), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)  # the group this test created: dagster dev and its children
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                if sig == signal.SIGINT:  # children (webserver, daemon, code servers) may outlive the parent
                    self._wait_group_gone(2.0)
                    os.killpg(self.proc.pid, signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        self.log.close()

    def _wait_group_gone(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


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

    shots: dict[str, Path] = {}
    with playwright_api.sync_playwright() as pw:
        # Chromium starts while `dagster dev` loads the code location.
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            location = dagster_dev.wait_until_loaded()
            port = dagster_dev.port
            lap("server_start_s")
            base = f"http://127.0.0.1:{port}"
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            # The first visit to a new instance opens a 'Join the Dagster community' dialog (one second after
            # the page loads) unless the browser has dismissed it before: say so in localStorage (the key the
            # UI's CommunityNux reads), and if it shows anyway, Playwright clicks its Skip before any action.
            context.add_init_script("try { localStorage.setItem('communityNux', '\"1\"'); } catch (e) {}")
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.add_locator_handler(
                page.get_by_role("dialog").filter(has_text="Join the Dagster community")
                .get_by_role("button", name="Skip"),
                lambda skip: skip.click())

            # 1. The asset graph with every group expanded. The expanded groups are part of the page's URL
            #    (`?expanded=<group ids>`, which the page prefers to what localStorage remembers), so the page
            #    opens with the whole graph laid out and, nothing being selected, fitted to the window's
            #    width: no clicks on group nodes, no zooming. The check is on the graph itself: each asset
            #    is a node (a `foreignObject`) drawn with its key. The graph draws only the nodes inside the
            #    view (and none below 15% zoom), so all nine drawn also says the fit shows the whole graph.
            groups = _asset_groups(port)
            expanded = ",".join(ident for group in groups.values() for ident in group["ids"])
            page.goto(f"{base}/asset-groups?{urllib.parse.urlencode({'expanded': expanded})}")
            page.get_by_role("button", name="Materialize all").wait_for()
            graph = page.locator("foreignObject")
            try:
                _wait_until_all_drawn(page, graph)
            finally:
                page.screenshot(path=shots_dir / "asset_graph.png")
            shown = {key for key in EXPECTED_ASSETS if graph.get_by_text(key, exact=True).count()}
            assert shown == EXPECTED_ASSETS, (
                f"the asset graph draws {sorted(shown)}; missing {sorted(EXPECTED_ASSETS - shown)} "
                f"(groups {groups}); see {shots_dir / 'asset_graph.png'}")
            shots["asset_graph"] = shots_dir / "asset_graph.png"
            lap("asset_graph_s")

            # 2. Launch `ingest` for `mjd` with clicks: Materialize all → pick the partition → run config →
            #    Launch 1 run. The run config picks the in-process executor: one process instead of one per
            #    step, because this test is about the UI, and step start-up on a busy 2-core CI machine would
            #    dominate its time (the multiprocess path is covered by run_all and the asset tests).
            page.goto(f"{base}/locations/{location}/jobs/ingest")
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
            before = {r["runId"] for r in _graphql(port, RUNS_QUERY, {"jobName": "ingest"})
                      ["runsOrError"]["results"]}
            dialog.get_by_role("button", name="Launch 1 run").click()
            lap("launch_clicks_s")

            # 3. The run the click created succeeds (polled through GraphQL), and its page says so.
            run_id = _new_run(port, before)
            runs = _graphql(port, RUNS_QUERY, {"jobName": "ingest"})["runsOrError"]["results"]
            tags = {t["key"]: t["value"] for r in runs if r["runId"] == run_id for t in r["tags"]}
            assert tags.get("dagster/partition") == "mjd", tags
            config = next(r["runConfigYaml"] for r in runs if r["runId"] == run_id)
            assert "in_process" in config, config
            _wait_for_run(port, run_id, dagster_dev)
            lap("run_s")
            page.goto(f"{base}/runs/{run_id}")
            page.get_by_text("Success", exact=False).first.wait_for()
            try:  # for the picture only: let the event log finish loading
                page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=15_000)
            except playwright_api.TimeoutError:  # the run already succeeded
                pass
            shots["run"] = shots_dir / "ingest_run.png"
            page.screenshot(path=shots["run"])
        finally:
            browser.close()
    lap("run_page_s")
    (shots_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    assert all(p.stat().st_size > 10_000 for p in shots.values())  # real pictures, not blank pages
    _publish(shots)


def _wait_until_all_drawn(page, graph, timeout_s: float = UI_TIMEOUT_MS / 1000) -> None:
    """Wait until the nine asset nodes are drawn. The layout is computed in the page (a web worker) after the
    asset data loads, then the graph fits itself to the window. Should some node still be outside the view
    half-way through, ask the graph to fit itself again, as a double-click on its background does."""
    deadline = time.monotonic() + timeout_s
    refit_at = time.monotonic() + timeout_s / 2
    while time.monotonic() < deadline:
        if all(graph.get_by_text(key, exact=True).count() for key in EXPECTED_ASSETS):
            return
        if refit_at and time.monotonic() > refit_at:
            refit_at = 0.0
            if graph.count():  # on the graph's <svg>, which the nodes are children of: the viewport's
                graph.first.locator("xpath=..").dispatch_event("dblclick")  # double-click zooms to fit
        page.wait_for_timeout(250)


def _asset_groups(port: int) -> dict[str, dict[str, list[str]]]:
    """Each asset group's keys and the ids the asset graph gives the group: `global@global:<group>`, or
    `<repository>@<location>:<group>` under the UI's 'groups per code location' feature flag (both are
    passed; the graph ignores ids it does not draw)."""
    query = "{ assetNodes { assetKey { path } groupName repository { name location { name } } } }"
    groups: dict[str, dict[str, list[str]]] = {}
    for node in _graphql(port, query)["assetNodes"]:
        name, repo = node["groupName"], node["repository"]
        group = groups.setdefault(name, {"keys": [], "ids": [f"global@global:{name}"]})
        group["keys"].append("/".join(node["assetKey"]["path"]))
        per_location = f"{repo['name']}@{repo['location']['name']}:{name}"
        if per_location not in group["ids"]:
            group["ids"].append(per_location)
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
