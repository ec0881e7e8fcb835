"""Trends and problems in SQL for the Postgres store: ``domain.trends`` and ``domain.problems``
computed by the server, over the indexes of schema step 8 (`0008_trends.sql`).

Trends, in one statement (one snapshot):

- ``opened``: items by the week of ``created_at`` (``backlog_items_env_created_idx``);
- ``closed``: status changes into done/canceled by the week of their ``ts``
  (``backlog_events_closing_ts_idx``, joined to the items of the env by primary key);
- the week-end counts look only at items that can be active at some week's end: those active
  now, and those with a status change since the first week's end (an item closed before that,
  and never changed since, was closed at every week's end). Each item's status, due-date and
  acceptance changes since then (``backlog_events_changes_idx``) cut its life into segments of
  one state — before the first change the ``from`` of its first status / due change (else its
  current state), after each change the last value set so far (else the next change's
  ``from``); the acceptance's hold is always the value before the next acceptance event (else
  the item's ``accepted_hold``), as ``domain.trends`` reads it. A segment (a, b] that is active
  counts in the weeks whose end falls inside it: a range of week numbers, added as +1/-1 at its
  two ends and summed up over the weeks (overdue from the first week whose Sunday is after its
  due date and its hold: ``greatest``, the rule of ``NOT_HELD``). The cost grows with the items
  and their changes, not with items times weeks.

Problems: the env's active items grouped by (service, category) with the partial
``(env, service)`` index of step 1; the week of an item is the one in its dedupe key (checked to
exist, as ``domain.dedupe.week_of_key`` does) or its creation week.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.router.domain.trends import COUNTS, STATE_EVENTS, Week, empty_rows
from services.router.stores.pg_sql import ACTIVE_SQL, NOT_HELD

# The partial index ``backlog_events_changes_idx`` (step 8) is over exactly these types.
STATE_EVENTS_SQL = "(" + ", ".join(f"'{t}'" for t in sorted(STATE_EVENTS)) + ")"

# SET LOCAL for the trends statement's transaction (``PostgresBacklogStore.trends``).
TRENDS_SETTINGS = "SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true)"

TRENDS = """
WITH weeks AS (
    SELECT w.k, w.week_start, w.week_end
    FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) WITH ORDINALITY AS w(week_start, week_end, k)
),
opened AS (
    SELECT w.k, count(*) AS n FROM backlog_items i
    JOIN weeks w ON i.created_at >= w.week_start AND i.created_at < w.week_end
    WHERE {scope} AND i.created_at >= %(first_start)s AND i.created_at < %(last_end)s
    GROUP BY w.k
),
closed AS (
    SELECT w.k, count(*) AS n FROM backlog_events e
    JOIN backlog_items i ON i.id = e.item_id
    JOIN weeks w ON e.ts >= w.week_start AND e.ts < w.week_end
    WHERE e.type = 'status_changed' AND (e.meta->>'to') IN ('done', 'canceled')
      AND e.ts >= %(first_start)s AND e.ts < %(last_end)s AND {scope}
    GROUP BY w.k
),
candidates AS (
    SELECT i.id, i.created_at, i.status, i.priority, i.due_date::text AS due, i.accepted_hold::text AS hold
    FROM backlog_items i
    WHERE {scope} AND i.created_at < %(last_end)s
      AND (i.status IN {active} OR EXISTS (SELECT 1 FROM backlog_events e WHERE e.item_id = i.id
                                           AND e.type = 'status_changed' AND e.ts >= %(first_end)s))
),
changes AS (
    -- old/new: the status, or the due date (an expiry that restarted it: due_from/due_to);
    -- held: the acceptance's hold just before the event (accepted/unaccepted/acceptance_expired)
    SELECT e.item_id, e.ts, e.type = 'status_changed' AS is_status,
           e.type = 'due_date_changed' OR (e.type = 'acceptance_expired' AND e.meta ? 'due_from') AS is_due,
           e.type IN ('accepted', 'unaccepted', 'acceptance_expired') AS is_hold,
           CASE WHEN e.type = 'acceptance_expired' THEN e.meta->>'due_from' ELSE e.meta->>'from' END AS old,
           CASE WHEN e.type = 'acceptance_expired' THEN e.meta->>'due_to' ELSE e.meta->>'to' END AS new,
           CASE e.type WHEN 'accepted' THEN e.meta->>'previous_until' WHEN 'unaccepted' THEN e.meta->>'until'
                ELSE coalesce(e.meta->>'hold', e.meta->>'until') END AS held,
           row_number() OVER (PARTITION BY e.item_id ORDER BY e.ts, e.seq) AS pos
    FROM backlog_events e JOIN candidates c ON c.id = e.item_id
    WHERE e.type IN {state_events} AND e.ts >= %(first_end)s
),
states AS (
    SELECT item_id, pos, ts, lead(ts) OVER fwd AS next_ts,
           array_agg(new) FILTER (WHERE is_status) OVER (fwd ROWS UNBOUNDED PRECEDING) AS s_upto,
           array_agg(old) FILTER (WHERE is_status) OVER later AS s_after,
           array_agg(old) FILTER (WHERE is_status) OVER (back ROWS UNBOUNDED PRECEDING) AS s_from,
           array_agg(new) FILTER (WHERE is_due) OVER (fwd ROWS UNBOUNDED PRECEDING) AS d_upto,
           array_agg(old) FILTER (WHERE is_due) OVER later AS d_after,
           array_agg(old) FILTER (WHERE is_due) OVER (back ROWS UNBOUNDED PRECEDING) AS d_from,
           array_agg(held) FILTER (WHERE is_hold) OVER later AS h_after,
           array_agg(held) FILTER (WHERE is_hold) OVER (back ROWS UNBOUNDED PRECEDING) AS h_from
    FROM changes
    WINDOW fwd AS (PARTITION BY item_id ORDER BY pos), back AS (PARTITION BY item_id ORDER BY pos DESC),
           later AS (PARTITION BY item_id ORDER BY pos DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
segments AS (
    -- before an item's first change: the `from` of its first status / due change, else its current state
    SELECT c.created_at AS a, s.ts AS b, c.priority,
           coalesce(s.s_from[array_length(s.s_from, 1)], c.status) AS status,
           CASE WHEN s.d_from IS NULL THEN c.due ELSE s.d_from[array_length(s.d_from, 1)] END AS due,
           CASE WHEN s.h_from IS NULL THEN c.hold ELSE s.h_from[array_length(s.h_from, 1)] END AS hold
    FROM candidates c LEFT JOIN states s ON s.item_id = c.id AND s.pos = 1
    UNION ALL
    -- after each change, until the next: the last status / due set so far, else the next one's `from`
    SELECT s.ts, s.next_ts, c.priority,
           coalesce(s.s_upto[array_length(s.s_upto, 1)], s.s_after[array_length(s.s_after, 1)], c.status),
           CASE WHEN s.d_upto IS NOT NULL THEN s.d_upto[array_length(s.d_upto, 1)]
                WHEN s.d_after IS NOT NULL THEN s.d_after[array_length(s.d_after, 1)] ELSE c.due END,
           CASE WHEN s.h_after IS NOT NULL THEN s.h_after[array_length(s.h_after, 1)] ELSE c.hold END
    FROM states s JOIN candidates c ON c.id = s.item_id
),
counted AS (
    -- the date the overdue rule compares: the due date, or a later hold (greatest() skips a NULL hold)
    SELECT a, b, priority, status, CASE WHEN due IS NULL THEN NULL ELSE greatest(due::date, hold::date) END AS due
    FROM segments
),
spans AS (
    -- the 0-based weeks whose end M_k lies in the segment (a, b], and from which one it is overdue
    SELECT priority,
           CASE WHEN a < %(first_end)s THEN 0
                ELSE floor(extract(epoch FROM a - %(first_end)s::timestamptz) / 604800)::int + 1 END AS lo,
           CASE WHEN b IS NULL THEN %(n)s - 1 WHEN b < %(first_end)s THEN -1
                ELSE least(%(n)s - 1,
                           floor(extract(epoch FROM b - %(first_end)s::timestamptz) / 604800)::int) END AS hi,
           CASE WHEN due IS NULL THEN NULL WHEN due < %(first_sunday)s::date THEN 0
                ELSE (due - %(first_sunday)s::date) / 7 + 1 END AS due_from
    FROM counted WHERE status IN {active}
),
deltas AS (
    SELECT lo AS k, 1 AS open, 0 AS late, (priority = 'P0')::int AS p0 FROM spans WHERE lo <= hi
    UNION ALL SELECT hi + 1, -1, 0, -(priority = 'P0')::int FROM spans WHERE lo <= hi
    -- (greatest() skips NULLs: an undated segment must be left out by name)
    UNION ALL SELECT greatest(lo, due_from), 0, 1, 0 FROM spans
        WHERE due_from IS NOT NULL AND greatest(lo, due_from) <= hi
    UNION ALL SELECT hi + 1, 0, -1, 0 FROM spans WHERE due_from IS NOT NULL AND greatest(lo, due_from) <= hi
),
per_week AS (SELECT k + 1 AS k, sum(open) AS open, sum(late) AS late, sum(p0) AS p0 FROM deltas GROUP BY k),
ends AS (
    SELECT w.k, sum(coalesce(d.open, 0)) OVER upto AS open_at_end, sum(coalesce(d.late, 0)) OVER upto AS overdue_at_end,
           sum(coalesce(d.p0, 0)) OVER upto AS p0_open_at_end
    FROM weeks w LEFT JOIN per_week d ON d.k = w.k
    WINDOW upto AS (ORDER BY w.k)
)
SELECT w.k, coalesce(o.n, 0) AS opened, coalesce(c.n, 0) AS closed, x.open_at_end, x.overdue_at_end,
       x.p0_open_at_end
FROM weeks w LEFT JOIN opened o ON o.k = w.k LEFT JOIN closed c ON c.k = w.k JOIN ends x ON x.k = w.k
ORDER BY w.k
"""

# The Monday of an item's week: its dedupe key's ISO week when that exists, else its creation week.
ITEM_MONDAY = """
CASE WHEN dedupe_key ~ '^[^:]*:[0-9]{4}-W[0-9]{2}:' AND (CASE
        WHEN substr(split_part(dedupe_key, ':', 2), 1, 4)::int < 1 THEN false
        ELSE substr(split_part(dedupe_key, ':', 2), 7, 2)::int BETWEEN 1
             AND extract(week FROM make_date(substr(split_part(dedupe_key, ':', 2), 1, 4)::int, 12, 28)) END)
     THEN to_date(split_part(dedupe_key, ':', 2), 'IYYY-"W"IW')
     ELSE date_trunc('week', created_at AT TIME ZONE 'UTC')::date END
"""

PROBLEMS = f"""
WITH members AS (
    SELECT id, service, category, priority, owner, due_date, accepted_hold,
           CASE WHEN due_date IS NULL THEN NULL ELSE greatest(due_date, accepted_hold) END AS counted_due,
           {ITEM_MONDAY} AS monday
    FROM backlog_items WHERE env = %(env)s AND status IN {ACTIVE_SQL} SERVICE_AND
),
grouped AS (
    SELECT service, category, array_agg(id ORDER BY id DESC) AS items, min(monday) AS first_monday,
           to_char(min(counted_due), 'YYYY-MM-DD') AS oldest_due_date, min(priority) AS priority,
           (array_agg(owner ORDER BY id DESC))[1] AS owner,
           coalesce(bool_or(due_date < %(today)s AND {NOT_HELD}), false) AS overdue
    FROM members GROUP BY service, category
)
SELECT service, category, items, greatest(1, (%(this_monday)s::date - first_monday) / 7 + 1) AS weeks_open,
       to_char(first_monday, 'IYYY-"W"IW') AS first_week, oldest_due_date, priority, owner, overdue
FROM grouped ORDER BY priority, weeks_open DESC, service, category
"""

PROBLEM_FIELDS = ("service", "category", "items", "weeks_open", "first_week", "oldest_due_date", "priority", "owner",
                  "overdue")


def trends_query(env: str | None, service: str | None, weeks: list[Week]) -> tuple[str, dict[str, Any]]:
    scope = " AND ".join(["true", *(["i.env = %(env)s"] if env is not None else []),
                          *(["i.service = %(service)s"] if service is not None else [])])
    params = {"env": env, "service": service, "starts": [w.start for w in weeks], "ends": [w.end for w in weeks],
              "first_start": weeks[0].start, "first_end": weeks[0].end, "last_end": weeks[-1].end,
              "first_sunday": weeks[0].last_day, "n": len(weeks)}
    return TRENDS.format(scope=scope, active=ACTIVE_SQL, state_events=STATE_EVENTS_SQL), params


def trend_rows(weeks: list[Week], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = empty_rows(weeks)
    for row in rows:
        out[int(row["k"]) - 1].update({name: int(row[name]) for name in COUNTS})
    return out


def problems_query(env: str, service: str | None, today: date) -> tuple[str, dict[str, Any]]:
    sql = PROBLEMS.replace("SERVICE_AND", "AND service = %(service)s" if service is not None else "")
    return sql, {"env": env, "service": service, "today": today,
                 "this_monday": today - timedelta(days=today.weekday())}


def problem_record(row: dict[str, Any]) -> dict[str, Any]:
    return {name: (list(row[name]) if name == "items" else int(row[name]) if name == "weeks_open" else row[name])
            for name in PROBLEM_FIELDS}
