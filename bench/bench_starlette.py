"""Starlette: per-request overhead of last9 vs starlette_exporter and OpenTelemetry's ASGI
middleware, on one trivial app (a route with a converter), driven in-process through ASGI.

OpenTelemetry gets an SDK MeterProvider (so its duration histogram records) and the default
no-op tracer (its cheapest setting). Times are CPU time of the benchmark thread, overheads the
median of per-round differences; last9's are also counted in instructions (callgrind), as the
machine is shared (see bench_asgi.exporter_rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_asgi import Candidates, asgi_request, exporter_rows, otel_meter_provider
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import last9
from harness import Row
from last9.asgi.middleware import RedMiddleware


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def trivial_app() -> Starlette:
    return Starlette(routes=[Route("/hello/{n:int}", hello)])


def with_starlette_exporter() -> Callable[[], None]:
    from starlette_exporter import PrometheusMiddleware

    app = trivial_app()
    app.add_middleware(PrometheusMiddleware, group_paths=True, app_name="bench")
    return asgi_request(app)


def with_otel() -> Callable[[], None]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return asgi_request(
        OpenTelemetryMiddleware(trivial_app(), meter_provider=otel_meter_provider())
    )


def with_last9_added() -> Callable[[], None]:
    app = trivial_app()
    app.add_middleware(RedMiddleware, registry=last9.Registry(), program="bench")
    return asgi_request(app)


def candidates() -> Candidates:
    return {
        "bare Starlette": lambda: asgi_request(trivial_app()),
        "last9 RedMiddleware(app)": lambda: asgi_request(
            RedMiddleware(trivial_app(), registry=last9.Registry(), program="bench")
        ),
        "last9 add_middleware": with_last9_added,
        "starlette_exporter": with_starlette_exporter,
        "OpenTelemetry ASGI": with_otel,
    }


def run() -> list[Row]:
    return exporter_rows(
        "Starlette app, overhead per request",
        "bench_starlette:candidates",
        "bare Starlette",
        ours=["last9 RedMiddleware(app)", "last9 add_middleware"],
        exporters=["starlette_exporter", "OpenTelemetry ASGI"],
    )
