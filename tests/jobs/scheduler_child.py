"""One scheduler process for the multi-process tests: ``python -m tests.jobs.scheduler_child …``."""

from __future__ import annotations

import argparse
import logging
import signal
import tempfile
import threading
from datetime import datetime
from pathlib import Path

from services.router.clock import Clock, FixedClock, parse_utc
from services.router.jobs.pg_ledger import PgRunLedger
from services.router.jobs.scheduler import Scheduler
from tests.jobs.probe import Probe, ScaledClock, job, registry


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--start", required=True, help="fake time at the anchor")
    parser.add_argument("--anchor", type=float, default=0.0, help="real epoch seconds where fake time starts")
    parser.add_argument("--speed", type=float, default=0.0, help="fake seconds per real second (0: fixed clock)")
    parser.add_argument("--until", default=None, help="exit after the pass at this fake time")
    parser.add_argument("--catch-up-minutes", type=int, default=600)
    parser.add_argument("--hold-seconds", type=float, default=0.02)
    parser.add_argument("--poll-seconds", type=float, default=0.01)
    parser.add_argument("--hang", action="store_true", help="hold the first claimed slot until killed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(message)s")

    start = parse_utc(args.start)
    clock: Clock = ScaledClock(start, args.anchor, args.speed) if args.speed else FixedClock(start)
    probe = Probe(args.dsn, hold_seconds=args.hold_seconds, hang=args.hang)
    jobs = registry(job("probe_hourly", "0 * * * *", catch_up_minutes=args.catch_up_minutes))
    ledger = PgRunLedger(args.dsn)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with tempfile.TemporaryDirectory() as root:
        scheduler = Scheduler(registry=jobs, runtime=probe.runtime(clock, Path(root)), ledger=ledger, clock=clock)
        print("ready", flush=True)
        until: datetime | None = parse_utc(args.until) if args.until else None
        scheduler.serve(poll_seconds=args.poll_seconds, stop=stop, until=until)
    ledger.close()


if __name__ == "__main__":
    main()
