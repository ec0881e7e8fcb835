"""Bench plumbing: medians, ratios against a floor measured in the same run, the results table."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    metric: str
    ours: float
    floor: float | None
    unit: str
    goal: str
    ok: bool
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.floor if self.floor else None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(format_row(row), flush=True)

    def write_json(self, path: Path) -> None:
        data = {"machine": self.machine, "rows": [{**asdict(r), "ratio": r.ratio} for r in self.rows]}
        path.write_text(json.dumps(data, indent=2) + "\n")


def median_time(fn: Callable[[], object], *, repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``fn`` in seconds over ``repeat`` runs (``setup`` untimed before each)."""
    samples = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def interleaved(ours: Callable[[], object], floor: Callable[[], object], *, repeat: int,
                setup: Callable[[], object] | None = None, budget_s: float | None = None) -> tuple[float, float]:
    """Medians of ``ours`` and ``floor`` measured in alternation (``setup`` untimed before each).

    The machine is shared: measuring all of one side and then all of the other turns a change
    of load (disk, CPU) into a ratio. Alternating — and swapping which goes first every round —
    exposes both sides to the same conditions. With ``budget_s``, no new round starts once that
    much time has passed (at least one round runs): a pathologically slow side stays bounded.
    """
    samples: dict[bool, list[float]] = {True: [], False: []}
    started_all = time.perf_counter()
    for n in range(repeat):
        if n and budget_s is not None and time.perf_counter() - started_all > budget_s:
            break
        for is_ours in ((True, False) if n % 2 == 0 else (False, True)):
            if setup is not None:
                setup()
            fn = ours if is_ours else floor
            started = time.perf_counter()
            fn()
            samples[is_ours].append(time.perf_counter() - started)
    return statistics.median(samples[True]), statistics.median(samples[False])


def ratio_row(metric: str, ours: float, floor: float, *, goal_ratio: float, unit: str = "s",
              higher_is_better: bool = False, note: str = "") -> Row:
    ratio = ours / floor if floor else float("inf")
    ok = ratio >= goal_ratio if higher_is_better else ratio <= goal_ratio
    goal = f"{'>=' if higher_is_better else '<='} {goal_ratio}x"
    return Row(metric, ours, floor, unit, goal, ok, note)


def format_row(r: Row) -> str:
    floor = f"{r.floor:.4g}" if r.floor is not None else "-"
    ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
    verdict = "pass" if r.ok else "FAIL"
    return f"{r.metric:<58} {r.ours:>10.4g} {floor:>10} {r.unit:>6} {ratio:>8} {r.goal:>10}  {verdict}"


def header() -> str:
    return f"{'metric':<58} {'ours':>10} {'floor':>10} {'unit':>6} {'ratio':>8} {'goal':>10}  result"


def machine_info() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine()}


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
