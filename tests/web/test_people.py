"""People in the audit trail: ``X-Acting-User`` from delegate accounts, and the web dashboard
behind an auth proxy (``web.trusted_user_header`` from ``web.trusted_proxies`` only)."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from services.router.access.delegation import WebProxy
from services.router.access.rbac import RbacConfig, read_rbac_file
from services.router.app import create_app
from services.router.runtime import Runtime
from tests.api.conftest import KEYS, RBAC_FILE, headers_for, new_item
from tests.web.conftest import BASE, CSRF_META

PROXY = WebProxy(trusted_user_header="X-Forwarded-Email", trusted_proxies=[ipaddress.ip_network("127.0.0.1/32")],
                 proxy_account="oncall")


def rbac(*, delegates: tuple[str, ...] = ("oncall",), web: WebProxy | None = PROXY) -> RbacConfig:
    accounts, _ = read_rbac_file(RBAC_FILE)
    accounts = [replace(a, delegate=a.name in delegates) for a in accounts]
    return RbacConfig(accounts, KEYS, source=str(RBAC_FILE), web=web)


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, rbac(), web=False)) as client:
        yield client


def test_a_delegate_account_names_the_person_on_every_event(api: TestClient) -> None:
    person = {"X-Acting-User": "dana@example.com", **headers_for("oncall")}
    created = api.post("/v1/backlog/items", headers=person, json={
        "env": "prod", "service": "gateway", "category": "toil", "title": "Clean up"}).json()["item"]
    api.post(f"/v1/backlog/items/{created['id']}/status", headers=person, json={"status": "in_progress"})
    for route, body in (("owner", {"owner": "team-edge"}), ("due-date", {"due_date": "2026-12-24"})):
        edited = api.post(f"/v1/backlog/items/{created['id']}/{route}", headers=person, json=body)
        assert edited.status_code == 200 and edited.json()["event"]["on_behalf_of"] == "dana@example.com"
    api.post(f"/v1/backlog/items/{created['id']}/comments", headers={**headers_for("oncall"),
                                                                       "X-Acting-User": "erin"}, json={"message": "hi"})
    api.post(f"/v1/backlog/items/{created['id']}/comments", headers=headers_for("oncall"), json={"message": "bot"})
    events = api.get(f"/v1/backlog/items/{created['id']}/events", headers=headers_for("readonly")).json()["events"]
    assert [(e["type"], e["actor"], e.get("on_behalf_of")) for e in events] == [
        ("created", "oncall", "dana@example.com"), ("status_changed", "oncall", "dana@example.com"),
        ("owner_changed", "oncall", "dana@example.com"), ("due_date_changed", "oncall", "dana@example.com"),
        ("commented", "oncall", "erin"), ("commented", "oncall", None)]


@pytest.mark.parametrize(("value", "status", "text"), [
    ("x" * 120 + "@example.com", 422, "at most 128"), ("Dana Smith", 422, "not an email address or a slug"),
    ("dana@", 422, "not an email address"), ("", 422, "is empty"),
])
def test_an_acting_user_is_validated(api: TestClient, value: str, status: int, text: str) -> None:
    response = api.post("/v1/backlog/items", headers={**headers_for("oncall"), "X-Acting-User": value}, json={
        "env": "prod", "service": "gateway", "category": "toil", "title": "Clean up"})
    assert response.status_code == status and text in response.json()["error"], response.text
    assert response.json()["field"] == "X-Acting-User"
    assert api.get("/v1/backlog/items", headers=headers_for("admin")).json()["items"] == []


def test_an_account_without_delegate_may_not_name_a_person(api: TestClient) -> None:
    response = api.post("/v1/backlog/items", headers={**headers_for("admin"), "X-Acting-User": "dana"}, json={
        "env": "prod", "service": "gateway", "category": "toil", "title": "Clean up"})
    assert response.status_code == 403 and "delegate: true" in response.json()["error"]
    assert api.get("/v1/backlog/items", headers=headers_for("admin")).json()["items"] == []


def web_client(runtime: Runtime, address: str) -> TestClient:
    return TestClient(create_app(runtime, rbac()), base_url=BASE, client=(address, 40000), follow_redirects=False)


def test_the_trusted_proxy_signs_people_in_and_their_changes_name_them(runtime: Runtime) -> None:
    with web_client(runtime, "127.0.0.1") as web:
        item = new_item(web, "k1")
        page = web.get(f"/items/{item['id']}", headers={"X-Forwarded-Email": "frank@example.com"})
        assert page.status_code == 200, page.text
        assert 'data-testid="person">frank@example.com<' in page.text
        match = CSRF_META.search(page.text)
        assert match is not None
        posted = web.post(f"/items/{item['id']}/comments", headers={"X-Forwarded-Email": "frank@example.com",
                                                                     "Origin": BASE},
                          data={"csrf_token": match.group(1), "message": "on it"})
        assert posted.status_code == 303, posted.text
        forged = web.post(f"/items/{item['id']}/comments", headers={"X-Forwarded-Email": "grace@example.com"},
                          data={"csrf_token": match.group(1), "message": "as someone else"})
        assert forged.status_code == 403  # the token is the person's: another person's form is refused
        owner = web.post(f"/items/{item['id']}/owner", headers={"X-Forwarded-Email": "frank@example.com",
                                                                 "Origin": BASE},
                         data={"csrf_token": match.group(1), "owner": "team-edge"})
        assert owner.status_code == 303, owner.text
        timeline = web.get(f"/items/{item['id']}", headers={"X-Forwarded-Email": "frank@example.com"}).text
        assert "oncall for frank@example.com" in timeline
    events = runtime.store.events(item["id"])
    assert (events[-2]["actor"], events[-2].get("on_behalf_of"), events[-2]["message"]) == (
        "oncall", "frank@example.com", "on it")
    assert (events[-1]["type"], events[-1]["actor"], events[-1].get("on_behalf_of")) == (
        "owner_changed", "oncall", "frank@example.com")


def test_the_header_from_anywhere_else_is_ignored_and_logged(runtime: Runtime,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="backlog.web")
    with web_client(runtime, "10.0.0.7") as web:
        for _ in range(3):
            page = web.get("/", headers={"X-Forwarded-Email": "mallory@example.com"})
            assert page.status_code == 303 and page.headers["location"].startswith("/login")
    warnings = [r.getMessage() for r in caplog.records if "X-Forwarded-Email" in r.getMessage()]
    assert warnings == ["X-Forwarded-Email from 10.0.0.7 ignored: not one of web.trusted_proxies"]  # once a minute
    with web_client(runtime, "127.0.0.1") as web:
        assert web.get("/", headers={"X-Forwarded-Email": "Not A Person"}).status_code == 303


def test_the_proxy_account_must_be_declared(tmp_path: object) -> None:
    from pathlib import Path

    from services.router.access.rbac import read_accounts
    from services.router.errors import PolicyInvalid

    path = Path(str(tmp_path)) / "rbac.yml"
    path.write_text(RBAC_FILE.read_text() + "\nweb:\n  trusted_proxies: [127.0.0.1/32]\n  proxy_account: nobody\n")
    with pytest.raises(PolicyInvalid, match=r"web\.proxy_account 'nobody' is not an account"):
        read_accounts(path)


def test_accepted_items_show_as_accepted_on_the_pages(runtime: Runtime) -> None:
    with web_client(runtime, "127.0.0.1") as web:
        item = new_item(web, "late", priority="P0", due_date="2026-11-20")
        web.post(f"/v1/backlog/items/{item['id']}/accept", headers=headers_for("admin"),
                 json={"until": "2026-12-01", "reason": "vendor fix on Monday"})
        person = {"X-Forwarded-Email": "frank@example.com"}
        listing = web.get("/items?env=prod", headers=person).text
        assert "accepted until 2026-12-01" in listing and "row-overdue" not in listing
        page = web.get(f"/items/{item['id']}", headers=person).text
        assert 'data-testid="accepted-badge">risk accepted until 2026-12-01' in page
        assert "vendor fix on Monday" in page
        board = web.get("/?env=prod", headers=person).text
        assert 'data-testid="accepted-count">1<' in board
