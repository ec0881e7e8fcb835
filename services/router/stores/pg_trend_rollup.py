"""The rollup of completed trend weeks for the Postgres store (schema step 9, `0009_trend_rollup.sql`).

Why: computing twelve weeks live over 1M items / 5M events costs ten seq scans of the events
(issue 22); a completed week's counts only change when history is rewritten, so they are kept.

A completed week (its end <= the store clock's now) is a pure function of the stored items and
events: its counts read events since the week's end only through their ``from`` values, which
the planners set to the item's state when they wrote them. So a row stays exact until one of:

- an event with ``ts`` before the week's end is written after the row (a backdated write: a
  replayed journal, a clock moved back; a created item carries its ``created`` event at its
  ``created_at``, so this also covers items created in the past);
- a state event written before an earlier-timed state event of the same item (out of order: it
  changes which ``from`` is read at a week's end) — conservatively, every row is then stale;
- a cleanup that removed items (``cleanup`` bumps ``backlog_trend_generation``).

The mark is the events' max ``seq`` read under ``LOCK TABLE … SHARE`` (waits for writers in
flight, with a short ``lock_timeout``), so every event up to it is committed and seen by the
computation that follows; events past it are what the probe reads (``backlog_events_seq_idx``).
Without the lock in time, the weeks are computed and served but not stored.

The current, incomplete week is computed live: when no state event lies after its end (the
clock is not behind the data) its week-end counts are those of the active items now, read from
the partial active indexes; otherwise the full statement of ``pg_trends`` for that week.

The warm call (every stored row still exact) is one statement, ``WARM``: the stored rows, the
probe of their marks and the current week in one round trip and one snapshot, and prepared: at
100k items, parsing and planning it took as long as running it (issue 22).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from services.router.clock import parse_utc
from services.router.domain.trends import COUNTS, Week, empty_rows
from services.router.stores import pg_trends
from services.router.stores.pg_conn import PgConnections
from services.router.stores.pg_sql import ACTIVE_SQL
from services.router.stores.pg_trends import STATE_EVENTS_SQL

WEEK = timedelta(days=7)

MARK_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', '500ms', true)"
MARK_LOCK = "LOCK TABLE backlog_events IN SHARE MODE"
MARK = ("SELECT coalesce((SELECT max(seq) FROM backlog_events), 0) AS mark, "
        "coalesce((SELECT generation FROM backlog_trend_generation), 0) AS generation")

# For each mark (the rows of ``marks``): over the events written after it, the earliest ts, how
# many, and whether a state event among them was written after a state event of the same item with
# a later ts. (``new``, read once from the oldest mark on, is materialized: it is referenced more
# than once.)
PROBES = f"""
new AS (SELECT seq, item_id, ts, type FROM backlog_events WHERE seq > (SELECT min(mark) FROM marks)),
disorder AS (
    SELECT n.seq FROM new n
    WHERE n.type IN {STATE_EVENTS_SQL}
      AND EXISTS (SELECT 1 FROM backlog_events o WHERE o.item_id = n.item_id AND o.type IN {STATE_EVENTS_SQL}
                  AND o.ts > n.ts AND o.seq < n.seq)
),
probes AS MATERIALIZED (
    SELECT m.mark, (SELECT min(ts) FROM new WHERE seq > m.mark) AS earliest,
           (SELECT count(*) FROM new WHERE seq > m.mark) AS new_events,
           EXISTS (SELECT 1 FROM disorder d WHERE d.seq > m.mark) AS disorder
    FROM marks m
)
"""
PROBE = f"WITH marks AS (SELECT DISTINCT unnest(%(marks)s::bigint[]) AS mark), {PROBES} SELECT * FROM probes"

STORE = """
INSERT INTO backlog_trend_weeks (env, service, week_start, opened, closed, open_at_end, overdue_at_end,
                                 p0_open_at_end, events_mark, generation)
