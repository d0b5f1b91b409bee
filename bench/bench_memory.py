"""Memory per series: resident memory grown by creating 100,000 series, in a fresh process."""

from __future__ import annotations

import subprocess
import sys

from harness import Row

SERIES = 100_000

MEASURE = """
import gc, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
kind, n = sys.argv[1], int(sys.argv[2])
labels = ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"]
buckets = [0.25 * 1.5**k for k in range(31)]
if kind == "last9":
    import last9
    registry = last9.Registry()
    recorder = last9.Recorder(registry, hostname="box", program="bench", route_syntax="brace",
                              max_routes=n)
    def observe(i):
        recorder.observe(f"/api/resource{i}/{{id}}", "", "example.com", "GET", 200, 1000)
else:
    from prometheus_client import CollectorRegistry, Histogram
    h = Histogram("http_requests_duration_milliseconds", "h", labels, buckets=buckets,
                  registry=CollectorRegistry())
    observe = lambda i: h.labels(f"/api/resource{i}/{{id}}", "box", "example.com", "GET", "bench",
                                 "200", "", "").observe(1.0)
observe(-1)
gc.collect()
before = rss()
for i in range(n):
    observe(i)
gc.collect()
print((rss() - before) / n)
"""


def bytes_per_series(kind: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, kind, str(SERIES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def run() -> list[Row]:
    ours, theirs = bytes_per_series("last9"), bytes_per_series("prometheus_client")
    bench = f"memory per series ({SERIES:,} series, RSS growth)"
    return [
        Row(bench, "last9", f"{ours:.0f} B", "≤ 1 KiB", ours <= 1024),
        Row(bench, "prometheus_client", f"{theirs:.0f} B"),
    ]
