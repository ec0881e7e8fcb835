"""The trends, problems, signals and reports pages, sorting and search on /items, and the owner and
due-date forms, over HTTP (no browser; ``test_browser.py`` drives the same pages in Chromium)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from services.router.runtime import Runtime
from tests.api.conftest import headers_for
from tests.web.conftest import sign_in
from tests.web.insight_seed import seed_history
from tests.web.seed import Seeded, seed


class Tags(HTMLParser):
    """Every element and its attributes, as a browser would parse the page."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, [(k, v or "") for k, v in attrs]))


@pytest.fixture
def history(runtime: Runtime) -> dict[str, str]:
    seed(runtime, runtime.settings.state_dir)
    return seed_history(runtime, runtime.settings.reports_dir)


def chart_values(html: str, chart_id: str) -> dict[tuple[str, str], int]:
    svg = html.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]
    found = re.findall(r'data-series="([a-z0-9_]+)" data-week="([0-9W-]+)" data-value="(\d+)"', svg)
    return {(series, week): int(v) for series, week, v in found}


def api_values(client: TestClient, **params: object) -> dict[tuple[str, str], int]:
    body = client.get("/v1/backlog/trends", params=params, headers=headers_for("readonly")).json()
    return {(k, w["week"]): w[k] for w in body["weeks"] for k in w if k != "week"}


