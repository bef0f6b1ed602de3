"""The SRE dashboard in a real browser (Debian's headless chromium, driven by selenium)
against a real two-worker server: it loads without console errors, shows routes after
traffic, updates without a reload, and shows the Redis breaker opening when this tier's
own Redis is stopped. A screenshot is left in tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from enterprise.app import create_app
from enterprise.settings import Settings
from tests.conftest import ROOT, Server, make_client, new_key, server_env
from tests.faults.conftest import FaultStack

pytestmark = pytest.mark.faults
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1400,2000",
)


@pytest.fixture(scope="session")
def browser_installed() -> None:
    """Debian's chromium and chromium-driver, installed by the project's script if missing."""
    subprocess.run(["bash", str(ROOT / "scripts" / "browser.sh")], check=True)
    assert Path(CHROMIUM).exists()
    assert Path(CHROMEDRIVER).exists()


@pytest.fixture
def browser(browser_installed: None) -> Iterator[WebDriver]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


async def _until(check: Callable[[], Any], what: str, within_s: float = 20.0) -> Any:
    give_up = time.monotonic() + within_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


def _severe(driver: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


async def test_the_dashboard_is_live_in_a_real_browser(
    fault_settings: Settings, restore: FaultStack, browser: WebDriver
) -> None:
    app = create_app(fault_settings)
    async with await make_client(app) as local:
        admin, sre = await new_key(app), await new_key(app, "sre")
        organization = (
            await local.post("/api/v1/organizations", json={"name": "Dash Dental"}, headers=admin)
        ).json()["id"]
    env = {
        **server_env(fault_settings),
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
        "CIRCUIT_BREAKER_RESET_TIMEOUT": "60",  # stays open while the page is looked at
        "SRE_SNAPSHOT_INTERVAL_S": "0.25",
    }
    async with Server(env, workers=2) as server:
        raw_key = sre["Authorization"].removeprefix("Bearer ")

        async def traffic(requests: int) -> None:
            limits = httpx.Limits(max_keepalive_connections=0)  # reach both workers
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=admin, limits=limits
            ) as http:
                for _ in range(requests):
                    await http.get(f"/api/v1/organizations/{organization}")
                    await http.get("/api/v1/organizations?limit=5")

        def open_and_connect() -> None:
            browser.get(f"{server.base_url}/dashboard")
            browser.find_element(By.ID, "key").send_keys(raw_key)
            browser.find_element(By.ID, "connect").click()
            browser.execute_script("window.__sameDocument = 'yes';")

        await asyncio.to_thread(open_and_connect)
        await traffic(20)

        # Read in the page, in one go: the tables are redrawn under selenium's feet.
        def routes_shown() -> list[str]:
            shown: list[str] = browser.execute_script(
                "return [...document.querySelectorAll('#routes tbody tr[data-route]')]"
                ".map(row => row.dataset.route)"
            )
            return shown

        shown = await _until(
            lambda: (
                "GET /api/v1/organizations/{organization_id}" in routes_shown() and routes_shown()
            ),
            "the routes after traffic",
        )
        assert "GET /api/v1/organizations" in shown

        def polls() -> int:
            return int(
                browser.execute_script(
                    "return document.getElementById('status').dataset.polls || 0"
                )
            )

        first = polls()
        await _until(lambda: polls() >= first + 2, "two more updates")
        # Updated in place: the document (and the marker set in it) is the same one.
        assert browser.execute_script("return window.__sameDocument") == "yes"
        assert "ent_" not in browser.current_url

        def breaker_state() -> str:
            state: str | None = browser.execute_script(
                "const row = document.querySelector('#breakers tbody tr[data-breaker=\"redis\"]');"
                "return row ? row.dataset.state : null"
            )
            return state or ""

        assert breaker_state() == "closed"
        await asyncio.to_thread(restore.stop, "redis")
        await traffic(10)  # cache lookups fail against the stopped Redis: the breaker trips
        await _until(lambda: breaker_state() == "open", "the redis breaker to show open")
        degraded = browser.find_element(By.ID, "degraded").text
        assert "degraded" in degraded

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        assert _severe(browser) == []
        # The key never reaches storage.
        stored = browser.execute_script(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
        )
        assert raw_key not in stored
