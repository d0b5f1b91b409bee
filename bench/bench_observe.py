"""Recording a request for an existing series, random access, as series grow: 1, 10k, 100k.

The headline is the path users hit: the middleware calls the binding with the route template
the framework matched, its method and status. A real app has a bounded set of route templates
(the default cap is 500), so its series grow with methods, statuses and hosts, not with
distinct route strings; here N series are 500 routes by methods by statuses, all created
beforehand, and each candidate observes series picked at random among its N. Rounds are
interleaved and timed in thread CPU time.

The second figure isolates the model: `crates/last9-core/benches/observe.rs` (run here with
cargo, release build) observes with route ids already resolved, so its growth from 1 to N
series is finding the series and touching its cells.
"""

from __future__ import annotations

import itertools
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import last9
from harness import Row, compare

SIZES = [1, 10_000, 100_000]
#: Random picks cycled through per candidate: more than the largest N, so every series is hit.
PICKS = 1 << 18
CALLS = 200_000
#: A real app's route templates: the default `max_routes`.
ROUTES = 500
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
ROOT = Path(__file__).resolve().parent.parent


def label_sets(n: int) -> list[tuple[str, str, int]]:
    """`n` distinct (route, method, status): routes first, then methods, then statuses."""
    routes = [f"/api/resource{i}/{{id}}" for i in range(min(n, ROUTES))]
    combos = itertools.product(range(200, 1000), METHODS, routes)
    return [(route, method, status) for status, method, route in itertools.islice(combos, n)]


def observer(n: int) -> Callable[[], object]:
    registry = last9.Registry()
    recorder = last9.Recorder(
        registry, hostname="box", program="bench", route_syntax="brace", max_routes=ROUTES + 1
    )
    labels = label_sets(n)
    for route, method, status in labels:
        recorder.observe(route, "", "example.com", method, status, 1_000_000)
    assert registry.series_count() == n
    rng = random.Random(n)
    # Fresh tuples, made in order, so that walking the picks reads memory sequentially, as a
    # request's own objects are fresh: only the series are at random (the strings and status
    # objects are a few hundred, as a real app's route, method and status values).
    chosen = (labels[rng.randrange(n)] for _ in range(PICKS))
    picks = itertools.cycle([(route, method, status) for route, method, status in chosen])
    observe = recorder.observe

    def one() -> object:
        route, method, status = next(picks)
        return observe(route, "", "example.com", method, status, 1_000_000)

    return one


def model_only() -> dict[int, float]:
    """ns per observe of the Rust benchmark (route ids resolved), by series count."""
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "-p", "last9-core", "--bench", "observe"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {int(n): float(ns) for n, ns in (line.split() for line in out.splitlines())}


def rows(bench: str, timings: dict[int, float]) -> list[Row]:
    base = timings[1]
    out = [Row(bench, "1 series", f"{base:.0f} ns")]
    for n, goal in ((10_000, 1.5), (100_000, 2.5)):
        ns = timings[n]
        ratio = f"{ns:.0f} ns ({ns / base:.2f}×)"
        out.append(Row(bench, f"{n:,} series", ratio, f"≤ {goal}×", ns / base <= goal))
    return out


def run() -> list[Row]:
    candidates = {n: observer(n) for n in SIZES}
    timings = compare(
        {f"{n}": fn for n, fn in candidates.items()},
        calls=CALLS,
        rounds=15,
        clock=time.thread_time_ns,
    )
    python = {n: timings[f"{n}"].ns for n in SIZES}
    return [
        *rows("observe an existing series, random access (through Python)", python),
        *rows("observe, the model alone (Rust, route ids resolved)", model_only()),
    ]
