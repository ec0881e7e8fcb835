"""What people see of tracker sync through the router: the item's link and sync state (API and
item page), ``tracker_tool.status`` and ``link``/``unlink``, the ``backlog_tracker_*`` metrics, and
strict parameters (a careless call cannot turn a dry run into a real one)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.trackers import build_adapter, service
from tests.api.conftest import headers_for, make_rbac, make_runtime, new_item
from tests.conftest import NOW
from tests.trackers.conftest import TOKEN_ENV, Harness, github_harness
from tests.web.conftest import BASE, sign_in

NAME = "gh"


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = github_harness()
    yield made
    for adapter in made.opened:
        adapter.close()


@pytest.fixture
def runtime(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    path = tmp_path / "trackers.yml"
    path.write_text(yaml.safe_dump({"trackers": {NAME: harness.config.model_dump(mode="json", exclude_none=True)},
                                    "routes": [{"match": {"env": "prod"}, "tracker": NAME}]}))
    monkeypatch.setenv("BACKLOG_TRACKERS_PATH", str(path))
    clock = FixedClock(NOW)
    made = make_runtime(MemoryBacklogStore(clock=clock), clock, tmp_path, BACKLOG_PUBLIC_URL=BASE)

    def adapter_for(name: str, cfg: Any, observe: Any) -> Any:
        adapter = build_adapter(name, cfg, transport=harness.transport(), environ={TOKEN_ENV: harness.token},
                                observe=observe)
        harness.opened.append(adapter)
        return adapter

    made.extras["tracker_adapter_for"] = adapter_for
    yield made
    made.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, make_rbac()), base_url=BASE) as test_client:
        yield test_client


def sync(runtime: Runtime) -> dict[str, Any]:
    return service.sync(runtime.store, runtime.settings, runtime.clock,
                        adapter_for=runtime.extras["tracker_adapter_for"])["trackers"][0]  # type: ignore[no-any-return]


def tool(client: TestClient, action: str, role: str = "admin", **params: Any) -> Any:
    return client.post("/v1/tools/execute", json={"tool": "tracker_tool", "action": action, **params},
                       headers=headers_for(role))


def test_the_item_shows_its_issue_and_sync_state(client: TestClient, runtime: Runtime, harness: Harness) -> None:
    item_id = new_item(client)["id"]
    before = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()
    assert "tracker" not in before  # not synced yet: nothing to show
    assert sync(runtime)["created"] == 1
    shown = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()
    link = link_store_for(runtime.store, runtime.settings).get_link(item_id)
    assert link is not None
    assert shown["tracker"] == {"tracker": NAME, "project": "acme/platform", "state": "linked", "key": link.remote_key,
                                "url": link.url, "remote_status": "open", "remote_closed": False,
                                "linked_at": link.linked_at, "synced_at": link.synced_at, "sync": "in_sync"}
    client.post(f"/v1/backlog/items/{item_id}/status", json={"status": "blocked"}, headers=headers_for("oncall"))
    pending = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()["tracker"]
    assert pending["sync"] == "pending"  # changed in the backlog, not pushed yet
    sign_in(client, "readonly")
    page = client.get(f"/items/{item_id}").text
    assert re.search(rf'data-testid="tracker-link"><a href="{re.escape(link.url or "")}"', page)
    assert "changes not pushed yet" in page
    harness.delete_remotely(link.remote_key or "")
    sync(runtime)
    parked = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()["tracker"]
    assert parked["sync"] == "parked" and "404" in parked["reason"]
    assert "parked" in client.get(f"/items/{item_id}").text


def test_status_lists_linked_pending_and_parked_with_reasons(client: TestClient, runtime: Runtime,
                                                             harness: Harness) -> None:
    kept, gone = new_item(client, "k1")["id"], new_item(client, "k2")["id"]
    sync(runtime)
    harness.delete_remotely(link_store_for(runtime.store, runtime.settings).get_link(gone).remote_key)  # type: ignore[union-attr]
    client.post("/v1/backlog/items", json={"env": "prod", "service": "gateway", "category": "arch_review",
                                           "title": "renamed", "dedupe_key": "k2"}, headers=headers_for("admin"))
    sync(runtime)
    answer = tool(client, "status", "readonly")
    assert answer.status_code == 200, answer.text
    shown = answer.json()["result"]["trackers"][0]
    assert (shown["tracker"], shown["linked"], shown["pending"], shown["parked"]) == (NAME, 2, 0, 1)
    assert shown["parked_items"][0]["id"] == gone and "404" in shown["parked_items"][0]["reason"]
    assert shown["last_success_at"] is not None and shown["requests"]["ok"] >= 3
    assert tool(client, "sync", "readonly", dry_run=True).status_code == 403  # sync is tools.tracker.admin
    assert kept != gone


@pytest.mark.parametrize("params", [{"dry_run": "true"}, {"dry_run": 0}, {"dry_run": "off"}, {"tracker": 7},
                                    {"tracker": "gh", "extra": 1}])
def test_parameters_are_strict(client: TestClient, runtime: Runtime, harness: Harness,
                               params: dict[str, Any]) -> None:
    new_item(client)
    answer = tool(client, "sync", **params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] in params
    assert link_store_for(runtime.store, runtime.settings).links() == [] and harness.faults.requests == 0


def test_link_adopts_an_existing_issue_and_unlink_stops_syncing(client: TestClient, runtime: Runtime,
                                                                harness: Harness) -> None:
    created = harness.fake._new("acme/platform", {"title": "filed by hand", "body": "someone's ticket"})
    url = f"https://github.com/acme/platform/issues/{created['number']}"
    item_id = new_item(client)["id"]
    linked = service.link(runtime.store, runtime.settings, runtime.clock, item_id=item_id, url=url,
                          adapter_for=runtime.extras["tracker_adapter_for"])
    assert (linked["tracker"], linked["key"]) == (NAME, f"acme/platform#{created['number']}")
    result = sync(runtime)
    assert (result["created"], result["updated"]) == (0, 1)  # no second issue: the adopted one is updated
    issue = harness.fake._by_key(linked["key"])
    assert issue["title"] == "Review gateway" and f"Backlog Bridge item: {item_id}" in issue["body"]
    with pytest.raises(Exception, match="already linked"):
        other = new_item(client, "k2")["id"]
        service.link(runtime.store, runtime.settings, runtime.clock, item_id=other, url=url,
                     adapter_for=runtime.extras["tracker_adapter_for"])
    assert tool(client, "unlink", id=item_id).json()["result"]["unlinked"] is True
    client.post(f"/v1/backlog/items/{item_id}/status", json={"status": "blocked"}, headers=headers_for("oncall"))
    after = sync(runtime)
    assert after["updated"] == 0 and harness.fake._by_key(linked["key"])["state"] == "open"  # left alone
    shown = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()["tracker"]
    assert (shown["state"], shown["sync"]) == ("unlinked", "off")
    refused = tool(client, "link", id=item_id, url="https://example.com/not/an/issue")
    assert refused.status_code == 422 and refused.json()["field"] == "url"


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def test_metrics_show_pending_parked_last_success_and_requests(client: TestClient, runtime: Runtime,
                                                               harness: Harness) -> None:
    new_item(client)
    sync(runtime)
    text = client.get("/metrics").text
    assert sample(text, "backlog_tracker_pending", tracker=NAME) == 0.0
    assert sample(text, "backlog_tracker_parked", tracker=NAME) == 0.0
    assert sample(text, "backlog_tracker_last_success_timestamp_seconds", tracker=NAME) == NOW.timestamp()
    assert (sample(text, "backlog_tracker_requests_total", tracker=NAME, outcome="ok") or 0) >= 2
    assert sample(text, "backlog_tracker_metrics_error") == 0.0
    harness.faults.next(429, headers={"Retry-After": "30"})
    new_item(client, "k2")
    sync(runtime)
    text = client.get("/metrics").text
    assert sample(text, "backlog_tracker_requests_total", tracker=NAME, outcome="rate_limited") == 1.0
    assert sample(text, "backlog_tracker_pending", tracker=NAME) == 1.0
