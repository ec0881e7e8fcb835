"""Alertmanager webhook payloads (version 4) in the documented format, firing and resolved.

The payload shape follows Alertmanager's webhook_config documentation: ``version``,
``groupKey``, ``truncatedAlerts``, ``status``, ``receiver``, ``groupLabels``, ``commonLabels``,
``commonAnnotations``, ``externalURL`` and ``alerts`` with ``status``, ``labels``,
``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``, ``fingerprint``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from services.router.errors import ValidationFailed
from services.router.signals.alertmanager import AmPayload, convert
from services.router.signals.models import Alert
from services.router.signals.risk_policy import AlertmanagerLabels
from tests.signals.conftest import Call

FIRING: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{severity="critical"}:{alertname="HighErrorRate"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "backlog-bridge",
    "groupLabels": {"alertname": "HighErrorRate"},
    "commonLabels": {"alertname": "HighErrorRate", "env": "prod", "severity": "critical"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example.org:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "env": "prod", "service": "gateway", "severity": "critical",
                       "instance": "gateway-0:8080", "job": "gateway"},
            "annotations": {"summary": "5xx ratio above 5% on gateway", "description": "for 10m"},
            "startsAt": "2026-11-26T11:52:26.739266876+01:00",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29",
            "fingerprint": "1a30ba71cca2921f",
        },
        {
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "env": "prod", "service": "payments", "severity": "critical",
                       "instance": "payments-1:8080", "job": "payments"},
            "annotations": {"summary": "5xx ratio above 5% on payments"},
            "startsAt": "2026-11-26T10:40:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=x",
            "fingerprint": "c6eadffa33fcdf37",
        },
    ],
}


def resolved_payload() -> dict[str, Any]:
    payload = copy.deepcopy(FIRING)
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-26T11:58:00.000Z"
    return payload


def labels() -> AlertmanagerLabels:
    return AlertmanagerLabels()


def test_firing_payload_becomes_alert_signals() -> None:
    accepted, rejected = convert(AmPayload.model_validate(FIRING), labels())
    assert rejected == []
    first, second = accepted
    assert isinstance(first, Alert)
    assert (first.id, first.env, first.service, first.severity, first.status) == (
        "1a30ba71cca2921f", "prod", "gateway", "critical", "firing")
    assert first.ends_at is None, "Go's zero time means still firing"
    assert first.starts_at == datetime(2026, 11, 26, 10, 52, 26, 739266, tzinfo=UTC)
    assert first.alertname == "HighErrorRate" and first.title == "5xx ratio above 5% on gateway"
    assert first.source.startswith("http://prometheus.example.org:9090/graph")
    assert second.service == "payments"


def test_resolved_payload_keeps_the_end() -> None:
    accepted, rejected = convert(AmPayload.model_validate(resolved_payload()), labels())
    assert rejected == []
    assert all(a.status == "resolved" and a.ends_at == datetime(2026, 11, 26, 11, 58, tzinfo=UTC)
               for a in accepted)


def test_missing_service_label_rejects_only_that_alert() -> None:
    payload = copy.deepcopy(FIRING)
    del payload["alerts"][0]["labels"]["service"]
    accepted, rejected = convert(AmPayload.model_validate(payload), labels())
    assert [a.service for a in accepted] == ["payments"]
    (rej,) = rejected
    assert rej.index == 0 and rej.id == "1a30ba71cca2921f"
    assert rej.reason == "missing service label (looked for service)"


def test_label_names_are_configurable() -> None:
    payload = copy.deepcopy(FIRING)
    for alert in payload["alerts"]:
        alert["labels"]["app"] = alert["labels"].pop("service")
        alert["labels"]["environment"] = alert["labels"].pop("env")
        alert["labels"]["priority"] = "page"
    custom = AlertmanagerLabels(service_labels=["app"], severity_labels=["priority"])
    accepted, rejected = convert(AmPayload.model_validate(payload), custom)
    assert rejected == []
    assert [(a.service, a.env, a.severity) for a in accepted] == [("gateway", "prod", "critical"),
                                                                 ("payments", "prod", "critical")]


def test_env_default_severity_default_and_bad_values() -> None:
    payload = copy.deepcopy(FIRING)
    payload["alerts"][0]["labels"].pop("env")
    payload["alerts"][1]["labels"]["severity"] = "apocalyptic"
    accepted, rejected = convert(AmPayload.model_validate(payload), labels())
    assert accepted == []
    assert "missing env label" in rejected[0].reason
    assert "unknown severity 'apocalyptic'" in rejected[1].reason

    payload["alerts"][1]["labels"].pop("severity")
    accepted, rejected = convert(AmPayload.model_validate(payload), AlertmanagerLabels(default_env="prod"))
    assert rejected == []
    assert [(a.env, a.severity) for a in accepted] == [("prod", "critical"), ("prod", "warning")]


def test_alert_without_fingerprint_or_with_bad_fields_is_rejected_alone() -> None:
    payload = copy.deepcopy(FIRING)
    payload["alerts"][0]["fingerprint"] = ""
    payload["alerts"].append({"status": "firing", "labels": {}})  # no startsAt
    payload["alerts"].append("not an object")
    accepted, rejected = convert(AmPayload.model_validate(payload), labels())
    assert [a.service for a in accepted] == ["payments"]
    assert [r.index for r in rejected] == [0, 2, 3]
    assert "fingerprint" in rejected[0].reason
    assert "startsAt" in rejected[1].reason


def test_unknown_extra_fields_from_senders_are_ignored() -> None:
    payload = copy.deepcopy(FIRING)
    payload["orgId"] = 1
    payload["alerts"][0]["silenceURL"] = "http://grafana.example/silence"
    accepted, rejected = convert(AmPayload.model_validate(payload), labels())
    assert len(accepted) == 2 and rejected == []


def test_webhook_action_resend_is_harmless_and_resolution_updates(call: Call) -> None:
    first = call("signals_tool", "alertmanager", payload=FIRING)
    assert first["counts"] == {"accepted": 2, "rejected": 0, "created": 2, "updated": 0, "unchanged": 0}
    again = call("signals_tool", "alertmanager", payload=FIRING)
    assert again["counts"]["unchanged"] == 2 and again["counts"]["created"] == 0
    resolved = call("signals_tool", "alertmanager", payload=resolved_payload())
    assert resolved["counts"]["updated"] == 2
    late_firing = call("signals_tool", "alertmanager", payload=FIRING)  # a delayed retry of old news
    assert late_firing["counts"]["unchanged"] == 2
    stored = call("signals_tool", "list", kind="alert")["signals"]
    assert {s["status"] for s in stored} == {"resolved"}


def test_webhook_action_refuses_what_is_not_a_payload(call: Call) -> None:
    with pytest.raises(ValidationFailed) as err:
        call("signals_tool", "alertmanager", payload={"alerts": []})
    assert err.value.field == "payload.status"


def test_the_projects_own_prometheus_rules_are_accepted_by_this_receiver() -> None:
    """Every alert ``promtool test rules`` proves our rules fire (exactly these labels) becomes a
    signal with the shipped risk policy: none is dropped for a missing service or env label."""
    from pathlib import Path

    import yaml

    from services.router.signals.risk_policy import load_risk_policy

    repo = Path(__file__).resolve().parents[2]
    policy = load_risk_policy(repo / "config" / "risk_policy.yml").alertmanager
    tests = yaml.safe_load((repo / "ops" / "alerts" / "backlog.rules.test.yml").read_text())["tests"]
    alerts = [{"status": "firing", "labels": {"alertname": case["alertname"], **expected["exp_labels"]},
               "annotations": expected.get("exp_annotations", {}), "startsAt": "2026-11-26T12:00:00Z",
               "fingerprint": f"{n:016x}"}
              for n, (case, expected) in enumerate(
                  (case, expected) for test in tests for case in test["alert_rule_test"]
                  for expected in case.get("exp_alerts", []))]
    assert {a["labels"]["alertname"] for a in alerts} == {
        "BacklogOverdueItems", "BacklogP0Overdue", "BacklogGovernanceJobNotSucceeding", "BacklogMetricsUnavailable"}
    accepted, rejected = convert(AmPayload.model_validate({"status": "firing", "alerts": alerts}), policy)
    assert rejected == [] and {a.service for a in accepted} == {"backlog-bridge"}
