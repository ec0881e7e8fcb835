"""What the run ledger records and answers: ``RunRecord``, claims, the ledger protocol, summaries.

Shared by both ledgers (``ledger.JsonlRunLedger``, ``pg_ledger.PgRunLedger``); callers import
them through ``ledger``, the one module for writing and reading runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from services.router.clock import iso_z, parse_utc

Status = Literal["running", "succeeded", "failed", "skipped"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "skipped"})
STATUSES: frozenset[str] = FINISHED | {"running"}
MAX_RESULT_BYTES = 64 * 1024
MAX_SUMMARY_CHARS = 300


@dataclass(frozen=True, slots=True)
class RunRecord:
    job: str
    slot: datetime
    status: Status
    tool: str
    action: str
    attempts: int = 0
    host: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    summary: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("slot", "started_at", "finished_at"):
            data[key] = iso_z(data[key]) if data[key] is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        def when(key: str) -> datetime | None:
            return parse_utc(str(data[key])) if data.get(key) else None

        slot = when("slot")
        if slot is None or data.get("status") not in STATUSES:
            raise ValueError("not a run record")
        return cls(
            job=str(data["job"]), slot=slot, status=data["status"], tool=str(data["tool"]),
            action=str(data["action"]), attempts=int(data.get("attempts") or 0), host=data.get("host"),
            pid=data.get("pid"), started_at=when("started_at"), finished_at=when("finished_at"),
            duration_ms=data.get("duration_ms"), summary=data.get("summary"), error=data.get("error"),
        )


@dataclass(frozen=True, slots=True)
class JobRuns:
    """Per job: when it last succeeded, and the first slot the ledger knows (how long it is tracked)."""

    last_success: datetime | None
    first_slot: datetime | None


def summarize_runs(records: Iterable[RunRecord]) -> dict[str, JobRuns]:
    out: dict[str, JobRuns] = {}
    for record in records:
        known = out.get(record.job, JobRuns(None, None))
        success = known.last_success
        if record.status == "succeeded":
            done = record.finished_at or record.slot
            success = done if success is None or done > success else success
        first = record.slot if known.first_slot is None or record.slot < known.first_slot else known.first_slot
        out[record.job] = JobRuns(success, first)
    return out


class Claim(Protocol):
    record: RunRecord

    def finish(self, status: Status, *, finished_at: datetime, duration_ms: int, summary: str | None,
               error: str | None, result: Any) -> RunRecord: ...


class RunLedger(Protocol):
    mode: str

    def describe(self) -> str: ...
    def last_slot(self, job: str) -> datetime | None: ...
    def running_slots(self, job: str, since: datetime) -> list[datetime]: ...
    def get(self, job: str, slot: datetime) -> RunRecord | None: ...
    def claim(self, record: RunRecord) -> AbstractContextManager[Claim | None]: ...
    def skip(self, record: RunRecord) -> bool: ...
    def history(self, job: str | None = None, limit: int = 20) -> list[RunRecord]: ...
    def job_runs(self) -> dict[str, JobRuns]: ...
    def reload(self) -> None: ...
    def close(self) -> None: ...


def summarize(result: Any) -> str:
    """One line for ``backlog jobs history``: the scalar fields of a result, then its lists by
    their length in words (``created=14 updated=0, 16 items, 1 firing``: one item in ``firing``)."""
    if isinstance(result, dict):
        parts = []
        sizes = []
        for key, value in result.items():
            if isinstance(value, bool | int | float | str) or value is None:
                parts.append(f"{key}={value}")
            elif isinstance(value, list | dict):
                sizes.append(f"{len(value)} {key}")
        text = ", ".join(filter(None, [" ".join(parts), ", ".join(sizes)]))
    else:
        text = json.dumps(result, default=str)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 1] + "…"


def result_json(result: Any) -> str | None:
    """The full result as JSON for the record, unless it is too big to keep."""
    if result is None:
        return None
    text = json.dumps(result, default=str, ensure_ascii=False)
    if len(text.encode()) > MAX_RESULT_BYTES:
        return json.dumps({"truncated": True, "bytes": len(text.encode()), "summary": summarize(result)})
    return text
