"""Weekly generation end to end against the store's bulk upsert of the items it writes (issue 10).

Ours: the ``backlog_tool.auto_generate_weekly`` action as the router and the CLI run it (find the
latest digest, read and validate it, take the env's facts, build and rank candidates, read what
the backlog holds (this week's keys, last week's active items for carry-over), plan, apply with
one ``upsert_many``, record the run). The floor: that same ``upsert_many`` of the very requests the
plan produced, on a copy of the same backlog. Both start from a JSONL backlog (the default
backend) holding last week's generation, so carry-over is planned against real items; with
``--gen-backend postgres`` from a Postgres one (each round a scratch database made from the
seeded one as its template).
"""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from bench.common import Report, interleaved, ratio_row
from bench.pg_bench import ADMIN_DSN, scratch_database
from services.router.clock import FixedClock
from services.router.generation.digest import Found, PlatformDigest, load_platform_digest
from services.router.generation.facts import weekly_facts
from services.router.generation.run import gc_paused, generate, make_plan, plan_requests
from services.router.policy import BacklogPolicy, load_policy
from services.router.settings import Settings
from services.router.stores.base import BacklogStore, UpsertRequest
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.pg_schema import migrate
from services.router.stores.postgres import PostgresBacklogStore
from services.router.tools.backlog_generate import GenerateParams, generate_from_digest
from services.router.tools.context import ToolContext

REPO = Path(__file__).resolve().parents[1]
ENV = "prod"
WEEK, LAST_WEEK = "2026-W48", "2026-W47"
TODAY = date(2026, 11, 23)
SCRATCH_PREFIX = "backlog_bench_gen"


def digest(week: str, services: int, seed: int) -> dict[str, Any]:
    """A platform digest where most services trip two or three of the five weekly categories."""
    rng = random.Random(seed)
    out = []
    for n in range(services):
        signals = {
            "risk_avg_7d": round(rng.uniform(10, 90), 1), "risk_max_7d": round(rng.uniform(50, 100), 1),
            "risk_delta_7d": round(rng.uniform(-10, 10), 1), "incidents_30d": rng.randrange(8),
            "recurring_incidents_30d": rng.randrange(4), "slo_breaches_7d": rng.randrange(3),
            "overdue_followups": rng.randrange(6), "open_critical_vulns": rng.randrange(3),
            "failed_deploys_7d": rng.randrange(5),
        }
        score = round(rng.uniform(20, 100), 1)
        evidence = [{"kind": "incident", "ref": f"INC-{n}-{i}", "title": f"incident {i} of svc{n}"} for i in range(3)]
        out.append({"service": f"svc{n}", "pressure_score": score,
                    "band": "critical" if score >= 80 else "high" if score >= 60 else "medium",
                    "signals": signals, "evidence": evidence})
    return {"schema": "platform_priority_digest/v1", "week": week, "generated_at": "2026-11-23T06:00:02Z",
            "period": {"start": "2026-11-16T06:00:02Z", "end": "2026-11-23T06:00:02Z"},
            "envs": {ENV: {"services": out}}}


def write_digest(folder: Path, week: str, services: int, seed: int) -> Path:
    path = folder / f"{week}.json"
    path.write_bytes(orjson.dumps(digest(week, services, seed)))
    return path


def capped_policy(cap: int) -> BacklogPolicy:
    """The repository's policy with ``max_items_per_run`` set to ``cap``."""
    policy = load_policy(REPO / "config" / "backlog_policy.yml")
    return policy.model_copy(update={"defaults": policy.defaults.model_copy(update={"max_items_per_run": cap})})


def probe_requests(store: BacklogStore, policy: BacklogPolicy, digest_path: Path) -> list[UpsertRequest]:
    """The floor's requests: exactly what the plan for this digest asks ``store`` to write."""
    return plan_requests(make_plan(store, policy, weekly_facts(found(digest_path), ENV), today=TODAY))


def found(path: Path) -> Found[PlatformDigest]:
    name = f"platform/{path.name}"
    return Found(path, name, name, load_platform_digest(path, name))


