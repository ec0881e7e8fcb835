"""The Auto store's journal of writes accepted on the JSONL fallback, and their replay.

Why a journal and not the JSONL files themselves: replay must re-apply each *request* (an
upsert's input, a status move, a comment) to whatever Postgres holds, by the normal rules —
the JSONL records only show what the request did to the fallback's own copy.

File ``fallback_journal.jsonl`` beside the JSONL store, one JSON object a line:

- ``{"op_id", "kind": "upsert"|"status"|"comment"|"revise"|"owner"|"due_date", "ts", "actor",
  "on_behalf_of", …}`` — the intent (a ``comment`` may carry another event-only type,
  ``event_type``, and ``meta``), appended
  and fsynced *before* the JSONL write, so an acknowledged write is always in the journal;
- ``{"op_id", "kind": "done", "ids": {dedupe_key: id}}`` — after the JSONL write: ids the
  client was given, so an item created during the outage keeps its id in Postgres;
- ``{"op_id", "kind": "abort"}`` — the JSONL write failed; the op is not replayed.

Replay applies ops in order; each op's id is recorded in ``backlog_applied_ops`` in the same
transaction as its effect, so a replay interrupted anywhere (crash, Postgres gone again) and
run again applies every op exactly once. The journal is emptied only after a complete replay.
An op Postgres refuses for good (not an outage) goes to ``fallback_journal.failed.jsonl`` for
an operator instead of blocking the switch back. Writers and the replayer of one directory —
threads or processes — are serialized by a lock (mutex + ``flock``).

The file itself (fsynced appends, the lock, the in-place clear) is ``journal_file.JournalFile``.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from services.router.clock import parse_utc
from services.router.domain.changes import Change, Record, plan_status
from services.router.domain.edits import plan_due_date, plan_owner
from services.router.domain.enums import EventType, Status
from services.router.domain.models import ItemInput
from services.router.domain.revisions import Revision, plan_note, plan_revision
from services.router.errors import BacklogError
from services.router.stores import pg_sql as q
from services.router.stores.base import UpsertRequest
from services.router.stores.journal_file import Entry, JournalFile
from services.router.stores.journal_file import replay as replay_entries
from services.router.stores.pg_conn import retrying
from services.router.stores.postgres import OpAlreadyApplied, OpContext, PostgresBacklogStore

log = logging.getLogger("backlog_store")

JOURNAL_NAME = "fallback_journal"
JOURNAL_FILE = f"{JOURNAL_NAME}.jsonl"
INTENTS = ("upsert", "status", "comment", "revise", "owner", "due_date")


@dataclass(slots=True)
class JournalOp:
    op_id: str
    kind: str
    record: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)


class Journal(JournalFile):
    """The backlog's journal, ``fallback_journal.jsonl`` beside the JSONL store."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, JOURNAL_NAME)

    def read(self) -> list[JournalOp]:
        """Intents in order, with their ``done`` ids folded in and aborted ones dropped."""
        ops: dict[str, JournalOp] = {}
        for record in self.records():
            op_id, kind = record["op_id"], record["kind"]
            if kind in INTENTS:
                ops.setdefault(op_id, JournalOp(op_id, kind, record))
            elif kind == "done" and op_id in ops:
                ops[op_id].ids = dict(record.get("ids") or {})
            elif kind == "abort":
                ops.pop(op_id, None)
        return list(ops.values())


