"""Recording a request for an existing series, random access, as series grow: 1, 10k, 100k.

Each candidate observes series picked at random among its recorder's N series (all created
beforehand), through the Python binding; rounds are interleaved and timed in thread CPU time.
The figures include the call from Python, which is the same for every N, so the growth from
1 to N series is the model's: a cache-friendly layout keeps it near one cache miss.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

import last9
from harness import Row, compare

SIZES = [1, 10_000, 100_000]
#: Random picks cycled through per candidate: more than the largest N, so every series is hit.
PICKS = 1 << 18
CALLS = 200_000


def observer(n: int) -> Callable[[], object]:
    registry = last9.Registry()
    recorder = last9.Recorder(
        registry, hostname="box", program="bench", route_syntax="brace", max_routes=n
    )
    routes = [f"/api/resource{i}/{{id}}" for i in range(n)]
    for route in routes:
        recorder.observe(route, "", "example.com", "GET", 200, 1_000_000)
    assert registry.series_count() == n
    rng = random.Random(n)
    picks = itertools.cycle([routes[rng.randrange(n)] for _ in range(PICKS)])
    observe = recorder.observe

    def one() -> object:
        return observe(next(picks), "", "example.com", "GET", 200, 1_000_000)

    return one


def run() -> list[Row]:
    candidates = {f"{n:,} series": observer(n) for n in SIZES}
    timings = compare(candidates, calls=CALLS, rounds=15, clock=time.thread_time_ns)
    base = timings["1 series"].ns
    bench = "observe an existing series, random access (through Python)"
    rows = [Row(bench, "1 series", f"{base:.0f} ns")]
    for n, goal in ((10_000, 1.5), (100_000, 2.5)):
        ns = timings[f"{n:,} series"].ns
        rows.append(
            Row(bench, f"{n:,} series", f"{ns:.0f} ns ({ns / base:.2f}×)", f"≤ {goal}× (core only)")
        )
    return rows