class JsonlCopies:
    """Each round's backlog: a copy of the seeded JSONL folder, opened and indexed (untimed)."""

    name = "JSONL"

    def __init__(self, work: Path, clock: FixedClock) -> None:
        self.work, self.clock, self.base, self.rounds = work, clock, work / "base", 0

    def seeded(self) -> BacklogStore:
        return JsonlBacklogStore(self.base, clock=self.clock)

    def settle(self) -> None:
        pass

    def fresh(self) -> BacklogStore:
        self.rounds += 1
        target = self.work / f"run{self.rounds}"
        shutil.copytree(self.base, target)
        store = JsonlBacklogStore(target, clock=self.clock)
        store.get("bl_0")
        return store

    def close(self) -> None:
        pass


class PostgresCopies:
    """Each round's backlog: a scratch database made from the seeded one as its template. The
    seeded one is analyzed first, as autovacuum would have done after last week's run."""

    name = "Postgres"

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.stack = ExitStack()
        self.base_dsn = self.stack.enter_context(scratch_database(name=f"{SCRATCH_PREFIX}_base"))
        self.run_dsn = self.stack.enter_context(scratch_database(name=f"{SCRATCH_PREFIX}_run"))
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            migrate(conn)

    def seeded(self) -> BacklogStore:
        return PostgresBacklogStore(self.base_dsn, clock=self.clock)

    def settle(self) -> None:
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def fresh(self) -> BacklogStore:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            run, base = sql.Identifier(f"{SCRATCH_PREFIX}_run"), sql.Identifier(f"{SCRATCH_PREFIX}_base")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(run))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(run, base))
        store = PostgresBacklogStore(self.run_dsn, clock=self.clock)
        store.get("bl_0")
        return store

    def close(self) -> None:
        self.stack.close()


def run(report: Report, *, services: int, cap: int, repeat: int, backend: str = "jsonl") -> None:
    policy = capped_policy(cap)
    clock = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    work = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    copies: JsonlCopies | PostgresCopies = PostgresCopies(clock) if backend == "postgres" else JsonlCopies(work, clock)
    try:
        reports = work / "reports"
        (reports / "platform").mkdir(parents=True)
        this_week = write_digest(reports / "platform", WEEK, services, seed=48)
        last_week = write_digest(work, LAST_WEEK, services, seed=47)
        settings = Settings(REPO_ROOT=REPO, BACKLOG_REPORTS_DIR=reports,  # type: ignore[call-arg]
                            BACKLOG_STATE_DIR=work / "state")
        seed_store = copies.seeded()
        seeded = generate(seed_store, policy, weekly_facts(found(last_week), ENV), today=TODAY, actor="bench",
                          dry_run=False)
        seed_store.close()
        copies.settle()
        probe = copies.seeded()
        requests = probe_requests(probe, policy, this_week)
        probe.close()
        state: dict[str, Any] = {}

        def setup() -> None:  # a fresh copy of last week's backlog, opened (untimed)
            old = state.pop("store", None)
            if old is not None:
                old.close()
            state["store"] = copies.fresh()
            gc.collect()  # neither side inherits collection work from the setup or the other side

        def ours() -> None:
            ctx = ToolContext(state["store"], settings, clock, actor="bench", _policy=policy)
            result = generate_from_digest(ctx, GenerateParams(env=ENV), daily=False)
            assert result["digest"] == f"platform/{this_week.name}", result["digest"]
            assert result["created"] + result["updated"] + result["unchanged"] == len(requests), result

        def floor() -> None:
            # Under the collector treatment ``generate`` gives the same call (``gc_paused``), so
            # the ratio is the work generation adds, not a difference in garbage collection.
            with gc_paused():
                state["store"].upsert_many(requests, actor="bench")

        ours_s, floor_s = interleaved(ours, floor, repeat=repeat, setup=setup, budget_s=120)
        if "store" in state:
            state["store"].close()
        on = "" if backend == "jsonl" else f" ({copies.name})"
        label = (f"Weekly generation end to end{on}, {services} services, cap {cap} "
                 f"({len(requests)} written, {seeded['created']} last week)")
        report.add(ratio_row(label, ours_s, floor_s, goal_ratio=1.5,
                             note=f"floor: the store's upsert_many of the plan's requests ({copies.name})"))
    finally:
        copies.close()
        shutil.rmtree(work, ignore_errors=True)
