"""Falcon: per-request overhead of last9 vs OpenTelemetry, on one trivial app (a route with a
converter), over WSGI (`falcon.App`, called with a prepared environ; vs
opentelemetry-instrumentation-falcon) and over ASGI (`falcon.asgi.App`, driven in-process; vs
OpenTelemetry's ASGI middleware, as the Falcon instrumentation covers WSGI apps only).

OpenTelemetry gets an SDK MeterProvider (so its duration histograms record) and the default
no-op tracer (its cheapest setting). Measured as in bench_starlette: CPU time, and
instructions counted by callgrind.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

import falcon
import falcon.asgi
from bench_asgi import Candidates, asgi_request, exporter_rows, otel_meter_provider

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


def with_otel_falcon() -> Callable[[], None]:
    from opentelemetry.instrumentation.falcon import FalconInstrumentor

    FalconInstrumentor().instrument(meter_provider=otel_meter_provider())
    # falcon.App is OpenTelemetry's subclass while instrumented. The app stays instrumented
    # until run() ends (uninstrumenting switches instrumented apps off too); last9 detects
    # Falcon apps by falcon.app.App, which instrumentation leaves alone.
    return wsgi_request(wsgi_app())


def wsgi_candidates() -> Candidates:
    return {
        "bare falcon.App": lambda: wsgi_request(wsgi_app()),
        "last9 RedMiddleware(app)": lambda: wsgi_request(
            RedMiddleware(wsgi_app(), registry=last9.Registry(), program="bench")
        ),
        "last9 Falcon Middleware()": lambda: wsgi_request(
            wsgi_app(middleware=[Middleware(registry=last9.Registry(), program="bench-mw")])
        ),
        "opentelemetry-instrumentation-falcon": with_otel_falcon,
    }


def with_otel_asgi() -> Callable[[], None]:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return asgi_request(OpenTelemetryMiddleware(asgi_app(), meter_provider=otel_meter_provider()))


def asgi_candidates() -> Candidates:
    return {
        "bare falcon.asgi.App": lambda: asgi_request(asgi_app()),
        "last9 RedMiddleware(app)": lambda: asgi_request(
            AsgiRedMiddleware(asgi_app(), registry=last9.Registry(), program="bench")
        ),
        "last9 Falcon Middleware()": lambda: asgi_request(
            asgi_app(middleware=[Middleware(registry=last9.Registry(), program="bench-mw")])
        ),
        "OpenTelemetry ASGI": with_otel_asgi,
    }


def run() -> list[Row]:
    from opentelemetry.instrumentation.falcon import FalconInstrumentor

    ours = ["last9 RedMiddleware(app)", "last9 Falcon Middleware()"]
    try:
        wsgi_rows = exporter_rows(
            "Falcon WSGI app, overhead per request",
            "bench_falcon:wsgi_candidates",
            "bare falcon.App",
            ours=ours,
            exporters=["opentelemetry-instrumentation-falcon"],
        )
    finally:
        FalconInstrumentor().uninstrument()  # one instance per process: the one used above
    return [
        *wsgi_rows,
        *exporter_rows(
            "Falcon ASGI app, overhead per request",
            "bench_falcon:asgi_candidates",
            "bare falcon.asgi.App",
            ours=ours,
            exporters=["OpenTelemetry ASGI"],
        ),
    ]
