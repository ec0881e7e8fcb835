"""``gc_paused``: keep the cyclic garbage collector out of bulk work that builds acyclic objects."""

from __future__ import annotations

import gc
from types import TracebackType


class gc_paused:  # lower case: used like a function (contextlib style)
    """Keep the cyclic garbage collector out of a bulk step (a generation run, a store's load).

    Such a step builds hundreds of thousands of containers that outlive it (candidates, plan
    entries, the store's records and index) and none of them form cycles, so reference counting
    frees them all. The collector would still take each batch of them for heap growth and walk
    the whole heap — the store's index included — several times: more than half of a 5k-service
    generation run, and a third of a 100k-item cold open (which made the open grow faster than
    the file: 7.5x the time for 5x the items). Collection resumes when the step ends (not if it
    was already off). A class, not a generator: every JSONL read and write enters it.
    """

    __slots__ = ("_paused",)

    def __enter__(self) -> None:
        self._paused = gc.isenabled()
        if self._paused:
            gc.disable()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._paused:
            gc.enable()


# A load of at least this many records freezes what the process holds (``freeze_after_bulk_load``).
BULK_LOAD_RECORDS = 50_000


def freeze_long_lived() -> None:
    """Move every object the process holds out of the cyclic collector's reach (``gc.freeze``).

    For what lives as long as the process (a store's index, loaded code): full collections stop
    walking it. Frozen objects are still freed by reference counting, but a reference cycle alive
    at this moment that dies later is never collected — so call it after a load, not per request.
    """
    gc.freeze()


def freeze_after_bulk_load(records: int) -> None:
    """After indexing ``records`` records while collection is paused: ``freeze_long_lived`` when
    that is a bulk load.

    Collection resumes with everything made during the pause in the young generation, so the
    first collection after it walked the whole new index (0.75 s of a 6 s open at 500k items),
    and each later full collection walks it again (the router froze only once, at start-up, so
    a reload after a compaction put the index back in reach). Below this size (tests, small
    backlogs) nothing is frozen, and a running router reloads rarely (after a compaction).
    """
    if records >= BULK_LOAD_RECORDS:
        freeze_long_lived()
