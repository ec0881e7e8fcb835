"""One ``backlog_alerts`` runner for the escalation test: ``python -m tests.alerts.escalation_child``.

Settings come from the environment (a shared JSONL store, state folder, policy and webhook). Each
line on stdin is a moment (ISO 8601): the child sets its clock there, runs
``backlog_tool.notify_alerts`` as the scheduler does, and prints one JSON line with what it queued.
"""

from __future__ import annotations

import json
import sys

from services.router.clock import FixedClock, parse_utc
from services.router.runtime import build_runtime
from services.router.settings import load_settings


def main() -> None:
    clock = FixedClock(parse_utc("2026-11-26T00:00:00Z"))
    runtime = build_runtime(load_settings(), clock=clock)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            clock.set(parse_utc(line.strip()))
            result = runtime.execute("scheduler", "backlog_tool", "notify_alerts", {})
            queued = [{k: n.get(k) for k in ("kind", "items", "step", "target")} for n in result.get("queued", [])]
            print(json.dumps({"queued": queued, "failed": result.get("failed", 0)}), flush=True)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
