"""FastAPI: per-request overhead of last9 vs prometheus-fastapi-instrumentator,
starlette_exporter and OpenTelemetry's ASGI middleware, on one trivial app (a route of an
included router, with a typed path parameter), driven in-process through ASGI."""

from __future__ import annotations

from bench_asgi import SCOPE, asgi_request
from bench_starlette import exporter_rows, otel_meter_provider
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


def run() -> list[Row]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette_exporter import PrometheusMiddleware

    assert SCOPE["path"] == "/hello/42"
    registry = last9.Registry()
    wrapped = RedMiddleware(trivial_app(), registry=registry, program="bench")
    added = trivial_app()
    added.add_middleware(RedMiddleware, registry=registry, program="bench")
    instrumentator = trivial_app()
    Instrumentator(registry=CollectorRegistry()).instrument(instrumentator)
    exporter = trivial_app()
    exporter.add_middleware(PrometheusMiddleware, group_paths=True, app_name="bench")
    otel = OpenTelemetryMiddleware(trivial_app(), meter_provider=otel_meter_provider())
    candidates = {
        "bare FastAPI": asgi_request(trivial_app()),
        "last9 RedMiddleware(app)": asgi_request(wrapped),
        "last9 add_middleware": asgi_request(added),
        "prometheus-fastapi-instrumentator": asgi_request(instrumentator),
        "starlette_exporter": asgi_request(exporter),
        "OpenTelemetry ASGI": asgi_request(otel),
    }
    return exporter_rows(
        "FastAPI app, overhead per request",
        "bare FastAPI",
        candidates,
        ours=["last9 RedMiddleware(app)", "last9 add_middleware"],
        exporters=["prometheus-fastapi-instrumentator", "starlette_exporter", "OpenTelemetry ASGI"],
    )
