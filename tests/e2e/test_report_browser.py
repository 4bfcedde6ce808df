"""The HTML report and every console page in headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): no JavaScript error, every plotly chart drew marks, and a
screenshot of each page saved in the test's output folder."""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
from aiohttp import web

from services.console.app import Console
from services.report.model import build_report, report_calendar
from services.report.period import parse_week
from services.report.render_html import render_html
from services.report.store import open_connection
from services.stack.process import free_port
from tests.integration.report.history import store_history
from tests.integration.report.known_history import EVENTS, NOW, POLICY

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What each plotly chart draws: bars, lines and markers.
MARKS = ".barlayer .trace path, .scatterlayer .trace path.js-line, .scatterlayer .trace path.point"


def _driver(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _check_page(driver, url: str, shot: Path, min_charts: int) -> dict:
    """Open `url`, wait for plotly, collect errors and marks per chart, save a screenshot."""
    driver.get(url)
    driver.execute_script("return document.readyState")
    charts = []
    for _ in range(100):  # plotly draws asynchronously: until every chart has its SVG
        charts = driver.execute_script(
            """return Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
                   id: d.id, svg: d.querySelectorAll('svg.main-svg').length,
                   marks: d.querySelectorAll(arguments[0]).length}));""", MARKS)
        if all(c["svg"] for c in charts):
            break
        time.sleep(0.1)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 800), 12000))
    driver.save_screenshot(str(shot))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{url}: JavaScript errors: {errors}"
    assert len(charts) >= min_charts, f"{url}: {len(charts)} charts, expected at least {min_charts}"
    empty = [c["id"] for c in charts if not c["svg"] or not c["marks"]]
    assert not empty, f"{url}: charts that drew nothing: {empty}"
    assert shot.stat().st_size > 10_000
    return {"url": url, "charts": len(charts)}


async def test_report_and_console_pages_in_chromium(settings, tmp_path):
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "needs Debian's chromium and chromium-driver (make system-deps installs them)"
    await store_history(settings, EVENTS, POLICY, NOW)
    conn = await open_connection(settings)
    try:
        data = await build_report(conn, POLICY, parse_week("2026-W46", report_calendar(POLICY), NOW), None, NOW)
    finally:
        await conn.close()
    report_file = tmp_path / "report-2026-W46.html"
    report_file.write_text(render_html(data), encoding="utf-8")

    port = free_port()
    runner = web.AppRunner(Console(settings, POLICY, clock=lambda: NOW).app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    pages = [
        (report_file.as_uri(), "report-file.png", 8),            # self-contained: plotly inlined
        (f"{base}/report?week=2026-W46", "console-week.png", 8),
        (f"{base}/report?month=2026-11", "console-month.png", 8),
        (f"{base}/lead?id=L1", "console-lead.png", 1),
        (f"{base}/at-risk", "console-at-risk.png", 1),
    ]
    profile = tmp_path / "chromium-profile"

    def browse() -> list[dict]:
        driver = _driver(profile)
        try:
            return [_check_page(driver, url, tmp_path / shot, n) for url, shot, n in pages]
        finally:
            driver.quit()

    try:
        checked = await asyncio.to_thread(browse)
    finally:
        await runner.cleanup()
        shutil.rmtree(profile, ignore_errors=True)
    assert [c["url"] for c in checked] == [p[0] for p in pages]
    for _, shot, _ in pages:
        assert (tmp_path / shot).exists()
    print(f"screenshots in {tmp_path}")
