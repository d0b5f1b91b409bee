"""Memory per series: resident memory grown by creating 100,000 series, in a fresh process.

Two shapes: one route per series (the worst case: every series also pays for interning its
own route string), and a real app's shape, 500 route templates (the default cap) by methods by
statuses, where the series themselves are most of the cost.
"""

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
kind, n, routes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
def label_set(i):
    if i < 0:
        return "/warm-up", "GET", 200
    route = f"/api/resource{i % routes}/{{id}}"
    return route, methods[(i // routes) % 5], 200 + i // (routes * 5)
labels = ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"]
buckets = [0.25 * 1.5**k for k in range(31)]
if kind == "last9":
    import last9
    registry = last9.Registry()
    recorder = last9.Recorder(registry, hostname="box", program="bench", route_syntax="brace",
                              max_routes=routes + 2)
    def observe(i):
        route, method, status = label_set(i)
        recorder.observe(route, "", "example.com", method, status, 1000)
else:
    from prometheus_client import CollectorRegistry, Histogram
    h = Histogram("http_requests_duration_milliseconds", "h", labels, buckets=buckets,
                  registry=CollectorRegistry())
    def observe(i):
        route, method, status = label_set(i)
        h.labels(route, "box", "example.com", method, "bench", str(status), "", "").observe(1.0)
observe(-1)
gc.collect()
before = rss()
for i in range(n):
    observe(i)
gc.collect()
print((rss() - before) / n)
"""


def bytes_per_series(kind: str, routes: int) -> float:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, kind, str(SERIES), str(routes)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip())


def run() -> list[Row]:
    rows = []
    for routes, shape in ((SERIES, "a route each"), (500, "500 routes × methods × statuses")):
        ours = bytes_per_series("last9", routes)
        theirs = bytes_per_series("prometheus_client", routes)
        bench = f"memory per series ({SERIES:,} series, {shape}, RSS growth)"
        rows.append(Row(bench, "last9", f"{ours:.0f} B", "≤ 400 B", ours <= 400))
        rows.append(Row(bench, "prometheus_client", f"{theirs:.0f} B"))
    return rows
