"""The dashboard in a real headless Chromium against the real app served by uvicorn on loopback.

One journey, as a person would take it: sign in with a read key and see the numbers the API
returns for the same data; open the oldest overdue item and see its timeline; a write attempt
with the read session is refused; sign in with a write key and change the status through the
form. Screenshots (desktop and phone width) land in ``test-artifacts/web/``.

Needs Debian's ``chromium`` and ``chromium-driver`` (``ops/scripts/install_test_deps.sh``) and
selenium; skipped with the reason when absent, failed under ``CI=true``.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from services.router.app import create_app
from services.router.runtime import Runtime
from tests.api.conftest import KEYS, make_rbac
from tests.web.conftest import require
from tests.web.seed import Seeded, expected_overdue_ids, seed

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1440, 900)
PHONE = (390, 844)
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--disable-extensions", "--hide-scrollbars", "--force-color-profile=srgb",
                "--lang=en-US")


class LiveServer:
    """The app under uvicorn in a thread, on a socket bound to a free 127.0.0.1 port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live(runtime: Runtime, tmp_path: Path) -> Iterator[tuple[LiveServer, Seeded]]:
    seeded = seed(runtime, tmp_path / "state")
    with LiveServer(create_app(runtime, make_rbac())) as server:
        yield server, seeded


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    require(CHROMIUM, "Chromium (Debian package chromium)")
    require(CHROMEDRIVER, "chromedriver (Debian package chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("selenium is not installed (dev dependency)")
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    monkeypatch.setenv("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chrome-profile'}",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console: CSP violations, failed loads
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


# -- helpers -------------------------------------------------------------------------------------
def chrome_options(folder: Path) -> Any:
    """Headless Chromium at desktop size, with a profile of its own under ``folder``."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={folder / 'chrome-profile'}",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}"):
        options.add_argument(flag)
    return options


def screenshot(driver: Any, name: str, size: tuple[int, int], *, mobile: bool = False) -> Path:
    """A full-page PNG at this viewport width (phone: device emulation, 2x pixels)."""
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile})
    driver.execute_script("return document.fonts ? document.fonts.ready : null")
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": max(full, height), "scale": 1}})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def horizontal_overflow(driver: Any, width: int) -> int:
    """Pixels the page is wider than a phone screen (0 = readable without sideways scrolling)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 800, "deviceScaleFactor": 1, "mobile": True})
    overflow = int(driver.execute_script("return document.documentElement.scrollWidth")) - width
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return overflow


