"""Generation and the rest of the lifecycle, on every backend: an accepted lineage is suppressed,
owners come from the service catalog (overrides > catalog > default_owner, explicit > all), and
``ownership.reassign_on_change`` moves rule-owned items only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTO_BACKENDS, BACKENDS
from tests.generation.builders import platform, svc
from tests.generation.conftest import Gen

MONDAY = datetime(2026, 11, 23, 6, 20, tzinfo=UTC)


@pytest.fixture(params=BACKENDS + AUTO_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every backend, and the Auto store healthy and degraded."""
    return str(request.param)

CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: System
metadata: {name: edge}
spec: {owner: group:default/team-platform}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: gateway
  description: The edge gateway
spec: {type: service, lifecycle: production, owner: group:default/team-edge}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: payments-api
  annotations: {backlog-bridge/service: payments}
spec: {type: service, owner: user:default/alice}
---
kind: Component
metadata: {name: auth}
spec: {owner: team-identity}
"""


def week(n: int, **services: int) -> dict[str, Any]:
    """A digest for week W48+n; each named service has that many open critical vulnerabilities."""
    return platform(f"2026-W{48 + n}", {"prod": [svc(s, open_critical_vulns=v) for s, v in services.items()]})


def run(gen: Gen, n: int, *, dry_run: bool = False, **services: int) -> dict[str, Any]:
    gen.clock.set(MONDAY + timedelta(weeks=n))
    gen.platform(week(n, **services))
    return dict(gen.weekly(dry_run=dry_run))


def key(n: int, service: str) -> str:
    return f"platform_backlog:2026-W{48 + n}:prod:{service}:security"


def test_an_accepted_lineage_gets_no_new_weeks_item_until_its_date(gen: Gen) -> None:
    run(gen, 0, gateway=1)
    first = gen.by_key()[key(0, "gateway")]
    gen.call("accept", id=first["id"], until="2026-12-15", reason="WAF rule in place until the patch")
    preview = run(gen, 1, dry_run=True, gateway=1)
    result = run(gen, 1, gateway=1)
    for r in (preview, result):
        [row] = r["items"]
        assert (row["action"], r["created"], r["suppressed"]) == ("suppressed", 0, 1)
        assert row["reason"] == (f"suppressed: accepted until 2026-12-15 ({first['id']}: WAF rule in place until "
                                 "the patch)")
    assert key(1, "gateway") not in gen.by_key()
    run(gen, 3, gateway=1)  # 2026-12-14: still accepted
    assert key(3, "gateway") not in gen.by_key()
    after = run(gen, 4, gateway=1)  # 2026-12-21: the acceptance ended on the 15th
    assert (after["created"], after["suppressed"]) == (1, 0)
    fresh = gen.by_key()[key(4, "gateway")]
    assert fresh["meta"]["carried_from"] == first["id"] and fresh["meta"]["weeks_open"] == 5
    assert [e["type"] for e in gen.call("events", id=first["id"])["events"]] == [
        "created", "accepted", "acceptance_expired"]  # the run recorded the expiry first


def write_catalog(gen: Gen, text: str = CATALOG, name: str = "edge.yaml") -> Path:
    folder = gen.root / "ops" / "catalog"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_owners_from_the_catalog_with_their_precedence(gen: Gen) -> None:
    write_catalog(gen)
    gen.policy(ownership={"default_owner": "oncall", "overrides": {"auth": "team-sso"},
                          "catalog": ["ops/catalog/*.yaml"]})
    run(gen, 0, gateway=1, payments=1, auth=1, search=1)
    items = gen.by_key()
    owners = {s: (items[key(0, s)]["owner"], items[key(0, s)]["meta"]["owner_reason"])
              for s in ("gateway", "payments", "auth", "search")}
    assert owners == {
        "gateway": ("team-edge", "catalog ops/catalog/edge.yaml: component:default/gateway "
                                 "(spec.owner group:default/team-edge)"),
        "payments": ("alice", "catalog ops/catalog/edge.yaml: component:default/payments-api "
                              "(spec.owner user:default/alice)"),
        "auth": ("team-sso", "ownership.overrides[auth]"),  # overrides beat the catalog
        "search": ("oncall", "ownership.default_owner"),
    }
    # A manual item: the catalog gives the owner unless the upsert names one.
    manual = gen.call("upsert", env="prod", service="gateway", category="toil", title="Retire the old proxy")
    assert manual["item"]["owner"] == "team-edge"
    assert manual["item"]["meta"]["owner_reason"].startswith("catalog ops/catalog/edge.yaml: component:default/gateway")
    explicit = gen.call("upsert", env="prod", service="gateway", category="toil", title="Rotate certs",
                        owner="bob")
    assert (explicit["item"]["owner"], explicit["item"]["meta"]["owner_reason"]) == (
        "bob", "explicit owner in the upsert")
    again = gen.call("upsert", env="prod", service="gateway", category="toil", title="Retire the old proxy")
    assert again["action"] == "unchanged"  # resending the same item stays a no-op


def test_existing_items_keep_their_owner_unless_reassign_on_change(gen: Gen) -> None:
    catalog = write_catalog(gen)
    gen.policy(ownership={"catalog": ["ops/catalog/*.yaml"]})
    run(gen, 0, gateway=1, payments=1)
    items = gen.by_key()
    gateway, payments = items[key(0, "gateway")], items[key(0, "payments")]
    gen.call("upsert", env="prod", service="payments", category="security", title=payments["title"],
             dedupe_key=payments["dedupe_key"], owner="carol", meta=payments["meta"])  # a person chose carol
    catalog.write_text(CATALOG.replace("team-edge", "team-gateway").replace("user:default/alice", "team-pay"))

    kept = run(gen, 0, gateway=1, payments=1)  # the runbook: an existing item keeps its owner
    assert kept["reassigned"] == []
    now = gen.by_key()[key(0, "gateway")]
    assert now["owner"] == "team-edge" and now["meta"]["owner_reason"].startswith(
        "kept team-edge (owner of the existing item); the policy now assigns team-gateway via catalog")

    gen.policy(ownership={"catalog": ["ops/catalog/*.yaml"], "reassign_on_change": True})
    preview = run(gen, 0, dry_run=True, gateway=1, payments=1)
    assert [(m["id"], m["from"], m["to"]) for m in preview["reassigned"]] == [(gateway["id"], "team-edge",
                                                                               "team-gateway")]
    assert gen.by_key()[key(0, "gateway")]["owner"] == "team-edge"  # the dry run moved nothing
    moved = run(gen, 0, gateway=1, payments=1)
    assert [m["id"] for m in moved["reassigned"]] == [gateway["id"]]
    after = gen.by_key()
    assert after[key(0, "gateway")]["owner"] == "team-gateway"
    assert after[key(0, "payments")]["owner"] == "carol"  # a manual owner is never moved
    event = gen.call("events", id=gateway["id"])["events"][-1]
    assert (event["type"], event["actor"], event["meta"]["from"], event["meta"]["to"]) == (
        "owner_changed", "generator", "team-edge", "team-gateway")
    assert "catalog ops/catalog/edge.yaml" in event["message"]
    settled = run(gen, 0, gateway=1, payments=1)
    assert (settled["updated"], settled["reassigned"]) == (0, [])  # settled: nothing moves twice
