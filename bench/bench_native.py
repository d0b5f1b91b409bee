"""Native histograms: observe cost, memory per series and scrape size, classic vs native vs both.

Each figure compares the three kinds in the same process and run. prometheus_client has no
native histograms in a release (its pull request #1104 is unmerged), so there is no Python peer
to anchor against.
"""

from __future__ import annotations

import subprocess
import sys
import time

import last9
from harness import Row, compare

#: The three ways a recorder can keep its histograms.
KINDS = {
    "classic": {"native_histograms": False},
    "classic + native": {},
    "native": {"classic_histograms": False},
}
#: Durations spread like a busy route's: 0.5 ms to 2 s, log-uniform (about 96 buckets at
#: schema 3), cycled through by the observe benchmark.
DURATIONS_NS = [int(0.5e6 * 4000 ** (i / 999)) for i in range(1000)]
PROTOBUF = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
)
SCRAPE_SERIES = 10_000
MEMORY_SERIES = 20_000


def recorder(kind: str, max_routes: int = 100) -> tuple[last9.Registry, last9.Recorder]:
    registry = last9.Registry()
    rec = last9.Recorder(
        registry,
        hostname="box",
        program="bench",
        route_syntax="brace",
        max_routes=max_routes,
        **KINDS[kind],
    )
    return registry, rec


def observe_rows() -> list[Row]:
    candidates = {}
    for kind in KINDS:
        _, rec = recorder(kind)
        durations = iter(DURATIONS_NS * 10_000)

        def observe(rec: last9.Recorder = rec, durations=durations) -> None:  # type: ignore[no-untyped-def]
            rec.observe("/api/{id}", "", "example.com", "GET", 200, next(durations))

        candidates[kind] = observe
    timings = compare(candidates, calls=200_000, rounds=7, clock=time.thread_time_ns)
    classic = timings["classic"].ns
    bench = "observe one request (Python call included)"
    both, native = timings["classic + native"].ns, timings["native"].ns
    return [
        Row(bench, "classic", f"{classic:.0f} ns"),
        Row(bench, "classic + native", f"{both:.0f} ns", "≤ 1.3× classic", both <= 1.3 * classic),
        Row(bench, "native", f"{native:.0f} ns", "≤ classic", native <= classic * 1.02),
    ]


MEASURE = """
import gc, sys, json
import last9
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
options, n = json.loads(sys.argv[1]), int(sys.argv[2])
registry = last9.Registry()
rec = last9.Recorder(registry, hostname="box", program="bench", route_syntax="brace",
                     max_routes=n + 1, **options)
rec.observe("/warm", "", "example.com", "GET", 200, 1000)
gc.collect()
before = rss()
for i in range(n):
    rec.observe(f"/api/resource{i}/{{id}}", "", "example.com", "GET", 200, 5_000_000 + i)
gc.collect()
print((rss() - before) / n)
"""


def memory_rows() -> list[Row]:
    import json

    bench = f"memory per series ({MEMORY_SERIES:,} series, RSS growth)"
    rows = []
    targets = {"classic + native": 1024, "native": 512}
    for kind, options in KINDS.items():
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, json.dumps(options), str(MEMORY_SERIES)],
            capture_output=True,
            text=True,
            check=True,
        )
        size = float(result.stdout.strip())
        target = targets.get(kind)
        rows.append(
            Row(
                bench,
                kind,
                f"{size:.0f} B",
                f"≤ {target} B" if target else "",
                size <= target if target else None,
            )
        )
    return rows


def scrape_rows() -> list[Row]:
    registries = {}
    for kind in ("classic + native", "native"):
        registry, rec = recorder(kind, max_routes=SCRAPE_SERIES)
        for i in range(SCRAPE_SERIES):
            for ns in DURATIONS_NS[(i * 37) % 900 :: 97][:10]:
                rec.observe(f"/api/v1/resource{i}/{{id}}", "", "example.com", "GET", 200, ns)
        registries[kind] = registry
    both = registries["classic + native"]
    text = len(both.render())
    sizes = {kind: len(r.scrape(PROTOBUF)[2]) for kind, r in registries.items()}
    bench = f"scrape of {SCRAPE_SERIES:,} label sets, 10 observations each"
    timings = compare(
        {"text": both.render, "protobuf": lambda: both.scrape(PROTOBUF)}, calls=1, rounds=5
    )
    text_ms, pb_ms = timings["text"].ns / 1e6, timings["protobuf"].ns / 1e6
    both_pb, native_pb = sizes["classic + native"], sizes["native"]
    return [
        Row(bench, "text 0.0.4 (classic buckets)", f"{text / 1e6:.1f} MB"),
        Row(
            bench,
            "protobuf, classic + native",
            f"{both_pb / 1e6:.1f} MB ({text / both_pb:.1f}× smaller)",
            "≥ 3× smaller",
            text >= 3 * both_pb,
        ),
        Row(
            bench,
            "protobuf, native only",
            f"{native_pb / 1e6:.2f} MB ({text / native_pb:.1f}× smaller)",
            "≥ 10× smaller",
            text >= 10 * native_pb,
        ),
        Row(bench, "render text", f"{text_ms:.1f} ms"),
        Row(
            bench,
            "render protobuf (classic + native)",
            f"{pb_ms:.1f} ms",
            "≤ text",
            pb_ms <= text_ms,
        ),
    ]


def run() -> list[Row]:
    return observe_rows() + memory_rows() + scrape_rows()