VALUES (%s, %s, %s::timestamptz, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (env, service, week_start) DO UPDATE SET
    opened = excluded.opened, closed = excluded.closed, open_at_end = excluded.open_at_end,
    overdue_at_end = excluded.overdue_at_end, p0_open_at_end = excluded.p0_open_at_end,
    events_mark = excluded.events_mark, generation = excluded.generation, computed_at = now()
"""

# Rows found exact over the events up to a new mark take that mark: the next probe reads fewer events.
ADVANCE = """
UPDATE backlog_trend_weeks SET events_mark = %(mark)s
WHERE env = %(env)s AND service = %(service)s AND week_start = ANY(%(starts)s::timestamptz[])
  AND generation = %(generation)s AND events_mark < %(mark)s
"""
# From this many events written after the oldest mark on, valid rows are moved to a new mark.
ADVANCE_AFTER = 10_000

BUMP_GENERATION = """
INSERT INTO backlog_trend_generation AS g (one, generation) VALUES (true, 1)
ON CONFLICT (one) DO UPDATE SET generation = g.generation + 1
"""

# The week that has not ended, from the active items now; ``behind`` when a state event lies after
# its end (the clock is behind the data: the counts are then 0, and the full statement of
# pg_trends is run for it). ``BEHIND`` is the first state event from the week's end on in ts
# order, so that any plan of it, the generic one too, walks ``backlog_events_ts_idx`` from the
# end: an EXISTS planned without the bound was a sequential scan of the events (70 ms at 500k).
BEHIND = ("(SELECT e.ts FROM backlog_events e WHERE e.ts >= %(end)s AND e.type IN {state_events} "
          "ORDER BY e.ts LIMIT 1) IS NOT NULL")
CURRENT = f"""
SELECT (SELECT count(*) FROM backlog_items i WHERE {{scope}} AND i.created_at >= %(start)s AND i.created_at < %(end)s)
           AS opened,
       (SELECT count(*) FROM backlog_events e JOIN backlog_items i ON i.id = e.item_id
         WHERE e.type = 'status_changed' AND (e.meta->>'to') IN ('done', 'canceled')
           AND e.ts >= %(start)s AND e.ts < %(end)s AND {{scope}}) AS closed,
       count(*) AS open_at_end,
       count(*) FILTER (WHERE i.due_date IS NOT NULL AND greatest(i.due_date, i.accepted_hold) < %(sunday)s::date)
           AS overdue_at_end,
       count(*) FILTER (WHERE i.priority = 'P0') AS p0_open_at_end,
       {BEHIND} AS behind
FROM backlog_items i
WHERE {{scope}} AND i.status IN {{active}} AND i.created_at < %(end)s AND NOT {BEHIND}
"""

# The warm call in one statement, so one round trip and one snapshot: the stored rows of the
# completed weeks, each with the probe of its mark, and the current week (``CURRENT``) on every
# row — beside NULLs on a single row when no week is stored (no marks: no event is probed).
WARM = f"""
WITH kept AS MATERIALIZED (
    SELECT week_start, opened, closed, open_at_end, overdue_at_end, p0_open_at_end, events_mark, generation,
           coalesce((SELECT generation FROM backlog_trend_generation), 0) AS current_generation
    FROM backlog_trend_weeks
    WHERE env = %(key_env)s AND service = %(key_service)s AND week_start = ANY(%(starts)s::timestamptz[])
),
marks AS (SELECT DISTINCT events_mark AS mark FROM kept),
{PROBES},
current ({", ".join(f"now_{name}" for name in COUNTS)}, behind) AS ({{current}})
SELECT c.*, k.*, p.* FROM current c LEFT JOIN (kept k JOIN probes p ON p.mark = k.events_mark) ON true
"""


def scope_key(env: str | None, service: str | None) -> tuple[str, str]:
    """The rollup's key of a scope: '' stands for all envs / all services."""
    return env or "", service or ""


def scope_sql(env: str | None, service: str | None) -> str:
    return " AND ".join(["true", *(["i.env = %(env)s"] if env is not None else []),
                         *(["i.service = %(service)s"] if service is not None else [])])


def warm_query(env: str | None, service: str | None, done: list[Week], week: Week) -> tuple[str, dict[str, Any]]:
    """``WARM`` for a scope: the stored rows of ``done`` and the current ``week``."""
    current = CURRENT.format(scope=scope_sql(env, service), active=ACTIVE_SQL, state_events=STATE_EVENTS_SQL)
    key = scope_key(env, service)
    return WARM.format(current=current), {
        "key_env": key[0], "key_service": key[1], "starts": [w.start for w in done], "env": env,
        "service": service, "start": week.start, "end": week.end, "sunday": week.last_day}


def valid_rows(rows: list[dict[str, Any]], probes: list[dict[str, Any]]) -> dict[datetime, dict[str, int]]:
    """week_start -> counts of the stored rows still exact (see the module's docstring), each
    judged by the events written after its own mark (``PROBE``)."""
    by_mark = {int(p["mark"]): p for p in probes}
    out: dict[datetime, dict[str, int]] = {}
    for row in rows:
        probe = by_mark.get(int(row["events_mark"]))
        if probe is None or probe["disorder"] or row["generation"] != row["current_generation"]:
            continue
        earliest: datetime | None = probe["earliest"]
        # the week's end is 7 days after its start; a newer event before it makes the row stale
        if earliest is not None and earliest < row["week_start"] + WEEK:
            continue
        out[row["week_start"]] = {name: int(row[name]) for name in COUNTS}
    return out


def store_rows(key: tuple[str, str], weeks: list[Week], counts: list[dict[str, Any]], mark: int,
               generation: int) -> list[tuple[Any, ...]]:
    """The STORE parameters of computed completed weeks."""
    return [(key[0], key[1], w.start, *(int(c[name]) for name in COUNTS), mark, generation)
            for w, c in zip(weeks, counts, strict=True)]


def trends(db: PgConnections, now: datetime, env: str | None, service: str | None,
           weeks: list[Week]) -> list[dict[str, Any]]:
    """``domain.trends`` rows for ``weeks``: completed weeks from the rollup (stale or missing ones
    computed in one statement from the first of them on, and stored), the current week live.
    With every stored row exact, the call is the one statement ``WARM``."""
    key = scope_key(env, service)
    done = [w for w in weeks if parse_utc(w.end) <= now]
    rows, current = _warm(db, env, service, done, weeks[-1])
    kept = _kept(db, key, done, rows)
    missing = [i for i, w in enumerate(done) if parse_utc(w.start) not in kept]
    out = empty_rows(weeks)
    for row, week in zip(out, weeks, strict=True):
        row.update(kept.get(parse_utc(week.start), {}))
    if missing:
        first = missing[0]
        marked = _mark(db)
        computed = _live(db, env, service, weeks[first:])
        for row, counts in zip(out[first:], computed, strict=True):
            row.update({name: counts[name] for name in COUNTS})
        if marked is not None:
            stored = store_rows(key, done[first:], computed[: len(done) - first], *marked)
            with db.tx() as conn, conn.cursor() as cur:
                cur.executemany(STORE, stored)
    elif len(done) < len(weeks):
        if current is None:  # the clock is behind the data: the current week in full
            current = _live(db, env, service, weeks[-1:])[0]
        out[-1].update({name: int(current[name]) for name in COUNTS})
    return out


def _warm(db: PgConnections, env: str | None, service: str | None, done: list[Week],
          week: Week) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """``WARM``: the stored rows of ``done``, each with its mark's probe, and the counts of the
    current ``week`` (None when the clock is behind the data)."""
    sql, params = warm_query(env, service, done, week)
    # Prepared from the first call: parsing and planning this statement took about as long as
    # running it (1.3 ms of 3 ms at 100k items). Its generic plan, which the server may settle on
    # after five runs, is its custom one (see ``BEHIND``).
    fetched = db.read(sql, params, prepare=True)
    first = fetched[0]
    current = None if first["behind"] else {name: int(first[f"now_{name}"]) for name in COUNTS}
    return [r for r in fetched if r["week_start"] is not None], current


def _kept(db: PgConnections, key: tuple[str, str], done: list[Week],
          rows: list[dict[str, Any]]) -> dict[datetime, dict[str, int]]:
    """The stored ``rows`` (of ``WARM``: each carries its mark's probe) still exact; when many
    events were written since their marks, those rows move to a new mark (so the probe stays short)."""
    probes = list({int(r["mark"]): r for r in rows}.values())
    kept = valid_rows(rows, probes)
    if not kept or max(int(p["new_events"]) for p in probes) < ADVANCE_AFTER:
        return kept
    marked = _mark(db)
    if marked is None:
        return kept
    with db.conn() as conn, conn.cursor(row_factory=dict_row) as cur:
        # again, now that every event up to the new mark is committed and visible
        kept = valid_rows(rows, cur.execute(PROBE, {"marks": sorted(int(p["mark"]) for p in probes)}).fetchall())
        if kept:
            starts = [w.start for w in done if parse_utc(w.start) in kept]
            cur.execute(ADVANCE, {"env": key[0], "service": key[1], "starts": starts, "mark": marked[0],
                                  "generation": marked[1]})
    return kept


def _mark(db: PgConnections) -> tuple[int, int] | None:
    """(events mark, cleanup generation), every event up to the mark committed; None when writers
    held the events table past the lock timeout, or the role may not take the lock (then nothing
    is stored)."""
    with db.conn() as conn:
        try:
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                cur.execute(MARK_LOCK_TIMEOUT)
                cur.execute(MARK_LOCK)
                row = cur.execute(MARK).fetchone()
        except (psycopg.errors.LockNotAvailable, psycopg.errors.InsufficientPrivilege):
            return None  # (a role that may not lock the events: served, never stored)
    assert row is not None
    return int(row["mark"]), int(row["generation"])


def _live(db: PgConnections, env: str | None, service: str | None, weeks: list[Week]) -> list[dict[str, Any]]:
    """The weeks computed by ``pg_trends.TRENDS`` (one statement, one snapshot)."""
    sql, params = pg_trends.trends_query(env, service, weeks)
    with db.tx() as conn, conn.cursor(row_factory=dict_row) as cur:
        # Settings local to this transaction (issue 22, 1M items / 5M events): JIT compiling its
        # many-CTE plan took 2.6 s of 7.9 s, and its window sorts spilled to disk at 4 MB.
        conn.execute(pg_trends.TRENDS_SETTINGS)
        rows = cur.execute(sql, params).fetchall()
    return pg_trends.trend_rows(weeks, rows)
