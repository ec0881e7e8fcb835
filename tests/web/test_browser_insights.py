"""The trends, problems, signals and reports pages, sorting and the item edits, in headless Chromium.

One browser session and one server for the whole module (starting Chromium is the slow part):
each page is checked for its content, photographed into ``test-artifacts/web/`` and audited
with axe-core (npm ``axe-core``, installed by ``ops/scripts/install_test_deps.sh`` into
``.test-deps/`` and injected with Selenium): no ``serious`` or ``critical`` violation. The SVG
charts' numbers are read back from the page and compared with the trends API's.

Needs what ``test_browser.py`` needs, plus axe-core; skipped with the reason when absent,
failed under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.stores.memory import MemoryBacklogStore
from tests.api.conftest import KEYS, make_rbac, make_runtime
from tests.conftest import NOW
from tests.web.conftest import require
from tests.web.insight_seed import seed_history
from tests.web.seed import seed
from tests.web.test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    DESKTOP,
    PHONE,
    REPO,
    LiveServer,
    by_testid,
    chrome_options,
    horizontal_overflow,
    navigated,
    screenshot,
    sign_in,
)

AXE = REPO / ".test-deps" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("insights")
    clock = FixedClock(NOW)
    runtime = make_runtime(MemoryBacklogStore(clock=clock), clock, tmp, BACKLOG_STATE_DIR=tmp / "state")
    seed(runtime, tmp / "state")
    ids = seed_history(runtime, runtime.settings.reports_dir)
    with LiveServer(create_app(runtime, make_rbac())) as server:
        yield server.url, ids


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require(CHROMIUM, "Chromium (Debian package chromium)")
    require(CHROMEDRIVER, "chromedriver (Debian package chromium-driver)")
    if not AXE.is_file():
        unavailable(f"axe-core is not installed ({AXE}); run ops/scripts/install_test_deps.sh")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER),
                               options=chrome_options(tmp_path_factory.mktemp("chrome")))
    browser.set_page_load_timeout(15)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def admin(site: tuple[str, dict[str, str]], driver: Any) -> Any:
    """The shared session, signed in as an account that may read and write everything shown."""
    sign_in(driver, site[0], "admin")
    return driver


def axe_violations(driver: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page now shown."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    found = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']})
          .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                                   nodes: v.nodes.map(n => n.target.join(' '))}))),
                e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")
    return [v for v in found if v["impact"] in BLOCKING]


def visit(driver: Any, base: str, path: str, shot: str, *, phone: bool = False) -> None:
    driver.get(f"{base}{path}")
    navigated(driver, path.split("?")[0])
    assert "/login" not in driver.current_url
    violations = axe_violations(driver)
    assert violations == [], f"{path}: {violations}"
    screenshot(driver, f"{shot}-desktop", DESKTOP)
    if phone:
        assert horizontal_overflow(driver, PHONE[0]) <= 0, f"{path} fits a phone-width screen"
        screenshot(driver, f"{shot}-phone", PHONE, mobile=True)


def api(base: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{base}{path}", params=params, headers={"X-API-Key": KEYS["readonly"]}, timeout=10)
    response.raise_for_status()
    return response.json()


def drawn(driver: Any, chart_id: str) -> dict[tuple[str, str], int]:
    marks = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' [data-series]')]"
        ".map(e => [e.dataset.series, e.dataset.week, Number(e.dataset.value)]);", f"#{chart_id}")
    return {(s, w): v for s, w, v in marks}


def test_trends_page(site: tuple[str, dict[str, str]], admin: Any) -> None:
    base, _ = site
    visit(admin, base, "/trends?env=prod&weeks=8", "trends", phone=True)
    rows = api(base, "/v1/backlog/trends", env="prod", weeks=8)["weeks"]
    want = {(k, r["week"]): r[k] for r in rows for k in r if k != "week"}
    assert {**drawn(admin, "chart-flow"), **drawn(admin, "chart-levels")} == want
    gateway = api(base, "/v1/backlog/trends", env="prod", service="gateway", weeks=8)["weeks"]
    index = admin.execute_script(
        "return [...document.querySelectorAll('figure.multiple')].findIndex(f => f.dataset.service === 'gateway');")
    assert drawn(admin, f"chart-service-{index}") == {
        (k, r["week"]): r[k] for r in gateway for k in ("open_at_end", "overdue_at_end")}
    title = admin.execute_script("return document.querySelector('#chart-levels title').textContent")
    assert title.startswith("Open, overdue and P0 items at each week's end")


def test_problems_and_the_grouped_dashboard(site: tuple[str, dict[str, str]], admin: Any) -> None:
    from selenium.webdriver.common.by import By

    base, ids = site
    visit(admin, base, "/problems?env=prod", "problems", phone=True)
    row = admin.find_element(By.ID, "problem-gateway-security")
    assert row.get_attribute("data-items").split() == [ids["2026-W48"], ids["2026-W47"], ids["2026-W46"]]
    row.find_element(By.TAG_NAME, "summary").click()  # unfold the weekly items
    folded = [li.get_attribute("data-id") for li in row.find_elements(By.CSS_SELECTOR, "ul.folded > li[data-id]")]
    assert folded == [ids["2026-W48"], ids["2026-W47"], ids["2026-W46"]]
    visit(admin, base, "/?env=prod", "dashboard-grouped")
    group = by_testid(admin, "problem-group")
    assert group.text == "3 weekly items, oldest due 2026-11-16"
    assert by_testid(admin, "docs-link").get_attribute("href").endswith("/docs")
    assert by_testid(admin, "metrics-link").get_attribute("href").endswith("/metrics")


def test_items_sorting_search_and_the_item_edits(site: tuple[str, dict[str, str]], admin: Any) -> None:
    from selenium.webdriver.common.by import By

    base, ids = site
    visit(admin, base, "/items?env=prod", "items-sortable")
    search = by_testid(admin, "search")
    search.send_keys("security")
    search.submit()
    navigated(admin, "q=security")
    admin.find_element(By.CSS_SELECTOR, 'th[data-sort="due_date"] a').click()
    navigated(admin, "sort=due_date")
    rows = [r.get_attribute("data-id") for r in admin.find_elements(By.CSS_SELECTOR, "tbody tr[data-id]")]
    assert rows == [ids[w] for w in ("2026-W45", "2026-W46", "2026-W47", "2026-W48")]
    weeks = [w.text for w in admin.find_elements(By.CSS_SELECTOR, '[data-testid="week"]')]
    assert weeks == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert admin.find_element(By.CSS_SELECTOR, 'th[data-sort="due_date"]').get_attribute("aria-sort") == "ascending"

    item = ids["2026-W47"]
    visit(admin, base, f"/items/{item}", "item-edit", phone=True)
    owner = admin.find_element(By.ID, "owner")
    owner.clear()
    owner.send_keys("team-core")
    admin.find_element(By.CSS_SELECTOR, '[data-testid="owner-form"] button').click()
    navigated(admin, "?done=owner")
    assert by_testid(admin, "notice").text == "Owner changed."
    admin.execute_script("document.getElementById('due-date').value = '2026-12-24'")
    admin.find_element(By.CSS_SELECTOR, '[data-testid="due-form"] button').click()
    navigated(admin, "?done=due_date")
    got = api(base, f"/v1/backlog/items/{item}")
    assert (got["owner"], got["due_date"]) == ("team-core", "2026-12-24")
    types = [e["type"] for e in api(base, f"/v1/backlog/items/{item}/events")["events"]]
    assert types[-2:] == ["owner_changed", "due_date_changed"]
    evidence = admin.find_elements(By.CSS_SELECTOR, '[data-testid="evidence"] a')
    assert [a.get_attribute("href") for a in evidence] == ["https://cve.example/CVE-2026-1234"]


def test_signals_and_reports(site: tuple[str, dict[str, str]], admin: Any) -> None:
    from selenium.webdriver.common.by import By

    base, _ = site
    visit(admin, base, "/signals?env=prod", "signals", phone=True)
    kinds = [r.get_attribute("data-kind") for r in admin.find_elements(By.CSS_SELECTOR, "tbody tr[data-kind]")]
    assert kinds == ["alert", "incident"]
    links = [a.get_attribute("href") for a in admin.find_elements(By.CSS_SELECTOR, "td.source a")]
    assert links == ["https://inc.example/INC-123"]
    visit(admin, base, "/reports", "reports")
    names = [li.get_attribute("data-name") for li in
             admin.find_elements(By.CSS_SELECTOR, '[data-testid="reports-platform"] li')]
    assert names == ["2026-W48", "2026-W47"]
    admin.find_element(By.LINK_TEXT, "2026-W48").click()
    navigated(admin, "/reports/platform/2026-W48")
    visit(admin, base, "/reports/platform/2026-W48", "report-hostile", phone=True)
    report = by_testid(admin, "report")
    assert admin.title != "pwned" and "<script>" in report.text  # shown as text, never run
    assert not report.find_elements(By.CSS_SELECTOR, "script, img, iframe, [onerror], [onmouseover]")
    hrefs = {a.get_attribute("href") for a in report.find_elements(By.TAG_NAME, "a")}
    assert hrefs == {"https://runbooks.example/gw", f"{base}/problems?env=prod&service=gateway",
                     f"{base}/problems?env=prod&service=payments"}
    admin.find_element(By.CSS_SELECTOR, '[data-testid="report"] a.service-link').click()
    navigated(admin, "/problems?env=prod&service=gateway")

