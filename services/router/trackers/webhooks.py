"""Tracker webhooks (``POST /v1/trackers/{name}/webhook``): authenticate, then schedule a pull.

A tracker cannot send one of our API keys, so each tracker's webhook authenticates with the
shared secret in the variable ``webhook_secret_env`` names, compared in constant time before
anything in the body is read:

- GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``;
- GitLab: ``X-Gitlab-Token: <secret>``;
- Jira (admin webhooks with a secret): ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

A bad or missing signature, an unknown tracker and a tracker without a secret all get the same
401 (the log says which), and nothing is scheduled. A webhook never sets state from its body:
it names the issue to read again, which goes to the outbox as a pull (``kind="pull"``); the
pull reads the issue from the tracker itself, like the cursor pull — which remains the
guarantee, since webhooks get lost. Only issues linked to an item are scheduled.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from typing import Any

import orjson

from services.router.clock import Clock, iso_z
from services.router.errors import AuthError, ValidationFailed
from services.router.stores.tracker_links import SyncWork, TrackerLinkStore
from services.router.trackers.config import TrackersConfig

log = logging.getLogger("backlog.trackers")

REFUSED = "webhook refused for tracker {name!r}: missing or wrong signature or token"
DUMMY_SECRET = "backlog-bridge: no webhook secret"  # keeps the refusal's timing the same
SIGNATURE_HEADER = {"github": "x-hub-signature-256", "jira": "x-hub-signature"}


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def authentic(kind: str, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    if kind == "gitlab":
        return hmac.compare_digest(headers.get("x-gitlab-token", "").encode(), secret.encode())
    header = SIGNATURE_HEADER.get(kind)
    sent = headers.get(header, "") if header else ""
    return hmac.compare_digest(sent.encode(), signed(secret, body).encode()) and header is not None


def issue_key(kind: str, payload: Any) -> str | None:
    """The key of the issue an event is about (the adapters' key form), or None."""
    if not isinstance(payload, dict):
        return None
    if kind == "github":
        issue, repo = payload.get("issue"), payload.get("repository")
        if isinstance(issue, dict) and isinstance(repo, dict) and "pull_request" not in issue:
            number, name = issue.get("number"), repo.get("full_name")
            if isinstance(number, int) and isinstance(name, str):
                return f"{name}#{number}"
        return None
    if kind == "gitlab":
        project = payload.get("project")
        attrs = payload.get("object_attributes") if payload.get("object_kind") == "issue" else payload.get("issue")
        if isinstance(project, dict) and isinstance(attrs, dict):
            iid, path = attrs.get("iid"), project.get("path_with_namespace")
            if isinstance(iid, int) and isinstance(path, str):
                return f"{path}#{iid}"
        return None
    if kind == "jira":
        issue = payload.get("issue")
        key = issue.get("key") if isinstance(issue, dict) else None
        return key if isinstance(key, str) else None
    return None


def receive(links: TrackerLinkStore | None, config: TrackersConfig | None, name: str, headers: Mapping[str, str],
            body: bytes, clock: Clock, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Authenticate one webhook and schedule the pull of the issue it names (see the module docstring)."""
    env = os.environ if environ is None else environ
    tracker = config.trackers.get(name) if config is not None else None
    secret_env = tracker.webhook_secret_env if tracker is not None else None
    secret = env.get(secret_env, "") if secret_env else ""
    ok = authentic(tracker.kind if tracker is not None else "github", secret or DUMMY_SECRET, headers, body)
    if tracker is None or not secret or not ok:
        why = ("tracker sync is off" if config is None else "no such tracker" if tracker is None
               else f"{secret_env} is not set" if secret_env and not secret
               else "it has no webhook_secret_env" if not secret_env else "bad signature or token")
        log.warning("tracker webhook refused for %r: %s", name, why)
        raise AuthError(REFUSED.format(name=name))
    assert links is not None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationFailed("body: not JSON", field="body") from None
    key = issue_key(tracker.kind, payload)
    if key is None:
        return {"scheduled": False, "tracker": name, "reason": "the event names no issue"}
    link = links.link_by_key(name, key)
    if link is None or link.state != "linked":
        return {"scheduled": False, "tracker": name, "key": key, "reason": f"{key} is not linked to a backlog item"}
    links.put_work(SyncWork(name, key, "pull", created_at=iso_z(clock.now())))
    return {"scheduled": True, "tracker": name, "key": key, "item_id": link.item_id}
