"""Starlette: per-request overhead of last9 vs starlette_exporter and OpenTelemetry's ASGI
middleware, on one trivial app (a route with a converter), driven in-process through ASGI.

OpenTelemetry gets an SDK MeterProvider (so its duration histogram records) and the default
no-op tracer (its cheapest setting). Times are CPU time of the benchmark thread, overheads
the median of per-round differences, as the machine is shared.
"""

from __future__ import annotations

import time
from typing import Any

from bench_asgi import asgi_request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import last9
from harness import Row, compare, paired_overheads, us
from last9.asgi.middleware import RedMiddleware


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def trivial_app() -> Starlette:
    return Starlette(routes=[Route("/hello/{n:int}", hello)])


def otel_meter_provider() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def exporter_rows(
    bench: str, bare: str, candidates: dict[str, Any], ours: list[str], exporters: list[str]
) -> list[Row]:
    """Times the candidates; a row per overhead, and the best exporter's ÷ last9's worst."""
    timings = compare(candidates, calls=5_000, rounds=9, clock=time.thread_time_ns)
    added = paired_overheads(timings, bare)
    rows = [Row(bench, name, us(added[name]), "≤ 3 µs", added[name] <= 3000) for name in ours]
    rows += [Row(bench, name, us(added[name])) for name in exporters]
    worst_ours = max(added[name] for name in ours)
    best_exporter = min(exporters, key=added.__getitem__)
    ratio = added[best_exporter] / worst_ours
    rows.append(Row(bench, f"{best_exporter} ÷ last9", f"{ratio:.0f}×", "≥ 10×", ratio >= 10))
    return rows


def run() -> list[Row]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from starlette_exporter import PrometheusMiddleware

    registry = last9.Registry()
    wrapped = RedMiddleware(trivial_app(), registry=registry, program="bench")
    added = trivial_app()
    added.add_middleware(RedMiddleware, registry=registry, program="bench")
    exporter = trivial_app()
    exporter.add_middleware(PrometheusMiddleware, group_paths=True, app_name="bench")
    otel = OpenTelemetryMiddleware(trivial_app(), meter_provider=otel_meter_provider())
    candidates = {
        "bare Starlette": asgi_request(trivial_app()),
        "last9 RedMiddleware(app)": asgi_request(wrapped),
        "last9 add_middleware": asgi_request(added),
        "starlette_exporter": asgi_request(exporter),
        "OpenTelemetry ASGI": asgi_request(otel),
    }
    return exporter_rows(
        "Starlette app, overhead per request",
        "bare Starlette",
        candidates,
        ours=["last9 RedMiddleware(app)", "last9 add_middleware"],
        exporters=["starlette_exporter", "OpenTelemetry ASGI"],
    )