def apply_op(pg: PostgresBacklogStore, op: JournalOp) -> str:
    """One journaled op against Postgres, merged by dedupe key (ids differ between backends);
    returns its outcome."""
    r = op.record
    ctx = OpContext(op.op_id, op.kind, now=parse_utc(r["ts"]), ids=op.ids, always_record=True)
    who = (r["actor"], r.get("on_behalf_of"))
    if op.kind == "upsert":
        requests = [UpsertRequest(ItemInput.model_validate(q["item"]), q["fallback_owner"]) for q in r["requests"]]
        return replay_upsert(pg, requests, actor=who[0], on_behalf_of=who[1], op=ctx)
    message = r.get("message", "")
    if op.kind == "status":
        status = Status(r["status"])
        return replay_by_key(pg, r["dedupe_key"], op=ctx, planner=lambda row, now: plan_status(
            row, status, now=now, actor=who[0], message=message, on_behalf_of=who[1]))
    if op.kind == "revise":
        revision = Revision.model_validate(r["revision"])
        return replay_by_key(pg, r["dedupe_key"], op=ctx, planner=lambda row, now: plan_revision(
            row, revision, now=now, actor=who[0], on_behalf_of=who[1]))
    if op.kind == "owner":
        owner = r["owner"]
        return replay_by_key(pg, r["dedupe_key"], op=ctx, planner=lambda row, now: plan_owner(
            row, owner, now=now, actor=who[0], message=message, on_behalf_of=who[1]))
    if op.kind == "due_date":
        due = date.fromisoformat(r["due_date"]) if r["due_date"] else None
        return replay_by_key(pg, r["dedupe_key"], op=ctx, planner=lambda row, now: plan_due_date(
            row, due, now=now, actor=who[0], message=message, on_behalf_of=who[1]))
    kind = EventType(r.get("event_type", EventType.COMMENTED.value))
    return replay_by_key(pg, r["dedupe_key"], op=ctx, note=lambda row, now: plan_note(
        row, kind, message, r.get("meta") or {}, now=now, actor=who[0], on_behalf_of=who[1]))


def replay_upsert(pg: PostgresBacklogStore, requests: Sequence[UpsertRequest], *, actor: str,
                  on_behalf_of: str | None = None, op: OpContext) -> str:
    try:
        results = pg.upsert_many(requests, actor=actor, on_behalf_of=on_behalf_of, op=op)
    except OpAlreadyApplied:
        return "already applied"
    return ", ".join(sorted({r.action for r in results})) or "empty"


ChangePlanner = Callable[[Record, datetime], Change]
NotePlanner = Callable[[Record, datetime], Record]


def replay_by_key(pg: PostgresBacklogStore, key: str, *, op: OpContext, planner: ChangePlanner | None = None,
                  note: NotePlanner | None = None) -> str:
    """A status, owner or due-date change or a revision (``planner``) or an event-only write (``note``) made on the
    fallback, applied to the item that holds ``key`` in Postgres. A change the current state
    refuses, or an item that is gone, is recorded as the op's outcome (and logged) rather than
    blocking the replay."""
    try:
        return retrying(lambda: _replay_by_key(pg, key, op=op, planner=planner, note=note))
    except OpAlreadyApplied:
        return "already applied"


def _replay_by_key(pg: PostgresBacklogStore, key: str, *, op: OpContext, planner: ChangePlanner | None,
                   note: NotePlanner | None) -> str:
    """One attempt of ``replay_by_key``: one transaction."""
    with pg.transaction() as conn:
        pg.begin_op(conn, [key], op)
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(q.SELECT_ITEM + " WHERE dedupe_key = %s FOR UPDATE", (key,)).fetchone()
        if row is None:
            pg.write_change(conn, [], [], op, outcome="skipped: no item with this dedupe key")
            return "skipped: no item"
        now = op.now or pg.clock.now()
        if planner is None:
            assert note is not None
            pg.write_change(conn, [], [note(row, now)], op)
            return "commented"
        try:
            change = planner(row, now)
        except BacklogError as exc:
            pg.write_change(conn, [], [], op, outcome=f"refused: {exc.message}")
            return f"refused: {exc.message}"
        pg.write_change(conn, [change] if change.event else [], [change.event] if change.event else [], op)
        return change.action


def replay(journal: Journal, pg: PostgresBacklogStore) -> Counter[str]:
    """Apply every journaled op to ``pg`` and empty the journal (``journal_file.replay``): outcomes
    by kind (``applied``, ``merged``, …, ``failed``). Caller holds ``journal.locked()``."""
    entries = [Entry(f"op {op.op_id} ({op.kind})", {**op.record, "ids": op.ids},
                     functools.partial(_outcome, pg, op)) for op in journal.read()]
    return replay_entries(journal, entries, what="operation(s)", stage="replay:after_op")


def _outcome(pg: PostgresBacklogStore, op: JournalOp) -> str:
    return apply_op(pg, op).split(":")[0]
