"""The operator's path through router-a: signals in, then the digests and weekly generation run by
``ops/scripts/run_governance_job.py`` (the cron runner, system ``python3``, the scheduler key)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.deploy.podman import REPO
from tests.deploy.stack import Stack

SERVICES = ("checkout", "payments", "search")
RUNNER = REPO / "ops" / "scripts" / "run_governance_job.py"
# In order: what the registry's jobs do on a Monday morning (RUNBOOK §9).
JOBS = (
    ("risk_history_tool", "snapshot", {}),
    ("risk_history_tool", "digest", {"env": "prod"}),
    ("architecture_pressure_tool", "digest", {"env": "prod"}),
    ("backlog_tool", "auto_generate_weekly", {"env": "prod"}),
)


def z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signals(now: datetime) -> list[dict[str, Any]]:
    """An open critical vulnerability per service (→ a P0 `security` item each), plus an incident
    and an SLO breach, so the digests have something to rank."""
    out: list[dict[str, Any]] = []
    for i, service in enumerate(SERVICES):
        out.append({"kind": "vulnerability", "id": f"DT-VULN-{i}", "env": "prod", "service": service,
                    "source": f"https://scanner.invalid/DT-VULN-{i}", "title": f"critical CVE in {service}",
                    "cve": f"CVE-2026-{1000 + i}", "package": "libdeploytest", "severity": "critical",
                    "status": "open", "detected_at": z(now - timedelta(days=2))})
    out.append({"kind": "incident", "id": "DT-INC-1", "env": "prod", "service": "checkout",
                "source": "https://incidents.invalid/DT-INC-1", "title": "5xx spike on checkout",
                "severity": "sev2", "status": "open", "started_at": z(now - timedelta(hours=3)),
                "root_cause": "db-pool"})
    out.append({"kind": "slo_breach", "id": "DT-SLO-1", "env": "prod", "service": "payments",
                "source": "https://slo.invalid/DT-SLO-1", "slo": "availability", "title": "availability burn",
                "burn_rate": 3.5, "at": z(now - timedelta(hours=1))})
    return out


def ingest(stack: Stack) -> dict[str, Any]:
    response = httpx.post(f"{stack.url('router-a')}/v1/signals", headers=stack.headers("ALERTMANAGER_API_KEY"),
                          json={"signals": signals(datetime.now(UTC))}, timeout=30)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def run_job(stack: Stack, tool: str, action: str, params: dict[str, Any]) -> tuple[int, dict[str, Any] | str]:
    env = {**os.environ, "SCHEDULER_API_KEY": stack.keys["SCHEDULER_API_KEY"]}
    result = subprocess.run(["python3", str(RUNNER), "--router-url", stack.url("router-a"), "--tool", tool,
                             "--action", action, "--params-json", json.dumps(params), "--verbose"],
                            capture_output=True, text=True, env=env, timeout=180)
    if result.returncode != 0:
        return result.returncode, (result.stdout + result.stderr).strip()[-2000:]
    # The runner prints its summary line, then (--verbose) the result JSON.
    body = result.stdout[result.stdout.index("{"):]
    parsed: dict[str, Any] = json.loads(body)
    return 0, parsed


def dashboard(stack: Stack, router: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.url(router)}/v1/backlog/dashboard", params={"env": "prod"},
                         headers=stack.headers("READONLY_API_KEY"), timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    body.pop("generated_at", None)
    return body


def latest_digest_week(stack: Stack) -> str | None:
    response = httpx.post(f"{stack.url('router-b')}/v1/tools/execute", headers=stack.headers("READONLY_API_KEY"),
                          json={"tool": "architecture_pressure_tool", "action": "latest", "env": "prod"}, timeout=30)
    if response.status_code != 200:
        return None
    week: str | None = response.json()["result"].get("week")
    return week
