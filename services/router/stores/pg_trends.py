"""Trends and problems in SQL for the Postgres store: ``domain.trends`` and ``domain.problems``
computed by the server, over the indexes of schema step 6 (`0006_trends.sql`).

Trends, in one statement (one snapshot):

- ``opened``: items by the week of ``created_at`` (``backlog_items_env_created_idx``);
- ``closed``: status changes into done/canceled by the week of their ``ts``
  (``backlog_events_closing_ts_idx``, joined to the items of the env by primary key);
- the week-end counts look only at items that can be active at some week's end: those active
  now, and those with a status change since the first week's end (an item closed before that,
  and never changed since, was closed at every week's end). For each (item, week) pair the
  status is the ``from`` of the first status change after the week's end, else the current one;
  the due date likewise (``backlog_events_changes_idx``). Items without such changes skip the
  lookups.

Problems: the env's active items grouped by (service, category) with the partial
``(env, service)`` index of step 1; the week of an item is the one in its dedupe key (checked to
exist, as ``domain.dedupe.week_of_key`` does) or its creation week.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from services.router.domain.trends import COUNTS, Week, empty_rows
from services.router.stores.pg_sql import ACTIVE_SQL

TRENDS = """
WITH weeks AS (
    SELECT w.k, w.week_start, w.week_end, w.last_day
    FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[], %(days)s::date[])
         WITH ORDINALITY AS w(week_start, week_end, last_day, k)
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
    SELECT i.id, i.created_at, i.status, i.priority, i.due_date,
           EXISTS (SELECT 1 FROM backlog_events e WHERE e.item_id = i.id AND e.type = 'status_changed'
                   AND e.ts >= %(first_end)s) AS status_moved,
           EXISTS (SELECT 1 FROM backlog_events e WHERE e.item_id = i.id AND e.type = 'due_date_changed'
                   AND e.ts >= %(first_end)s) AS due_moved
    FROM backlog_items i
    WHERE {scope} AND i.created_at < %(last_end)s
      AND (i.status IN {active} OR EXISTS (SELECT 1 FROM backlog_events e WHERE e.item_id = i.id
                                           AND e.type = 'status_changed' AND e.ts >= %(first_end)s))
),
at_end AS (
    SELECT w.k, w.last_day, c.priority,
           CASE WHEN c.status_moved THEN coalesce(
               (SELECT e.meta->>'from' FROM backlog_events e WHERE e.item_id = c.id AND e.type = 'status_changed'
                AND e.ts >= w.week_end ORDER BY e.ts, e.seq LIMIT 1), c.status) ELSE c.status END AS status,
           CASE WHEN c.due_moved THEN coalesce(
               (SELECT ARRAY[e.meta->>'from'] FROM backlog_events e WHERE e.item_id = c.id
                AND e.type = 'due_date_changed' AND e.ts >= w.week_end ORDER BY e.ts, e.seq LIMIT 1),
               ARRAY[c.due_date::text]) ELSE ARRAY[c.due_date::text] END AS due
    FROM candidates c JOIN weeks w ON c.created_at < w.week_end
),
ends AS (
    SELECT k,
           count(*) FILTER (WHERE status IN {active}) AS open_at_end,
           count(*) FILTER (WHERE status IN {active} AND due[1]::date < last_day) AS overdue_at_end,
           count(*) FILTER (WHERE status IN {active} AND priority = 'P0') AS p0_open_at_end
    FROM at_end GROUP BY k
)
SELECT w.k, coalesce(o.n, 0) AS opened, coalesce(c.n, 0) AS closed, coalesce(x.open_at_end, 0) AS open_at_end,
       coalesce(x.overdue_at_end, 0) AS overdue_at_end, coalesce(x.p0_open_at_end, 0) AS p0_open_at_end
FROM weeks w LEFT JOIN opened o ON o.k = w.k LEFT JOIN closed c ON c.k = w.k LEFT JOIN ends x ON x.k = w.k
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
    SELECT id, service, category, priority, owner, due_date, {ITEM_MONDAY} AS monday
    FROM backlog_items WHERE env = %(env)s AND status IN {ACTIVE_SQL} SERVICE_AND
),
grouped AS (
    SELECT service, category, array_agg(id ORDER BY id DESC) AS items, min(monday) AS first_monday,
           to_char(min(due_date), 'YYYY-MM-DD') AS oldest_due_date, min(priority) AS priority,
           (array_agg(owner ORDER BY id DESC))[1] AS owner, coalesce(bool_or(due_date < %(today)s), false) AS overdue
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
              "days": [w.last_day for w in weeks], "first_start": weeks[0].start, "first_end": weeks[0].end,
              "last_end": weeks[-1].end}
    return TRENDS.format(scope=scope, active=ACTIVE_SQL), params


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
