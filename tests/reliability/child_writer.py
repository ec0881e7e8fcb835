"""A child process that writes to a JSONL store and reports each acknowledged write.

Run as ``python -m tests.reliability.child_writer DIR ACKFILE SEED START COUNT [CRASH_POINT N]``.
Each acknowledged upsert appends ``key seq event_id`` to ACKFILE (flushed, not fsynced: a
SIGKILL does not lose the page cache, which is what these tests model — process crashes).
With CRASH_POINT the process kills itself the N-th time the store passes that checkpoint.
"""

from __future__ import annotations

import os
import random
import signal
import sys

from services.router import files
from services.router.domain.models import ItemInput
from services.router.stores.jsonl import JsonlBacklogStore

SIZES = (100, 1_000, 4_000, 5_000, 16_000, 60_000)


def payload(rng: random.Random) -> tuple[str, str]:
    """Description and meta padding adding up to 100 B to 64 KiB per record."""
    size = max(rng.choice(SIZES) + rng.randint(-50, 50), 1)
    return "d" * min(size, 9_000), "m" * max(size - 9_000, 0)


def install_crash(point: str, nth: int) -> None:
    hits = [0]

    def hook(name: str) -> None:
        if name == point:
            hits[0] += 1
            if hits[0] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    files.crash_hook = hook


def main(argv: list[str]) -> None:
    directory, ackfile, seed, start, count = argv[:5]
    if len(argv) > 5:
        install_crash(argv[5], int(argv[6]))
    rng = random.Random(int(seed))
    store = JsonlBacklogStore(directory)
    with open(ackfile, "a", buffering=1) as acks:
        for seq in range(int(start), int(start) + int(count)):
            # 30 % of writes update an existing key
            key = f"r{rng.randrange(max(seq // 3, 1))}" if seq > 10 and rng.random() < 0.3 else f"r{seq}"
            description, pad = payload(rng)
            item = ItemInput(env="prod", service="svc", category="reliability", title=f"{key} v{seq}",
                             description=description, dedupe_key=key, meta={"seq": seq, "pad": pad})
            result = store.upsert(item, actor="child")
            event_id = result.event["id"] if result.event else "-"
            acks.write(f"{key} {seq} {event_id}\n")
            if len(argv) > 7 and seq % 50 == 49:
                store.cleanup(180)


if __name__ == "__main__":
    main(sys.argv[1:])
