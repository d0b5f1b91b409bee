"""Timing helpers shared by the benchmarks: interleaved runs, best-of medians, one result table.

Every benchmark compares candidates measured in the same process and the same run, and reports
ratios, because absolute times on a shared 2-core machine drift from minute to minute.
"""

from __future__ import annotations

import gc
import importlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timing:
    """Nanoseconds per call of one candidate: the median of several rounds."""

    name: str
    rounds_ns: list[float] = field(default_factory=list)

    @property
    def ns(self) -> float:
        return statistics.median(self.rounds_ns)


def time_per_call(
    fn: Callable[[], object], calls: int, clock: Callable[[], int] = time.perf_counter_ns
) -> float:
    """Nanoseconds per call of `fn`, timed over `calls` calls with the GC paused.

    `clock=time.thread_time_ns` counts only the CPU time of this thread: on a busy machine the
    wall clock also counts the time other processes held the CPU, which can exceed a small
    overhead many times over.
    """
    # Every candidate starts from a collected heap: otherwise the garbage a previous candidate
    # left (cyclic, uncollected while timing) slows whichever candidate runs next.
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        for _ in range(calls):
            fn()
        return (clock() - start) / calls
    finally:
        if gc_was_enabled:
            gc.enable()


def compare(
    candidates: dict[str, Callable[[], object]],
    calls: int,
    rounds: int = 7,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> dict[str, Timing]:
    """Times each candidate `rounds` times, interleaved so drift hits all of them alike."""
    timings = {name: Timing(name) for name in candidates}
    for fn in candidates.values():
        time_per_call(fn, max(calls // 10, 1), clock)  # warm up
    for _ in range(rounds):
        for name, fn in candidates.items():
            timings[name].rounds_ns.append(time_per_call(fn, calls, clock))
    return timings


def overheads(timings: dict[str, Timing], bare: str) -> dict[str, float]:
    """Nanoseconds each candidate adds to the `bare` one."""
    base = timings[bare].ns
    return {name: t.ns - base for name, t in timings.items() if name != bare}


def paired_overheads(timings: dict[str, Timing], bare: str) -> dict[str, float]:
    """Nanoseconds each candidate adds to `bare`: the median of the per-round differences.

    Rounds are interleaved, so a candidate and the bare app in one round ran under the same
    load; pairing them keeps a busy neighbour from swamping overheads of a few percent.
    """
    base = timings[bare].rounds_ns
    return {
        name: statistics.median(t - b for t, b in zip(t_rounds.rounds_ns, base, strict=True))
        for name, t_rounds in timings.items()
        if name != bare
    }


@dataclass
class Row:
    """One line of the results table; `met` says whether a target holds (None: no target).

    A row with a `chart` ("overhead" or "scrape", see run.py) is also drawn as a bar of that
    chart, `amount` long (µs per request for overheads, ms for scrapes).
    """

    benchmark: str
    candidate: str
    value: str
    target: str = ""
    met: bool | None = None
    #: The same figure counted in instructions (callgrind), when it was counted.
    instructions: str = ""
    chart: str = ""
    amount: float = 0.0


def overhead(
    bench: str,
    candidate: str,
    value: str,
    ns: float,
    target: str = "",
    met: bool | None = None,
    instructions: str = "",
) -> Row:
    """A row of the overhead chart: `ns` nanoseconds added per request."""
    return Row(
        bench, candidate, value, target, met, instructions, chart="overhead", amount=ns / 1000
    )


def table(rows: list[Row]) -> str:
    """Timed results are the headline; instruction counts, where made, are a second column."""
    lines = [
        "| benchmark | candidate | result (thread CPU time) | instructions (callgrind) | target |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = {True: " ✅", False: " ❌", None: ""}[r.met]
        lines.append(
            f"| {r.benchmark} | {r.candidate} | {r.value} | {r.instructions} "
            f"| {r.target}{verdict} |"
        )
    return "\n".join(lines)


def us(ns: float) -> str:
    return f"{ns / 1000:.2f} µs"


#: A factory's candidates: name → a function that builds a zero-argument request callable.
Candidates = dict[str, Callable[[], Callable[[], object]]]


def overheads_of(
    factory: str, bare: str, counted: list[str], calls: int = 1_000, rounds: int = 31
) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """Nanoseconds each candidate `factory` (`module:function`) returns adds to `bare`, timed,
    with a description of each, and the `counted` candidates' instruction counts.

    Timed in thread CPU time, paired per round: that is the figure returned and the one a user
    experiences. When valgrind is there (and LAST9_BENCH_CALLGRIND is not 0), the `counted`
    candidates are also counted in instructions per request (a figure that holds still on a
    shared machine), reported beside the time, never instead of it.
    """
    module, _, function = factory.partition(":")
    import callgrind

    makers: Candidates = getattr(importlib.import_module(module), function)()
    candidates = {name: make() for name, make in makers.items()}
    timings = compare(candidates, calls=calls, rounds=rounds, clock=time.thread_time_ns)
    added = paired_overheads(timings, bare)
    described = {name: us(ns) for name, ns in added.items()}
    instructions: dict[str, str] = {}
    if callgrind.available() and os.environ.get("LAST9_BENCH_CALLGRIND") != "0":
        bare_count = callgrind.instructions_per_request(factory, bare)
        for name in counted:
            count = callgrind.instructions_per_request(factory, name) - bare_count
            instructions[name] = f"{count / 1000:.1f}k"
    return added, described, instructions
