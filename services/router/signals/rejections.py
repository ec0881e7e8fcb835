"""Rejected signals are never dropped silently: a reason code, a warning line and a counter.

Intake answers 200 with the rejected items listed in the body (Alertmanager must not retry an
alert that will never validate), but nobody reads that body. So every rejection also gets one
of a small, fixed set of reason codes (never free text: the code is a Prometheus label value),
each payload with rejections logs one warning line naming the codes and their counts — no label
values, which could hold anything — and ``RejectionTally`` counts them per (kind, reason) for
``/metrics`` (``backlog_signals_rejected_total``). The tally lives in the process's ``Runtime``
and is passed in, so each app (and test) counts its own.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

log = logging.getLogger("backlog.signals")

Reason = Literal[
    "missing_service", "missing_env", "unknown_severity", "missing_fingerprint", "invalid_payload",
    "unknown_kind", "missing_field", "unknown_field", "invalid_value",
]
# Alertmanager's own reasons (labels the risk policy names, the alert's fingerprint, the payload).
ALERTMANAGER_REASONS: tuple[Reason, ...] = (
    "missing_service", "missing_env", "unknown_severity", "missing_fingerprint", "invalid_payload",
)
# Any kind's: the item does not validate as a signal.
ITEM_REASONS: tuple[Reason, ...] = ("missing_field", "unknown_field", "invalid_value")
UNKNOWN_KIND = "unknown"  # the ``kind`` label of an item whose kind is missing or not one of ours
SIGNAL_KINDS = ("incident", "alert", "slo_breach", "followup", "deploy", "vulnerability")


def reason_of(error_types: Sequence[str]) -> Reason:
    """The code of a pydantic report (its first error decides): kind, missing, unknown or bad field."""
    first = error_types[0] if error_types else ""
    if first in ("union_tag_invalid", "union_tag_not_found"):
        return "unknown_kind"
    if first == "missing":
        return "missing_field"
    if first == "extra_forbidden":
        return "unknown_field"
    return "invalid_value"


def series() -> list[tuple[str, Reason]]:
    """Every (kind, reason) that can occur, exported from zero so a rate works from the first one."""
    out: list[tuple[str, Reason]] = [(kind, reason) for kind in SIGNAL_KINDS for reason in ITEM_REASONS]
    out += [("alert", reason) for reason in ALERTMANAGER_REASONS]
    out += [(UNKNOWN_KIND, reason) for reason in ("unknown_kind", *ITEM_REASONS)]
    return out


class RejectionTally:
    """Rejected signals per (kind, reason) since the process started (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, rejected: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self._counts.update(rejected)

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            current = dict(self._counts)
        return {**dict.fromkeys(series(), 0), **current}


def kind_label(kind: Any) -> str:
    return kind if isinstance(kind, str) and kind in SIGNAL_KINDS else UNKNOWN_KIND


def record_rejections(
    tally: RejectionTally | None, *, action: str, rejected: Sequence[tuple[Any, str]], total: int,
) -> None:
    """Count ``rejected`` (kind, reason) pairs and log one warning line for the payload, if any."""
    if not rejected:
        return
    pairs = [(kind_label(kind), reason) for kind, reason in rejected]
    if tally is not None:
        tally.add(pairs)
    by_reason = Counter(reason for _, reason in pairs)
    log.warning("signals_tool.%s rejected %d of %d signal(s): %s", action, len(pairs), total,
                ", ".join(f"{reason}={count}" for reason, count in sorted(by_reason.items())))
