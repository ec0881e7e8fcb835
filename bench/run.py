"""``make bench`` / ``make bench-quick``: every metric against a floor measured in the same run.

Prints metric, our median, the floor's median, the ratio, the goal and pass/fail, and writes the
same as JSON (``--json``). Exits non-zero when a row misses its goal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import jsonl_bench
from bench.common import Report, header, machine_info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--items", type=int, help="JSONL items (default 100000, quick 20000)")
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--repeat", type=int, help="runs per median (default 5, quick 3)")
    parser.add_argument("--only", action="append", choices=["jsonl"], help="run only these groups")
    parser.add_argument("--json", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    items = args.items or (20_000 if args.quick else 100_000)
    repeat = args.repeat or (3 if args.quick else 5)
    report = Report(machine=machine_info())
    print(f"machine: {report.machine}")
    print(header())
    groups = args.only or ["jsonl"]
    if "jsonl" in groups:
        jsonl_bench.run(report, items=items, versions=args.versions, repeat=repeat)
    report.write_json(args.json)
    failed = [r for r in report.rows if not r.ok]
    print(f"{len(report.rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
