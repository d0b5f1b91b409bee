"""FastAPI: per-request overhead of last9 vs prometheus-fastapi-instrumentator,
starlette_exporter and OpenTelemetry's ASGI middleware, on one trivial app (a route of an
included router, with a typed path parameter), driven in-process through ASGI; measured as in
bench_starlette."""

from __future__ import annotations

from collections.abc import Callable

from bench_asgi import Candidates, asgi_request, exporter_rows, otel_meter_provider
from fastapi import APIRouter, FastAPI

import last9
from harness import Row
from last9.asgi.middleware import RedMiddleware


def trivial_app() -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/hello")

    @router.get("/{n}")
    async def hello(n: int) -> dict[str, int]:
        return {"n": n}

    app.include_router(router)
    return app


def with_last9_added() -> Callable[[], None]:
    app = trivial_app()
    app.add_middleware(RedMiddleware, registry=last9.Registry(), program="bench")
    return asgi_request(app)


def with_instrumentator() -> Callable[[], None]:
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    app = trivial_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    return asgi_request(app)


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


def candidates() -> Candidates:
    return {
        "bare FastAPI": lambda: asgi_request(trivial_app()),
        "last9 RedMiddleware(app)": lambda: asgi_request(
            RedMiddleware(trivial_app(), registry=last9.Registry(), program="bench")
        ),
        "last9 add_middleware": with_last9_added,
        "prometheus-fastapi-instrumentator": with_instrumentator,
        "starlette_exporter": with_starlette_exporter,
        "OpenTelemetry ASGI": with_otel,
    }


def run() -> list[Row]:
    return exporter_rows(
        "FastAPI app, overhead per request",
        "bench_fastapi:candidates",
        "bare FastAPI",
        ours=["last9 RedMiddleware(app)", "last9 add_middleware"],
        exporters=["prometheus-fastapi-instrumentator", "starlette_exporter", "OpenTelemetry ASGI"],
        versus="prometheus-fastapi-instrumentator",
    )
