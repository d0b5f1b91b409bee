"""Falcon: per-request overhead of last9 vs OpenTelemetry, on one trivial app (a route with a
converter), over WSGI (`falcon.App`, called with a prepared environ; vs
opentelemetry-instrumentation-falcon) and over ASGI (`falcon.asgi.App`, driven in-process; vs
OpenTelemetry's ASGI middleware, as the Falcon instrumentation covers WSGI apps only).

OpenTelemetry gets an SDK MeterProvider (so its duration histograms record) and the default
no-op tracer (its cheapest setting). Times are CPU time of the benchmark thread, overheads the
median of per-round differences, as the machine is shared.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import falcon
import falcon.asgi
from bench_asgi import asgi_request
from bench_starlette import exporter_rows, otel_meter_provider

import last9
from harness import Row
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.falcon import Middleware
from last9.wsgi.middleware import RedMiddleware

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/hello/42",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "8000",
    "HTTP_HOST": "localhost:8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "wsgi.errors": sys.stderr,
    "wsgi.input": io.BytesIO(),
}


class Hello:
    def on_get(self, req: Any, resp: Any, n: int) -> None:
        resp.text = "ok"


class AsyncHello:
    async def on_get(self, req: Any, resp: Any, n: int) -> None:
        resp.text = "ok"


def wsgi_app(**kwargs: Any) -> falcon.App:
    app = falcon.App(**kwargs)
    app.add_route("/hello/{n:int}", Hello())
    return app


def asgi_app(**kwargs: Any) -> falcon.asgi.App:
    app = falcon.asgi.App(**kwargs)
    app.add_route("/hello/{n:int}", AsyncHello())
    return app


def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def wsgi_request(app: Any) -> Any:
    def request() -> None:
        body = app(dict(ENVIRON), start_response)
        for _ in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()

    return request


def run() -> list[Row]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.falcon import FalconInstrumentor

    registry = last9.Registry()
    bare = wsgi_app()
    ours = RedMiddleware(wsgi_app(), registry=registry, program="bench")
    component = wsgi_app(middleware=[Middleware(registry=registry, program="bench-mw")])
    instrumentor = FalconInstrumentor()
    instrumentor.instrument(meter_provider=otel_meter_provider())
    try:
        otel = wsgi_app()  # falcon.App is OpenTelemetry's subclass while instrumented
        rows = exporter_rows(
            "Falcon WSGI app, overhead per request",
            "bare falcon.App",
            {
                "bare falcon.App": wsgi_request(bare),
                "last9 RedMiddleware(app)": wsgi_request(ours),
                "last9 Falcon Middleware()": wsgi_request(component),
                "opentelemetry-instrumentation-falcon": wsgi_request(otel),
            },
            ours=["last9 RedMiddleware(app)", "last9 Falcon Middleware()"],
            exporters=["opentelemetry-instrumentation-falcon"],
        )
    finally:
        instrumentor.uninstrument()

    asgi_component = asgi_app(middleware=[Middleware(registry=registry, program="bench-mw")])
    otel_asgi = OpenTelemetryMiddleware(asgi_app(), meter_provider=otel_meter_provider())
    rows += exporter_rows(
        "Falcon ASGI app, overhead per request",
        "bare falcon.asgi.App",
        {
            "bare falcon.asgi.App": asgi_request(asgi_app()),
            "last9 RedMiddleware(app)": asgi_request(
                AsgiRedMiddleware(asgi_app(), registry=registry, program="bench")
            ),
            "last9 Falcon Middleware()": asgi_request(asgi_component),
            "OpenTelemetry ASGI": asgi_request(otel_asgi),
        },
        ours=["last9 RedMiddleware(app)", "last9 Falcon Middleware()"],
        exporters=["OpenTelemetry ASGI"],
    )
    return rows
