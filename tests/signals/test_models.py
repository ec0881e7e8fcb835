"""Each signal kind: valid, each invalid field rejected with a reason naming it, batches item by item."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.router.signals.models import KINDS, Incident, validate_batch
from tests.signals.builders import BUILDERS, incident

COMMON_INVALID: list[tuple[str, Any]] = [
    ("id", ""), ("id", "has space"), ("id", "x" * 201),
    ("env", "Prod"), ("env", ""), ("service", "bad service"), ("service", "a" * 65),
    ("source", ""), ("source", "s" * 501),
]

INVALID: dict[str, list[tuple[str, Any]]] = {
    "incident": [("title", ""), ("title", "t" * 201), ("severity", "sev5"), ("status", "closed"),
                 ("started_at", "2026-11-26T10:00:00"), ("started_at", "yesterday"),
                 ("resolved_at", "2026-11-26T11:00:00Z"),  # not resolved
                 ("root_cause", "Not A Slug"), ("alertname", "")],
    "alert": [("alertname", ""), ("severity", "page"), ("status", "pending"), ("starts_at", "2026-11-26T11:00:00"),
              ("ends_at", "2026-11-26T12:00:00Z"),  # firing alerts have not ended
              ("title", "t" * 201)],
    "slo_breach": [("slo", ""), ("burn_rate", 0), ("burn_rate", -1), ("burn_rate", "fast"), ("at", "2026-11-26"),
                   ("at", None)],
    "followup": [("title", ""), ("due_date", "next week"), ("status", "closed"), ("incident_ref", "a b"),
                 ("created_at", "2026-11-01T00:00:00"), ("done_at", "2026-11-02T00:00:00Z")],  # not done
    "deploy": [("result", "ok"), ("at", "not a time"), ("version", "v" * 101)],
    "vulnerability": [("severity", "urgent"), ("status", "closed"), ("cve", "CVE-12"),
                      ("detected_at", "2026-11-01"), ("fixed_at", "2026-11-02T00:00:00Z")],  # not fixed
}
REQUIRED = {
    "incident": ["title", "severity", "status", "started_at"],
    "alert": ["alertname", "severity", "status", "starts_at"],
    "slo_breach": ["slo", "burn_rate", "at"],
    "followup": ["title", "due_date", "status"],
    "deploy": ["result", "at"],
    "vulnerability": ["severity", "status", "detected_at"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_valid(kind: str) -> None:
    accepted, rejected = validate_batch([BUILDERS[kind]()])
    assert rejected == [] and accepted[0].kind_name == kind
    assert accepted[0].occurred_at.tzinfo is not None


CASES = [(kind, name, value) for kind in KINDS for name, value in COMMON_INVALID + INVALID[kind]]


@pytest.mark.parametrize(("kind", "field", "value"), CASES, ids=[f"{k}-{f}-{v!r}"[:60] for k, f, v in CASES])
def test_each_invalid_field_is_named(kind: str, field: str, value: Any) -> None:
    accepted, rejected = validate_batch([BUILDERS[kind](**{field: value}), BUILDERS[kind]("other-id")])
    assert len(accepted) == 1, "the good item beside the bad one is still accepted"
    (rej,) = rejected
    assert rej.index == 0
    named = [e["field"] for e in rej.errors]
    assert field in named or (named == ["(item)"] and field in rej.reason), rej.reason


@pytest.mark.parametrize(("kind", "field"), [(k, f) for k in KINDS for f in ["id", "env", "service", "source",
                                                                              *REQUIRED[k]]])
def test_missing_required_field(kind: str, field: str) -> None:
    data = BUILDERS[kind]()
    del data[field]
    _, (rej,) = validate_batch([data])
    assert {"field": field, "message": "required field is missing"} in rej.errors


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_field_refused(kind: str) -> None:
    _, (rej,) = validate_batch([BUILDERS[kind](colour="blue")])
    assert rej.errors == [{"field": "colour", "message": "unknown field"}]


def test_unknown_kind_and_non_objects_are_rejected_alone() -> None:
    accepted, rejected = validate_batch([{"kind": "page", "id": "x"}, "text", 3, None, incident()])
    assert len(accepted) == 1
    assert [r.index for r in rejected] == [0, 1, 2, 3]
    assert rejected[0].reason.startswith("kind: must be one of incident, alert")
    assert rejected[0].kind == "page" and rejected[0].id == "x"


def test_timestamps_are_normalized_to_utc() -> None:
    (inc,), _ = validate_batch([incident(started_at="2026-11-26T12:00:00+02:00")])
    assert isinstance(inc, Incident)
    assert inc.started_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert inc.record()["started_at"] == "2026-11-26T10:00:00Z"


def test_cross_field_rules() -> None:
    cases = [
        incident(status="resolved"),  # no resolved_at
        incident(status="resolved", resolved_at="2026-11-26T09:00:00Z"),  # before it started
        BUILDERS["alert"](status="resolved"),  # no ends_at
        BUILDERS["alert"](status="resolved", ends_at="2026-11-26T10:00:00Z"),  # before it started
        BUILDERS["vulnerability"](status="fixed", fixed_at="2026-10-01T00:00:00Z"),  # before detection
        BUILDERS["followup"](status="done", created_at="2026-11-10T00:00:00Z", done_at="2026-11-09T00:00:00Z"),
    ]
    accepted, rejected = validate_batch(cases)
    assert accepted == [] and len(rejected) == len(cases)
    assert all(r.errors[0]["field"] == "(item)" for r in rejected)
    assert "resolved_at is required" in rejected[0].reason
    assert "before" in rejected[1].reason


def test_resolved_and_fixed_states_validate() -> None:
    accepted, rejected = validate_batch([
        incident(status="resolved", resolved_at="2026-11-26T11:00:00Z"),
        BUILDERS["alert"](status="resolved", ends_at="2026-11-26T11:30:00Z"),
        BUILDERS["vulnerability"](status="fixed", fixed_at="2026-11-02T00:00:00Z"),
        BUILDERS["followup"](status="done", done_at="2026-11-19T00:00:00Z"),
    ])
    assert rejected == [] and len(accepted) == 4
