"""The web pages over HTTP (no browser): numbers, sign-in, sessions, CSRF, authorization, escaping."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.router.access.auth import path_kind
from services.router.app import create_app
from services.router.runtime import Runtime
from services.router.web.sessions import SECURE_COOKIE, SessionStore, safe_next, transport_allows_sign_in
from tests.api.conftest import KEYS, WRONG_KEY, headers_for, make_rbac
from tests.factories import item
from tests.web.conftest import BASE, sign_in
from tests.web.seed import Seeded, expected_overdue_ids


def values(html: str, testid_prefix: str) -> dict[str, int]:
    pattern = rf'data-testid="{testid_prefix}-([a-z_]+)" data-value="(\d+)"'
    return {k: int(v) for k, v in re.findall(pattern, html)}


def chart(html: str, testid: str) -> dict[str, int]:
    block = html.split(f'data-testid="{testid}"', 1)[1].split("</ul>", 1)[0]
    return {k: int(v) for k, v in re.findall(r'data-key="([^"]+)" data-value="(\d+)"', block)}


# -- paths and sign-in ---------------------------------------------------------------------------
def test_path_kinds_keep_api_and_web_apart() -> None:
    assert path_kind("/v1/backlog/items") == "api"
    assert path_kind("/items") == path_kind("/items/bl_0123456789ab") == path_kind("/") == "web-session"
    assert path_kind("/login") == path_kind("/static/app.css") == "web-public"
    assert path_kind("/metrics") == "public"
    assert path_kind("/itemsx") == "api"


def test_pages_redirect_to_sign_in_and_back(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/items?env=prod", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fitems%3Fenv%3Dprod"
    login = client.post("/login", data={"api_key": KEYS["readonly"], "next": "/items?env=prod"},
                        follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/items?env=prod"


def test_session_cookie_is_opaque_secure_httponly_strict(client: TestClient) -> None:
    response = client.post("/login", data={"api_key": KEYS["readonly"]}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SECURE_COOKIE}=")
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag in cookie
    assert KEYS["readonly"] not in cookie and "readonly" not in cookie


def test_unknown_key_is_refused_without_a_session(client: TestClient) -> None:
    response = client.post("/login", data={"api_key": WRONG_KEY}, follow_redirects=False)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert "not valid" in response.text


def test_plain_http_sign_in_only_on_loopback(app: FastAPI) -> None:
    with TestClient(app, base_url="http://testserver") as remote:
        response = remote.post("/login", data={"api_key": KEYS["readonly"]}, follow_redirects=False)
    assert response.status_code == 403 and "HTTPS" in response.text and "set-cookie" not in response.headers
    local = {"scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50123)}
    assert transport_allows_sign_in(local)
    assert not transport_allows_sign_in({**local, "server": ("10.0.0.5", 8000)})
    assert not transport_allows_sign_in({**local, "client": ("10.0.0.9", 50123)})
    assert transport_allows_sign_in({**local, "scheme": "https", "client": ("10.0.0.9", 50123)})


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil", "/v1/backlog/items",
                                    "/logout", "javascript:alert(1)"])
def test_sign_in_never_redirects_off_the_web_pages(target: str) -> None:
    assert safe_next(target) == "/"


def test_api_routes_ignore_the_session_cookie(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, "admin")
    assert client.get("/v1/backlog/dashboard?env=prod").status_code == 401  # cookie only: no key, no entry
    assert client.get("/v1/backlog/dashboard?env=prod", headers=headers_for("readonly")).status_code == 200


def test_web_pages_ignore_api_key_headers(client: TestClient) -> None:
    response = client.get("/", headers=headers_for("admin"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_sign_out_revokes_the_session(client: TestClient, seeded: Seeded) -> None:
    token = sign_in(client, "readonly")
    cookie = client.cookies.get(SECURE_COOKIE)
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?signed_out=1"
    client.cookies.set(SECURE_COOKIE, cookie or "")  # a copy of the old cookie is worthless now
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sessions_expire_when_idle_and_absolutely() -> None:
    now = [0.0]
    store = SessionStore(idle_seconds=100, absolute_seconds=250, monotonic=lambda: now[0])
    account = make_rbac().account("readonly")
    assert account is not None
    session_id, _ = store.create(account)
    for t in (90, 180, 240):
        now[0] = t
        assert store.get(session_id) is not None  # each visit keeps it alive while idle < 100 s
    now[0] = 260
    assert store.get(session_id) is None  # past the absolute lifetime
    other, _ = store.create(account)
    now[0] = 400
    assert store.get(other) is None and len(store) == 0


def test_keys_and_cookies_never_reach_the_logs(client: TestClient, seeded: Seeded,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client.post("/login", data={"api_key": WRONG_KEY})
    sign_in(client, "oncall")
    cookie = client.cookies.get(SECURE_COOKIE) or ""
    assert cookie and cookie not in caplog.text
    assert KEYS["oncall"] not in caplog.text and WRONG_KEY not in caplog.text
    assert "web sign-in account=oncall" in caplog.text


# -- the numbers ---------------------------------------------------------------------------------
def test_dashboard_shows_the_numbers_the_api_returns(client: TestClient, seeded: Seeded) -> None:
    api = client.get("/v1/backlog/dashboard?env=prod", headers=headers_for("readonly")).json()
    sign_in(client, "readonly")
    html = client.get("/?env=prod").text
    tiles = values(html, "tile")
    assert tiles["total"] == api["total"] == 12
    assert tiles["overdue"] == api["overdue_count"] == 7
    assert {k: v for k, v in tiles.items() if k in api["status_counts"]} == api["status_counts"]
    assert chart(html, "priority-chart") == api["priority_counts"]
    assert chart(html, "status-chart") == api["status_counts"]
    assert chart(html, "top-services") == {s["service"]: s["count"] for s in api["top_services"]}
    rows = re.findall(r'<tr class="row-overdue" data-id="([^"]+)"', html)
    assert rows == [o["id"] for o in api["overdue"]] == expected_overdue_ids(seeded)
    assert sorted(re.findall(r'data-testid="alert" data-rule="([^"]+)"', html)) == sorted(
        a["rule"] for a in api["alerts"]) == ["overdue_backlog", "p0_overdue"]


def test_dashboard_defaults_to_prod_and_lists_envs(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, "readonly")
    html = client.get("/").text
    assert 'data-testid="env">prod<' in html
    assert '<option value="staging"' in html
    everything = client.get("/?env=").text
    assert values(everything, "tile")["total"] == 14


def test_carry_over_streaks_and_held_back_items(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, "readonly")
    html = client.get("/?env=prod").text
    streaks = html.split('data-testid="streaks"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'data-id="([^"]+)"', streaks) == [seeded.ids["gw-arch"], seeded.ids["auth-slo"]]
    assert 'data-held-back="2"' in html and "billing" in html and "2026-W48" in html
    staging = client.get("/?env=staging").text
    assert 'data-testid="no-generation"' in staging and 'data-testid="streaks-empty"' in staging


def test_items_filters_and_validation(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, "readonly")
    html = client.get("/items?env=prod&overdue=true&priority=P1").text
    shown = re.findall(r'<tr data-id="([^"]+)"', html)
    assert sorted(shown) == sorted([seeded.ids["gw-arch"], seeded.ids["auth-slo"], seeded.ids["ledger-arch"]])
    bad = client.get("/items?priority=P9")
    assert bad.status_code == 422 and 'data-testid="filter-error"' in bad.text and "priority" in bad.text
    paged = client.get("/items?env=prod&limit=5")
    assert len(re.findall(r'<tr data-id=', paged.text)) == 5 and 'data-testid="next-page"' in paged.text


@pytest.mark.parametrize("query", ["overdue=1", "overdue=yes", "active=0", "overdue=True", "limit=5.0", "limit=true"])
def test_items_filters_take_only_true_false_and_digits(client: TestClient, seeded: Seeded, query: str) -> None:
    """The page's filters are the API's query string: the same strict rule (issue 23)."""
    sign_in(client, "readonly")
    bad = client.get(f"/items?{query}")
    name = query.split("=")[0]
    assert bad.status_code == 422 and 'data-testid="filter-error"' in bad.text and name in bad.text
    assert not re.findall(r'<tr data-id=', bad.text)


def test_item_page_fields_owner_reason_evidence_and_timeline(client: TestClient, seeded: Seeded) -> None:
    api = client.get(f"/v1/backlog/items/{seeded.arch}/events", headers=headers_for("readonly")).json()
    sign_in(client, "readonly")
    html = client.get(f"/items/{seeded.arch}").text
    assert "ownership.overrides[gateway]" in html.split('data-testid="owner-reason"', 1)[1]
    assert '<a href="https://incidents.example.com/INC-123"' in html
    assert 'href="javascript:' not in html and "javascript:alert(document.cookie)" in html  # shown, not linked
    timeline = html.split('data-testid="timeline"', 1)[1].split("</ol>", 1)[0]
    assert len(re.findall(r'<li class="event', timeline)) == len(api["events"])
    assert 'data-testid="read-only"' in html and "status-form" not in html


def test_unknown_item_is_an_html_404(client: TestClient) -> None:
    sign_in(client, "readonly")
    response = client.get("/items/bl_0123456789abcdef")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert 'data-status="404"' in response.text


def test_pages_are_escaped_and_sent_with_a_strict_csp(client: TestClient, runtime: Runtime) -> None:
    record = runtime.store.upsert(item("xss", title="<script>alert(1)</script>",
                                       description="<img src=x onerror=alert(1)>"), actor="t").item
    sign_in(client, "readonly")
    response = client.get(f"/items/{record['id']}")
    assert "<script>alert(1)</script>" not in response.text and "&lt;script&gt;" in response.text
    assert "<img src=x" not in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"


# -- writes --------------------------------------------------------------------------------------
RESOURCE_REFS = re.compile(r'<(?:script|img|iframe|link|source|form)\b[^>]*?\b(?:src|href|action)="([^"]*)"', re.I)


def test_no_page_loads_anything_from_another_origin(client: TestClient, seeded: Seeded) -> None:
    """Every script, style, image, frame and form target on every page is this app's own path; every
    page carries the same security headers (issue 23: /docs included). Evidence links (``<a>``) may
    point elsewhere: a person follows them, the page does not load them."""
    login = client.get("/login")
    sign_in(client, "oncall")
    pages = [login, client.get("/"), client.get("/items?env=prod"), client.get(f"/items/{seeded.arch}"),
             client.get("/items/bl_0123456789abcdef"), client.get("/docs")]
    csp = pages[1].headers["content-security-policy"]
    for page in pages:
        assert page.headers["content-type"].startswith("text/html"), page.url
        assert (page.headers["content-security-policy"], page.headers["x-frame-options"],
                page.headers["x-content-type-options"]) == (csp, "DENY", "nosniff"), page.url
        refs = RESOURCE_REFS.findall(page.text)
        assert refs, page.url
        for ref in refs:
            assert (ref.startswith("/") and not ref.startswith("//")) or ref.startswith("data:"), (page.url, ref)


def test_read_only_account_gets_no_forms_and_a_403_on_write(client: TestClient, seeded: Seeded) -> None:
    token = sign_in(client, "readonly")
    response = client.post(f"/items/{seeded.arch}/status", data={"status": "done", "csrf_token": token})
    assert response.status_code == 403 and "tools.backlog.write" in response.text
    comment = client.post(f"/items/{seeded.arch}/comments", data={"message": "hi", "csrf_token": token})
    assert comment.status_code == 403
    item = client.get(f"/v1/backlog/items/{seeded.arch}", headers=headers_for("readonly")).json()
    assert item["status"] == "open"


def test_write_account_changes_status_and_comments(client: TestClient, seeded: Seeded) -> None:
    token = sign_in(client, "oncall")
    page = client.get(f"/items/{seeded.arch}").text
    assert 'data-testid="status-form"' in page and 'data-testid="comment-form"' in page
    response = client.post(f"/items/{seeded.arch}/status", data={"status": "in_progress", "message": "on it",
                                                                 "csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/items/{seeded.arch}?done=status"
    client.post(f"/items/{seeded.arch}/comments", data={"message": "pairing today", "csrf_token": token})
    events = client.get(f"/v1/backlog/items/{seeded.arch}/events", headers=headers_for("readonly")).json()["events"]
    assert [(e["type"], e["actor"]) for e in events[-2:]] == [("status_changed", "oncall"), ("commented", "oncall")]
    assert 'data-testid="notice"' in client.get(f"/items/{seeded.arch}?done=status").text


def test_a_refused_transition_is_shown_on_the_item(client: TestClient, seeded: Seeded) -> None:
    token = sign_in(client, "oncall")
    response = client.post(f"/items/{seeded.ids['old-done']}/status", data={"status": "blocked", "csrf_token": token})
    assert response.status_code == 409
    assert 'data-testid="form-error"' in response.text and "allowed: open" in response.text


@pytest.mark.parametrize("case", ["no token", "wrong token", "cross-site origin", "cross-site fetch", "json body"])
def test_writes_need_a_same_origin_form_with_the_session_token(client: TestClient, seeded: Seeded,
                                                              case: str) -> None:
    token = sign_in(client, "admin")
    data: dict[str, str] = {"status": "done", "csrf_token": token}
    headers: dict[str, str] = {}
    if case == "no token":
        del data["csrf_token"]
    elif case == "wrong token":
        data["csrf_token"] = token[::-1]
    elif case == "cross-site origin":
        headers["Origin"] = "https://evil.example"
    elif case == "cross-site fetch":
        headers["Sec-Fetch-Site"] = "cross-site"
    url = f"/items/{seeded.arch}/status"
    if case == "json body":
        response = client.post(url, json=data)
        assert response.status_code == 422
    else:
        response = client.post(url, data=data, headers=headers)
        assert response.status_code == 403
    assert client.get(f"/v1/backlog/items/{seeded.arch}", headers=headers_for("admin")).json()["status"] == "open"


def test_same_origin_header_is_accepted(client: TestClient, seeded: Seeded) -> None:
    token = sign_in(client, "admin")
    response = client.post(f"/items/{seeded.arch}/status", data={"status": "done", "csrf_token": token},
                           headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert response.status_code == 303


def test_a_page_declaring_an_unserved_action_stops_the_app(runtime: Runtime, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from services.router import web

    monkeypatch.setattr(web, "READ_ITEM", ("backlog_tool.get", "backlog_tool.no_such_action"))
    with pytest.raises(RuntimeError, match="no_such_action"):
        create_app(runtime, make_rbac())


def test_without_the_web_ui_its_paths_are_api_paths(runtime: Runtime) -> None:
    with TestClient(create_app(runtime, make_rbac(), web=False), base_url=BASE) as bare:
        assert bare.get("/").status_code == 401
        assert bare.get("/login").status_code == 401


def test_static_assets_are_served_without_a_session(client: TestClient) -> None:
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/../access/auth.py").status_code in (401, 404)


def test_an_empty_backlog_renders_with_empty_states(client: TestClient) -> None:
    sign_in(client, "readonly")
    html = client.get("/").text
    assert values(html, "tile") == {"total": 0, "overdue": 0, "open": 0, "in_progress": 0, "blocked": 0, "done": 0,
                                    "canceled": 0}
    assert chart(html, "priority-chart") == {"P0": 0, "P1": 0, "P2": 0, "P3": 0}
    for empty in ("no-alerts", "streaks-empty", "no-generation"):
        assert f'data-testid="{empty}"' in html
    assert "Nothing is overdue." in html and "No active items." in html
