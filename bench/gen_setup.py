"""What the generation rows run against: digests, the capped policy, and a fresh copy of last
week's backlog for every timed round (JSONL folder copies, or Postgres databases from a template).

Both sides of a row start from the same backlog: last week's generation of a digest of the same
shape, so carry-over is planned against real items and this week's run writes new keys.
"""

from __future__ import annotations

import os
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

from bench.pg_bench import ADMIN_DSN, scratch_database
from services.router.clock import FixedClock
from services.router.generation.digest import Found, PlatformDigest, load_platform_digest
from services.router.generation.facts import weekly_facts
from services.router.generation.run import generate
from services.router.policy import BacklogPolicy, load_policy
from services.router.settings import Settings
from services.router.stores.base import BacklogStore
from services.router.stores.jsonl import JsonlBacklogStore
from services.router.stores.pg_schema import migrate
from services.router.stores.postgres import PostgresBacklogStore

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
        """(The caller has closed the previous round's store: its copy goes.)"""
        shutil.rmtree(self.work / f"run{self.rounds}", ignore_errors=True)
        self.rounds += 1
        target = self.work / f"run{self.rounds}"
        shutil.copytree(self.base, target)
        os.sync()  # the copy's pages are on disk before the timed run: its fsync flushes only its own
        store = JsonlBacklogStore(target, clock=self.clock)
        store.get("bl_0")
        return store

    def close(self) -> None:
        pass


class PostgresCopies:
    """Each round's backlog: a scratch database made from the seeded one as its template. The
    seeded one is analyzed first, as autovacuum would have done after last week's run."""

    name = "Postgres"

    def __init__(self, clock: FixedClock, tag: str = "") -> None:
        self.clock = clock
        self.stack = ExitStack()
        self.base_name, self.run_name = f"{SCRATCH_PREFIX}{tag}_base", f"{SCRATCH_PREFIX}{tag}_run"
        self.base_dsn = self.stack.enter_context(scratch_database(name=self.base_name))
        self.run_dsn = self.stack.enter_context(scratch_database(name=self.run_name))
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            migrate(conn)

    def seeded(self) -> BacklogStore:
        return PostgresBacklogStore(self.base_dsn, clock=self.clock)

    def settle(self) -> None:
        with psycopg.connect(self.base_dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def fresh(self) -> BacklogStore:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            run, base = sql.Identifier(self.run_name), sql.Identifier(self.base_name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(run))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(run, base))
        store = PostgresBacklogStore(self.run_dsn, clock=self.clock)
        store.get("bl_0")
        return store

    def close(self) -> None:
        self.stack.close()


class Scenario:
    """One size on one backend: this week's digest in a reports folder, last week's generation
    in the seeded backlog, the settings the product's action reads, and fresh copies on demand."""

    def __init__(self, *, services: int, cap: int, backend: str) -> None:
        self.services, self.cap, self.policy = services, cap, capped_policy(cap)
        self.clock = FixedClock(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
        self.work = Path(tempfile.mkdtemp(prefix=f"bench-gen-{services}-"))
        self.copies: JsonlCopies | PostgresCopies = (
            PostgresCopies(self.clock) if backend == "postgres" else JsonlCopies(self.work, self.clock))
        reports = self.work / "reports"
        (reports / "platform").mkdir(parents=True)
        self.this_week = write_digest(reports / "platform", WEEK, services, seed=48)
        last_week = write_digest(self.work, LAST_WEEK, services, seed=47)
        self.settings = Settings(REPO_ROOT=REPO, BACKLOG_REPORTS_DIR=reports,  # type: ignore[call-arg]
                                 BACKLOG_STATE_DIR=self.work / "state")
        seed_store = self.copies.seeded()
        self.seeded = generate(seed_store, self.policy, weekly_facts(found(last_week), ENV), today=TODAY,
                               actor="bench", dry_run=False)["created"]
        seed_store.close()
        self.copies.settle()

    def close(self) -> None:
        self.copies.close()
        shutil.rmtree(self.work, ignore_errors=True)
