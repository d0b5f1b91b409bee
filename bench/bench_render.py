"""Rendering 10,000 series of the histogram: last9 vs prometheus_client's generate_latest."""

from __future__ import annotations

import last9
from harness import Row, compare

SERIES = 10_000
LABELS = ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"]
BUCKETS_MS = [0.25 * 1.5**k for k in range(31)]


def last9_registry() -> last9.Registry:
    registry = last9.Registry()
    recorder = last9.Recorder(
        registry, hostname="box", program="bench", route_syntax="brace", max_routes=SERIES
    )
    for i in range(SERIES):
        recorder.observe(
            f"/api/v1/resource{i}/{{id}}", "", "example.com", "GET", 200, 1_000_000 + i
        )
    assert registry.series_count() == SERIES
    return registry


def prometheus_client_registry():  # type: ignore[no-untyped-def]
    from prometheus_client import CollectorRegistry, Histogram

    registry = CollectorRegistry()
    histogram = Histogram(
        "http_requests_duration_milliseconds",
        "HTTP requests duration per path",
        LABELS,
        buckets=BUCKETS_MS,
        registry=registry,
    )
    for i in range(SERIES):
        labels = (
            f"/api/v1/resource{i}/{{id}}",
            "box",
            "example.com",
            "GET",
            "bench",
            "200",
            "",
            "",
        )
        histogram.labels(*labels).observe(1 + i / 1e6)
    return registry


def run() -> list[Row]:
    from prometheus_client import generate_latest

    ours, theirs = last9_registry(), prometheus_client_registry()
    timings = compare(
        {
            "last9": ours.render,
            "prometheus_client generate_latest": lambda: generate_latest(theirs),
        },
        calls=1,
        rounds=5,
    )
    ours_ns, theirs_ns = timings["last9"].ns, timings["prometheus_client generate_latest"].ns
    size = len(ours.render())
    bench = f"render {SERIES:,} histogram series ({size / 1e6:.0f} MB of text)"
    ratio = theirs_ns / ours_ns
    return [
        Row(bench, "last9", f"{ours_ns / 1e6:.1f} ms", chart="scrape", amount=ours_ns / 1e6),
        Row(
            bench,
            "prometheus_client",
            f"{theirs_ns / 1e6:.0f} ms",
            chart="scrape",
            amount=theirs_ns / 1e6,
        ),
        Row(bench, "prometheus_client ÷ last9", f"{ratio:.0f}×", "≥ 100×", ratio >= 100),
    ]