def by_testid(driver: Any, testid: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{testid}"]')


def data_values(driver: Any, selector: str) -> dict[str, int]:
    from selenium.webdriver.common.by import By

    return {e.get_attribute("data-key"): int(e.get_attribute("data-value"))
            for e in driver.find_elements(By.CSS_SELECTOR, selector)}


def wait_for(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 10, poll_frequency=0.05).until(condition, message=what)


def navigated(driver: Any, fragment: str) -> None:
    """Wait until a click or submit has landed on a URL containing ``fragment`` and the page is loaded."""
    wait_for(driver, lambda d: fragment in d.current_url and d.execute_script("return document.readyState")
             == "complete", f"no page at {fragment}")


def sign_in(driver: Any, base: str, account: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/")
    navigated(driver, "/login?next=")  # pages send you to sign in first
    field = driver.find_element(By.ID, "api_key")
    field.send_keys(KEYS[account])
    field.submit()
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="env"]'), "no dashboard after sign-in")
    assert by_testid(driver, "env").text == "prod"


def api(base: str, path: str) -> Any:
    response = httpx.get(f"{base}{path}", headers={"X-API-Key": KEYS["readonly"]}, timeout=10)
    response.raise_for_status()
    return response.json()


# -- the journey -------------------------------------------------------------------------------
def test_dashboard_item_and_status_change_in_chromium(live: tuple[LiveServer, Seeded], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server, seeded = live
    base = server.url
    board = api(base, "/v1/backlog/dashboard?env=prod")

    # 1. a read-only account signs in and sees the API's numbers
    sign_in(browser, base, "readonly")
    tiles = {e.get_attribute("data-testid")[5:]: int(e.get_attribute("data-value"))
             for e in browser.find_elements(By.CSS_SELECTOR, "a.tile")}
    assert tiles["total"] == board["total"] and tiles["overdue"] == board["overdue_count"]
    assert {s: tiles[s] for s in board["status_counts"]} == board["status_counts"]
    assert data_values(browser, '[data-testid="priority-chart"] .bar-row') == board["priority_counts"]
    assert data_values(browser, '[data-testid="top-services"] .bar-row') == {
        s["service"]: s["count"] for s in board["top_services"]}
    rows = [r.get_attribute("data-id") for r in browser.find_elements(By.CSS_SELECTOR, "tr.row-overdue")]
    assert rows == [o["id"] for o in board["overdue"]] == expected_overdue_ids(seeded)
    rules = sorted(a.get_attribute("data-rule") for a in browser.find_elements(By.CSS_SELECTOR, '[data-testid=alert]'))
    assert rules == sorted(a["rule"] for a in board["alerts"]) == ["overdue_backlog", "p0_overdue"]
    overdue_tile = browser.find_element(By.CSS_SELECTOR, '[data-testid="tile-overdue"]')
    red, green, blue = (int(c) for c in overdue_tile.value_of_css_property("background-color")[5:-1].split(",")[:3])
    assert red > 150 and green < 80 and blue < 80, "the overdue tile is red"
    assert horizontal_overflow(browser, PHONE[0]) <= 0, "the dashboard fits a phone-width screen"
    screenshot(browser, "dashboard-desktop", DESKTOP)
    screenshot(browser, "dashboard-phone", PHONE, mobile=True)

    # 2. the oldest overdue item: fields, why it has its owner, and its timeline
    browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{seeded.arch}"] a').click()
    navigated(browser, f"/items/{seeded.arch}")
    assert by_testid(browser, "item-title").text.startswith("Architecture review: gateway")
    assert "ownership.overrides[gateway]" in by_testid(browser, "owner-reason").text
    events = api(base, f"/v1/backlog/items/{seeded.arch}/events")["events"]
    timeline = browser.find_elements(By.CSS_SELECTOR, '[data-testid="timeline"] > li')
    assert [e.get_attribute("data-type") for e in timeline] == [e["type"] for e in reversed(events)]
    assert "pairing with the DB team" in by_testid(browser, "timeline").text
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="status-form"]')  # read-only: no forms

    # 3. a write attempt with the read-only session (valid CSRF token) is refused by authorization
    status = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const token = document.querySelector('meta[name="csrf-token"]').content;
        fetch(location.pathname + '/status', {method: 'POST', credentials: 'same-origin',
              body: new URLSearchParams({status: 'done', csrf_token: token})})
          .then(r => done(r.status), () => done(-1));""")
    assert status == 403
    assert api(base, f"/v1/backlog/items/{seeded.arch}")["status"] == "open"

    # 4. sign out, sign in with a write key, change the status through the form
    browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    navigated(browser, "/login?signed_out=1")
    sign_in(browser, base, "oncall")
    browser.get(f"{base}/items/{seeded.arch}")
    Select(browser.find_element(By.ID, "status")).select_by_value("in_progress")
    browser.find_element(By.ID, "status-message").send_keys("Pairing with the DB team this week")
    browser.find_element(By.CSS_SELECTOR, '[data-testid="status-form"] button').click()
    navigated(browser, "?done=status")
    assert by_testid(browser, "notice").text == "Status changed."
    assert by_testid(browser, "item-status").text == "In progress"
    latest = browser.find_element(By.CSS_SELECTOR, '[data-testid="timeline"] > li')
    assert latest.get_attribute("data-type") == "status_changed" and "oncall" in latest.text
    after = api(base, f"/v1/backlog/items/{seeded.arch}/events")["events"][-1]
    assert (after["type"], after["actor"], after["meta"]["to"]) == ("status_changed", "oncall", "in_progress")
    screenshot(browser, "item-desktop", DESKTOP)
    screenshot(browser, "item-phone", PHONE, mobile=True)
    browser.get(f"{base}/items?env=prod")
    screenshot(browser, "items-desktop", DESKTOP)


def test_api_docs_load_only_from_the_app_under_the_dashboards_csp(live: tuple[LiveServer, Seeded],
                                                                  browser: Any) -> None:
    """Swagger UI at /docs works from the app's own files (issue 23): every resource the page loads is
    on the app's origin, and the browser reports no CSP violation or failed load, also with an
    operation expanded (its schemas and examples rendered)."""
    from selenium.webdriver.common.by import By

    server, _ = live
    browser.get(f"{server.url}/docs")
    operations = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary"), "no operations")
    assert len(operations) >= 15
    operations[0].click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-body .responses-table"), "no responses")
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(f"{server.url}/") for url in loaded), loaded
    assert f"{server.url}/docs/assets/swagger-ui-bundle.js?v=5.35.0" in loaded
    problems = [e["message"] for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert problems == [], problems
    screenshot(browser, "api-docs-desktop", DESKTOP)
