"""The Dagster UI, served by `dagster dev`, seen in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = REPO / "docs" / "ui-asset-graph.png"
GROUPS = ("lake", "models", "trading")
EXPECTED_ASSETS = (
    "raw_daily_bars", "lake_candidate", "lake_version",  # the lake
    "features", "lstm_model", "ensemble_model", "signals",  # the models
    "trade_orders", "equity_curve",  # trading
)
UI_SESSIONS = ("2020-01-02", "2021-12-31")  # 505 sessions; the twelve symbols split and pay dividends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _refreeze(home: Path) -> None:
    """One refreeze of a small simulated market into the lake the UI shows (recorded in its instance)."""
    import dagster as dg

    from kobe_pipelines.defs.driver import LoopDriver
    from kobe_pipelines_tests.defs.conftest import lake_resources
    from kobe_pipelines.defs.resources import MarketDataResource

    market = MarketDataResource(sim_symbols=12, history_start=UI_SESSIONS[0], sim_end=UI_SESSIONS[1])
    (home / "state").mkdir(exist_ok=True)
    LoopDriver(lake_resources(home, market), dg.DagsterInstance.from_config(str(home))).freeze(*UI_SESSIONS, with_signals=False)


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    _refreeze(home)
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "KOBE_LAKE_DIR": str(home / "lake"), "KOBE_STATE_DIR": str(home / "state")}
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:  # bounded wait for the server to come up (loading the code takes a while)
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited early with code {proc.returncode}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("dagster dev did not answer within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        stop_dagster_dev(proc)


def stop_dagster_dev(proc: subprocess.Popen) -> None:
    """`dagster dev` treats SIGTERM as Ctrl-C: it tells the webserver and the daemon to stop through
    their shutdown pipes and waits for them. Send it to `dagster dev` alone (its children stop on
    its word), then remove whatever its process group still holds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.slow
def test_asset_graph_when_opened_in_a_browser_then_shows_the_lake_and_model_assets(dagster_ui, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is required: apt-get install -y chromium"
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{dagster_ui}/asset-groups", wait_until="domcontentloaded", timeout=120_000)
        for group in GROUPS:  # the lineage page lists the asset groups, collapsed
            page.get_by_text(group, exact=True).first.wait_for(timeout=120_000)
        skip = page.get_by_role("button", name="Skip")  # Dagster's one-time community dialog
        try:
            skip.wait_for(timeout=15_000)
            skip.click()
        except PlaywrightTimeout:
            pass
        for group in GROUPS:  # the sidebar's group row (the first match): a double click expands it
            page.locator(f"text='{group}' >> visible=true").first.dblclick()
        for asset in EXPECTED_ASSETS:
            page.get_by_text(asset, exact=True).first.wait_for(timeout=60_000)
        shot = tmp_path / "asset-graph.png"
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("KOBE_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)


def _browser(pw):
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-quic"],
    )


@pytest.mark.slow
def test_asset_pages_when_a_refreeze_ran_then_they_list_the_sessions_held_and_show_the_plot_in_place(dagster_ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        page.goto(f"{dagster_ui}/assets/lake_version", wait_until="domcontentloaded", timeout=120_000)
        page.get_by_text("sessions_held", exact=True).first.wait_for(timeout=120_000)
        page.get_by_text("2020-01-02..2021-12-31: 505 sessions").first.wait_for(timeout=60_000)
        page.goto(f"{dagster_ui}/assets/lake_candidate", wait_until="domcontentloaded", timeout=120_000)
        page.get_by_text("raw_vs_adjusted_around_a_split", exact=True).first.wait_for(timeout=120_000)
        plot = page.locator("img[src^='data:image/svg+xml']").first
        plot.wait_for(timeout=60_000)  # in place, not behind a "[Show Markdown]" link
        assert plot.bounding_box()["width"] > 200
        browser.close()
