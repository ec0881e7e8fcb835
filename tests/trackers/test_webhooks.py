"""``POST /v1/trackers/{name}/webhook`` through the real app: the tracker's secret authenticates it,
a bad one is a 401 with nothing scheduled, and a good one only schedules a pull — the issue's
state is read from the tracker, never from the webhook's body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from fastapi.testclient import TestClient

from services.router.app import create_app
from services.router.clock import FixedClock
from services.router.runtime import Runtime
from services.router.stores.memory import MemoryBacklogStore
from services.router.stores.tracker_link_factory import link_store_for
from services.router.trackers import build_adapter
from services.router.trackers.kicker import PullKicker
from services.router.trackers.service import engine_for
from tests.api.conftest import headers_for, make_rbac, make_runtime, new_item
from tests.conftest import NOW
from tests.trackers.conftest import TOKEN_ENV, Harness, github_harness, gitlab_harness, jira_harness

SECRET = "whsec-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FAKES = {"github": github_harness, "gitlab": gitlab_harness, "jira": jira_harness}
NAME = "tracked"


@pytest.fixture(params=sorted(FAKES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made = FAKES[str(request.param)]()
    yield made
    for adapter in made.opened:
        adapter.close()


@pytest.fixture
def runtime(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    config = harness.config.model_dump(mode="json", exclude_none=True)
    config["webhook_secret_env"] = "TRACKER_WEBHOOK_SECRET"
    path = tmp_path / "trackers.yml"
    path.write_text(yaml.safe_dump({"trackers": {NAME: config}, "routes": [{"match": {"env": "prod"},
                                                                            "tracker": NAME}]}))
    monkeypatch.setenv("BACKLOG_TRACKERS_PATH", str(path))
    monkeypatch.setenv("TRACKER_WEBHOOK_SECRET", SECRET)
    clock = FixedClock(NOW)
    made = make_runtime(MemoryBacklogStore(clock=clock), clock, tmp_path)

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
    with TestClient(create_app(runtime, make_rbac())) as test_client:
        yield test_client


def event(kind: str, key: str, **claims: Any) -> dict[str, Any]:
    """What each tracker sends when an issue changes (the claims are never believed)."""
    if kind == "github":
        repo, number = key.split("#")
        return {"action": "closed", "issue": {"number": int(number), "state": "closed", **claims},
                "repository": {"full_name": repo}}
    if kind == "gitlab":
        project, iid = key.split("#")
        return {"object_kind": "issue", "project": {"path_with_namespace": project},
                "object_attributes": {"iid": int(iid), "state": "closed", "action": "close", **claims}}
    return {"webhookEvent": "jira:issue_updated", "issue": {"key": key, "fields": {"status": {"name": "Done"}}}}


def signed_headers(kind: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    if kind == "gitlab":
        return {"X-Gitlab-Token": secret, "X-Gitlab-Event": "Issue Hook"}
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256" if kind == "github" else "X-Hub-Signature": signature}


def post(client: TestClient, kind: str, payload: Any, *, secret: str = SECRET, name: str = NAME,
         headers: dict[str, str] | None = None) -> Any:
    body = orjson.dumps(payload)
    sent = signed_headers(kind, body, secret) if headers is None else headers
    return client.post(f"/v1/trackers/{name}/webhook", content=body,
                       headers={"Content-Type": "application/json", **sent})


def synced_item(client: TestClient, runtime: Runtime) -> tuple[str, str]:
    item_id = new_item(client)["id"]
    engine = engine_for(runtime.store, runtime.settings, runtime.clock, runtime.extras["tracker_adapter_for"])
    assert engine is not None and engine.sync()["created"] == 1
    link = link_store_for(runtime.store, runtime.settings).get_link(item_id)
    assert link is not None and link.remote_key is not None
    return item_id, link.remote_key


def kicked(runtime: Runtime) -> PullKicker:
    found = runtime.extras["tracker_kicker"]
    assert isinstance(found, PullKicker) and found.wait_idle(10)
    return found


def test_a_signed_webhook_schedules_a_pull_that_reads_the_issue(client: TestClient, runtime: Runtime,
                                                                 harness: Harness) -> None:
    item_id, key = synced_item(client, runtime)
    harness.close_remotely(key)
    answer = post(client, harness.kind, event(harness.kind, key))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"scheduled": True, "tracker": NAME, "key": key, "item_id": item_id}
    kicked(runtime)
    item = client.get(f"/v1/backlog/items/{item_id}", headers=headers_for("readonly")).json()
    assert item["status"] == "done"  # moved within seconds, not at the next tracker_sync run
    assert item["tracker"]["key"] == key and item["tracker"]["remote_closed"] is True
    assert item["tracker"]["sync"] == "in_sync"
    assert link_store_for(runtime.store, runtime.settings).work(NAME) == []


def test_the_body_is_never_believed(client: TestClient, runtime: Runtime, harness: Harness) -> None:
    item_id, key = synced_item(client, runtime)
    answer = post(client, harness.kind, event(harness.kind, key))  # claims "closed"; the issue is open
    assert answer.status_code == 202 and answer.json()["scheduled"] is True
    kicked(runtime)
    assert runtime.store.get(item_id)["status"] == "open"  # type: ignore[index]


@pytest.mark.parametrize("case", ["wrong secret", "no signature", "tampered body", "unknown tracker",
                                  "API key instead", "secret unset"])
def test_a_bad_signature_is_401_and_schedules_nothing(client: TestClient, runtime: Runtime, harness: Harness,
                                                      case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    item_id, key = synced_item(client, runtime)
    harness.close_remotely(key)
    requests = harness.faults.requests
    payload = event(harness.kind, key)
    if case == "wrong secret":
        answer = post(client, harness.kind, payload, secret="whsec-not-the-right-one-at-all")
    elif case == "no signature":
        answer = post(client, harness.kind, payload, headers={})
    elif case == "tampered body":
        body = orjson.dumps(payload)
        headers = signed_headers(harness.kind, body)
        tampered = body.replace(b"closed", b"opened") if harness.kind != "jira" else body.replace(b"Done", b"Open")
        if harness.kind == "gitlab":  # a token, not a signature: tamper with the token instead
            headers = {"X-Gitlab-Token": SECRET[:-1]}
        answer = client.post(f"/v1/trackers/{NAME}/webhook", content=tampered, headers=headers)
    elif case == "unknown tracker":
        answer = post(client, harness.kind, payload, name="nope")
    elif case == "API key instead":
        answer = post(client, harness.kind, payload, headers=headers_for("admin"))
    else:
        monkeypatch.delenv("TRACKER_WEBHOOK_SECRET")
        answer = post(client, harness.kind, payload)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"].startswith("webhook refused for tracker")
    assert SECRET not in answer.text
    assert link_store_for(runtime.store, runtime.settings).work(NAME) == []  # nothing scheduled
    assert "tracker_kicker" not in runtime.extras and harness.faults.requests == requests
    assert runtime.store.get(item_id)["status"] == "open"  # type: ignore[index]


def test_an_event_about_an_unlinked_issue_or_no_issue_schedules_nothing(client: TestClient, runtime: Runtime,
                                                                        harness: Harness) -> None:
    synced_item(client, runtime)
    other = {"github": "acme/platform#999", "gitlab": "acme/platform#999", "jira": "PLAT-999"}[harness.kind]
    answer = post(client, harness.kind, event(harness.kind, other))
    assert answer.status_code == 202 and answer.json()["scheduled"] is False
    assert "is not linked" in answer.json()["reason"]
    ping = post(client, harness.kind, {"zen": "Keep it logically awesome."})
    assert ping.status_code == 202 and ping.json() == {"scheduled": False, "tracker": NAME,
                                                       "reason": "the event names no issue"}
    assert link_store_for(runtime.store, runtime.settings).work(NAME) == []


def test_keys_in_the_query_string_are_refused_here_too(client: TestClient, harness: Harness) -> None:
    answer = client.post(f"/v1/trackers/{NAME}/webhook?token=abc", content=b"{}")
    assert answer.status_code == 401 and "query string" in answer.json()["error"]
