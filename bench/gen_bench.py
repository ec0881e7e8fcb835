"""Weekly generation end to end against a lean loop writing the same items (issues 10, 22).

Ours: the ``backlog_tool.auto_generate_weekly`` action as the router and the CLI run it
(``generate_from_digest``: find the latest digest, read and validate it, sweep expired
acceptances, take the env's facts, build and rank candidates, read what the backlog holds
(this week's keys, the env's active items for carry-over, recent closures, acceptances), plan,
apply with one ``upsert_many``, record the run). The floor: ``bench.gen_lower_bound``'s lean loop
— only the work any generation of these items must do, then the same ``upsert_many`` — on a copy
of the same backlog, one row per backend (JSONL, the default, and Postgres).

Growth: the same action at ``growth_services`` against it at a tenth of that (caps scaled alike),
on JSONL: linear work gives 10x (the goal allows 11x), a quadratic step far more.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

from bench.common import Report, interleaved, ratio_row
from bench.gen_lower_bound import lean_generation
from bench.gen_setup import ENV, Scenario
from services.router.stores.base import BacklogStore
from services.router.stores.gc_pause import gc_paused
from services.router.tools.backlog_generate import GenerateParams, generate_from_digest
from services.router.tools.context import ToolContext

BACKENDS = ("jsonl", "postgres")
BUDGET_S = 120  # no new round after this long: a pathologically slow side stays bounded
MIN_ROUNDS = 7  # a round is cheap next to its setup, and 3 left the medians noisy (budget: BUDGET_S)


def product_run(scenario: Scenario, store: BacklogStore) -> int:
    """The real action on ``store``; the number of items it wrote (created, updated or unchanged)."""
    ctx = ToolContext(store, scenario.settings, scenario.clock, actor="bench", _policy=scenario.policy)
    result = generate_from_digest(ctx, GenerateParams(env=ENV), daily=False)
    assert result["digest"] == f"platform/{scenario.this_week.name}", result["digest"]
    return int(result["created"] + result["updated"] + result["unchanged"])


def lean_run(scenario: Scenario, store: BacklogStore) -> int:
    # the collector treatment the action gives itself (``gc_paused``): the ratio is the work
    # the action adds, not a difference in garbage collection
    with gc_paused():
        return len(lean_generation(store, scenario.this_week, scenario.policy))


def alternated(first: tuple[Scenario, Callable[[Scenario, BacklogStore], int]],
               second: tuple[Scenario, Callable[[Scenario, BacklogStore], int]], *,
               repeat: int) -> tuple[float, float, dict[bool, set[int]]]:
    """``interleaved`` medians of two runs, each on a fresh copy of its scenario's backlog made
    (untimed) just before it; also the counts each side wrote, to check they agree."""
    stores: dict[bool, BacklogStore] = {}
    written: dict[bool, set[int]] = {True: set(), False: set()}
    calls = [0]

    def setup() -> None:
        # ``interleaved`` runs round n as (first, second) when n is even, else (second, first)
        n, pos = divmod(calls[0], 2)
        calls[0] += 1
        side = (pos == 0) == (n % 2 == 0)
        old = stores.pop(side, None)
        if old is not None:
            old.close()
        stores[side] = (first if side else second)[0].copies.fresh()
        gc.collect()  # neither side inherits collection work from the setup or the other side

    def side_fn(side: bool) -> Callable[[], None]:
        scenario, fn = first if side else second
        return lambda: written[side].add(fn(scenario, stores[side]))

    try:
        ours_s, floor_s = interleaved(side_fn(True), side_fn(False), repeat=repeat, setup=setup, budget_s=BUDGET_S)
    finally:
        for store in stores.values():
            store.close()
    return ours_s, floor_s, written


def end_to_end(report: Report, *, services: int, cap: int, repeat: int, backend: str) -> None:
    scenario = Scenario(services=services, cap=cap, backend=backend)
    try:
        ours_s, floor_s, written = alternated((scenario, product_run), (scenario, lean_run),
                                              repeat=max(repeat, MIN_ROUNDS))
        assert written[True] == written[False] and len(written[True]) == 1, written  # the same items
        name = scenario.copies.name
        label = (f"Weekly generation end to end ({name}), {services} services, cap {cap} "
                 f"({written[True].pop()} written, {scenario.seeded} last week)")
        report.add(ratio_row(label, ours_s, floor_s, goal_ratio=1.3,
                             note=f"floor: bench.gen_lower_bound's lean loop writing the same items ({name})"))
    finally:
        scenario.close()


def growth(report: Report, *, services: int, big: int, cap: int, repeat: int) -> None:
    """The action at ``big`` services (cap scaled alike) against it at ``services``, on JSONL."""
    factor = big / services
    small_s = Scenario(services=services, cap=cap, backend="jsonl")
    try:
        big_s = Scenario(services=big, cap=round(cap * factor), backend="jsonl")
        try:
            ours_s, floor_s, written = alternated((big_s, product_run), (small_s, product_run),
                                                  repeat=max(repeat, MIN_ROUNDS))
        finally:
            big_s.close()
    finally:
        small_s.close()
    label = (f"Growth: weekly generation, {big} services vs {services} (JSONL, "
             f"{max(written[True])} vs {max(written[False])} written)")
    report.add(ratio_row(label, ours_s, floor_s, goal_ratio=round(1.1 * factor, 2),
                         note=f"floor: the same action at {services} services; linear = {factor:g}x"))


def run(report: Report, *, services: int, cap: int, repeat: int, backends: Sequence[str] = BACKENDS,
        growth_services: int = 0) -> None:
    """The end-to-end row of each backend, then the growth row (``growth_services`` 0: none)."""
    for backend in backends:
        end_to_end(report, services=services, cap=cap, repeat=repeat, backend=backend)
    if growth_services:  # against a tenth of it, the cap scaled alike (full: 50k vs 5k, as the rows)
        small = growth_services // 10
        growth(report, services=small, big=growth_services, cap=round(cap * small / services), repeat=repeat)