def test_trends_page_draws_the_apis_numbers(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    page = client.get("/trends?env=prod&weeks=8")
    assert page.status_code == 200, page.text
    api = api_values(client, env="prod", weeks=8)
    drawn = {**chart_values(page.text, "chart-flow"), **chart_values(page.text, "chart-levels")}
    assert drawn == api and len(drawn) == 8 * 5
    assert api[("opened", "2026-W46")] == 1 and api[("closed", "2026-W46")] == 1
    assert api[("p0_open_at_end", "2026-W48")] == 4  # three weekly P0s and the seeded payments P0
    # the tables beside the charts hold the same numbers
    assert re.search(r'<tr data-week="2026-W46"><th scope="row">2026-W46</th><td class="num">1</td>'
                     r'<td class="num">1</td></tr>', page.text)
    # small multiples for the top services, each its own service's trends
    gateway = re.search(r'<figure class="multiple" data-service="gateway">.*?</figure>', page.text, re.S)
    assert gateway is not None
    shown = {(s, w): int(v) for s, w, v in re.findall(
        r'data-series="([a-z_]+)" data-week="([0-9W-]+)" data-value="(\d+)"', gateway.group(0))}
    service_api = api_values(client, env="prod", service="gateway", weeks=8)
    assert shown == {k: v for k, v in service_api.items() if k[0] in ("open_at_end", "overdue_at_end")}
    assert 'style="' not in page.text and "<script>" not in page.text.split("</head>", 1)[1]


def test_trends_page_refuses_a_bad_weeks_value(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    for bad in ("0", "105", "1.5", "x"):
        response = client.get(f"/trends?weeks={bad}")
        assert response.status_code == 422 and "weeks" in response.text, bad


def test_problems_page_folds_the_weekly_items_into_one_row(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    page = client.get("/problems?env=prod")
    assert page.status_code == 200
    rows = re.findall(r'<tr id="problem-gateway-security"[^>]*data-items="([^"]+)"', page.text)
    assert rows == [" ".join([history["2026-W48"], history["2026-W47"], history["2026-W46"]])]
    assert "3 weekly items since 2026-W46" in page.text
    api = client.get("/v1/backlog/problems?env=prod", headers=headers_for("readonly")).json()
    order = re.findall(r'<tr id="problem-([a-z0-9_.-]+)-([a-z0-9_]+)"', page.text)
    assert order == [(p["service"], p["category"]) for p in api["problems"]]
    only = client.get("/problems?env=prod&service=gateway").text
    assert set(re.findall(r'data-service="([^"]+)" data-category', only)) == {"gateway"}


def test_an_accepted_weekly_item_is_folded_as_accepted_not_late(client: TestClient, runtime: Runtime,
                                                                history: dict[str, str]) -> None:
    """Issue 19's hold on the problems page: the accepted item is badged and not late; the row
    stays overdue through its other items, and its oldest due date is the first that counts."""
    runtime.execute("admin", "backlog_tool", "accept", {"id": history["2026-W46"], "until": "2026-12-10",
                                                        "reason": "vendor patch on its way"})
    sign_in(client, "readonly")
    page = client.get("/problems?env=prod").text
    member = re.search(rf'<li data-id="{history["2026-W46"]}">.*?</li>', page, re.S)
    assert member is not None and 'data-testid="accepted-until">accepted until 2026-12-10<' in member.group(0)
    assert 'class="small muted">due 2026-11-16<' in member.group(0)  # its own due date, not shown late
    late = re.search(rf'<li data-id="{history["2026-W47"]}">.*?</li>', page, re.S)
    assert late is not None and 'class="small late">due 2026-11-23<' in late.group(0)
    (row,) = [p for p in client.get("/v1/backlog/problems?env=prod", headers=headers_for("readonly")).json()[
        "problems"] if (p["service"], p["category"]) == ("gateway", "security")]
    assert (row["overdue"], row["oldest_due_date"]) == (True, "2026-11-23")


def test_the_dashboard_groups_overdue_items_by_problem(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    page = client.get("/?env=prod").text
    assert "3 weekly items, oldest due 2026-11-16" in page
    grouped = re.findall(r'<tr class="row-overdue" data-id="([^"]+)" data-ids="([^"]+)" data-count="(\d+)"', page)
    (group,) = [g for g in grouped if g[2] != "1"]
    assert group[0] == history["2026-W48"] and set(group[1].split()) == {history[w] for w in ("2026-W46", "2026-W47",
                                                                                             "2026-W48")}
    assert 'href="/problems?env=prod&amp;service=gateway#problem-gateway-security"' in page
    assert 'data-testid="docs-link"' in page and 'href="/metrics"' in page


def test_items_sort_search_and_week(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    page = client.get("/items?env=prod&sort=due_date&q=SECURITY").text
    ids = re.findall(r'<tr data-id="([^"]+)"', page)
    assert ids == [history[w] for w in ("2026-W45", "2026-W46", "2026-W47", "2026-W48")]
    assert re.findall(r'data-testid="week">([^<]+)<', page) == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert 'aria-sort="ascending" data-sort="due_date"' in page
    assert 'href="/items?env=prod&amp;q=SECURITY&amp;sort=-due_date"' in page  # the column reverses the order
    assert 'value="SECURITY"' in page
    assert client.get("/items?sort=title").status_code == 422


def test_owner_and_due_date_forms(client: TestClient, history: dict[str, str]) -> None:
    item_id = history["2026-W48"]
    read_token = sign_in(client, "readonly")
    page = client.get(f"/items/{item_id}").text
    assert 'data-testid="owner-form"' not in page and 'href="https://cve.example/CVE-2026-1234"' in page
    assert 'href="javascript:' not in page  # a ref whose URL is not http(s) stays text
    assert client.post(f"/items/{item_id}/owner", data={"owner": "bob", "csrf_token": read_token}).status_code == 403
    token = sign_in(client, "oncall")
    assert 'data-testid="owner-form"' in client.get(f"/items/{item_id}").text
    moved = client.post(f"/items/{item_id}/owner", data={"owner": "team-core", "csrf_token": token},
                        follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == f"/items/{item_id}?done=owner"
    dated = client.post(f"/items/{item_id}/due-date", data={"due_date": "2026-12-24", "csrf_token": token},
                        follow_redirects=False)
    assert dated.status_code == 303
    shown = client.get(f"/items/{item_id}?done=due_date").text
    assert "Due date changed." in shown and "2026-12-24" in shown and "team-core" in shown
    cleared = client.post(f"/items/{item_id}/due-date", data={"due_date": "", "csrf_token": token})
    assert cleared.status_code == 200 and "no due date" in cleared.text
    bad = client.post(f"/items/{item_id}/due-date", data={"due_date": "24.12.2026", "csrf_token": token})
    assert bad.status_code == 422 and 'data-testid="form-error"' in bad.text
    assert client.post(f"/items/{item_id}/owner", data={"owner": "x", "csrf_token": "forged"}).status_code == 403
    closed = history["2026-W45"]
    page = client.get(f"/items/{closed}").text
    assert 'data-testid="owner-form"' not in page and 'data-testid="closed-note"' in page
    refused = client.post(f"/items/{closed}/owner", data={"owner": "x", "csrf_token": token})
    assert refused.status_code == 409 and "allowed: open (reopen it first)" in refused.text


def test_signals_page_links_only_web_addresses(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    page = client.get("/signals?env=prod").text
    assert re.findall(r'<tr data-kind="([a-z_]+)" data-id="([^"]+)"', page) == [("alert", "fp-1"),
                                                                               ("incident", "INC-123")]
    assert 'href="https://inc.example/INC-123"' in page and 'href="javascript:' not in page
    assert "firing" in page and "sev2" in page
    assert client.get("/signals?kind=nope").status_code == 422
    sign_in(client, "oncall")  # holds no tools.signals.read: no link, and the page says so
    assert 'href="/signals' not in client.get("/").text
    assert client.get("/signals").status_code == 403


def test_reports_are_listed_newest_first_and_render_inert(client: TestClient, history: dict[str, str]) -> None:
    sign_in(client, "readonly")
    index = client.get("/reports").text
    assert re.findall(r'<li data-name="([^"]+)"><a href="/reports/platform/', index) == ["2026-W48", "2026-W47"]
    assert 'href="/reports/risk/2026-11-26"' in index
    page = client.get("/reports/platform/2026-W48")
    assert page.status_code == 200
    body = page.text.split('data-testid="report"', 1)[1].split("</article>", 1)[0]
    tags = Tags()
    tags.feed(body)
    assert not {"script", "img", "iframe", "b", "style"} & {t for t, _ in tags.seen}
    attrs = [(t, name, value) for t, pairs in tags.seen for name, value in pairs]
    assert not [a for a in attrs if a[1].startswith("on") or a[1] in ("src", "style")]
    hrefs = [v for _, name, v in attrs if name == "href"]
    assert hrefs and all(h.startswith(("https://", "/problems?")) for h in hrefs), hrefs
    assert "&lt;script&gt;" in body and 'href="https://runbooks.example/gw" rel="noopener noreferrer"' in body
    assert '<a href="/problems?env=prod&amp;service=gateway" class="service-link"' in body
    assert "<table>" in body and "<td>78.5</td>" in body
    assert client.get("/reports/platform/2026-W49").status_code == 404  # after the clock's week
    assert client.get("/reports/platform/..%2F..%2Fetc").status_code in (404, 422)
    assert client.get("/reports/elsewhere/2026-W48").status_code == 404
    assert client.get("/reports/risk/2026-11-26").status_code == 200


def test_new_pages_need_a_session(client: TestClient, seeded: Seeded) -> None:
    for path in ("/trends", "/problems", "/signals", "/reports", "/reports/platform/2026-W48"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), path
