"""``make run``: the Monday path end to end on SAMPLE data, on the JSONL default.

1. Write this week's clearly marked SAMPLE platform digest into the reports folder
   (``services/router/sample/digest.py``; a real digest for the week is never overwritten).
   With ``--pipeline`` the digest is derived instead from synthetic DEMO signals through the
   real upstream tools (``demo_platform.run_platform_pipeline``: signals → hourly risk
   snapshots → risk digest → platform digest). On an empty backlog it first replays the
   previous three Mondays (``demo_history``), so the dashboard has history to show.
2. Run ``backlog_tool.auto_generate_weekly`` for every env in the digest and print each plan.
3. Print the dashboard.

``BACKLOG_BACKEND`` defaults to ``jsonl`` here (no database needed). Re-running in the same
week is idempotent: the sample digest is the same, so generation reports every item unchanged
and the backlog files do not grow.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from services.router.clock import FixedClock, default_clock
from services.router.demo_history import backlog_is_empty, replay_past_weeks
from services.router.errors import BacklogError
from services.router.generation.digest_lookup import latest_platform_digest
from services.router.runtime import Runtime, build_runtime, configure_logging
from services.router.sample.digest import write_sample_digest
from services.router.settings import load_settings

DEMO_ACTOR = "demo"


def prepare_digest(runtime: Runtime, *, pipeline: bool) -> list[str]:
    """Put this week's digest in place; the envs it covers."""
    from services.router.cli.app import console

    if pipeline:
        from services.router.demo_platform import ENVS, ingest_demo_signals, run_platform_pipeline

        if isinstance(runtime.clock, FixedClock) and backlog_is_empty(runtime, ENVS):
            ingest_demo_signals(runtime, actor=DEMO_ACTOR)
            for week in replay_past_weeks(runtime, runtime.clock, envs=ENVS, actor=DEMO_ACTOR):
                console.print(f"DEMO DATA: replayed {week['week']}: {week['created']} items generated, "
                              "then a week of owners, progress and comments.", markup=False, highlight=False)
        summary = run_platform_pipeline(runtime, actor=DEMO_ACTOR)
        console.print(f"DEMO DATA: platform digest {summary['platform_digest']} built from synthetic signals "
                      f"({summary['signals']['accepted']} signals).", markup=False, highlight=False)
    else:
        path, written = write_sample_digest(runtime.settings.reports_dir, runtime.clock.now())
        if written:
            console.print(f"[bold yellow]SAMPLE DATA[/]: wrote the sample platform digest {path} "
                          "(made-up services and numbers, marked \"sample\": true).", highlight=False)
        else:
            console.print(f"A real platform digest exists for this week ({path}); using it, not the sample.",
                          markup=False, highlight=False)
    found = latest_platform_digest(runtime.settings.reports_dir, not_after=runtime.clock.now().date())
    return sorted(found.digest.envs) if found is not None else []


def run_demo(runtime: Runtime, *, pipeline: bool = False) -> dict[str, Any]:
    """Digest → weekly generation per env → dashboard, printed; returns the results."""
    from services.router.cli.app import console
    from services.router.cli.generate import render_plan
    from services.router.cli.render import render_dashboard

    envs = prepare_digest(runtime, pipeline=pipeline)
    results: dict[str, Any] = {}
    for env in envs:
        console.print()
        result = runtime.execute(DEMO_ACTOR, "backlog_tool", "auto_generate_weekly", {"env": env})
        render_plan(result)
        results[env] = result
    console.print()
    dashboard = runtime.execute(DEMO_ACTOR, "backlog_tool", "dashboard", {})
    render_dashboard(dashboard)
    console.print("\nNext: `.venv/bin/backlog list --env prod`, `backlog show <id>`, "
                  "`backlog generate weekly --env prod --dry-run`.", markup=False, highlight=False)
    return {"generation": results, "dashboard": dashboard}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.router.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", action="store_true",
                        help="derive the digest from synthetic DEMO signals through the upstream tools")
    args = parser.parse_args(argv)
    os.environ.setdefault("BACKLOG_BACKEND", "jsonl")
    from services.router.cli.app import exit_code_for

    runtime: Runtime | None = None
    try:
        settings = load_settings()
        configure_logging(settings=settings)
        # One settable clock for the runtime and the store: the first run replays past Mondays.
        runtime = build_runtime(settings, clock=FixedClock(default_clock(settings).now()))
        run_demo(runtime, pipeline=args.pipeline)
    except BacklogError as exc:
        sys.stderr.write("error: " + " ".join(exc.message.split()) + "\n")
        return exit_code_for(exc)
    finally:
        if runtime is not None:
            runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
