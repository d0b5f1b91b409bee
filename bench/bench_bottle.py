"""Bottle: per-request overhead of last9 vs OpenTelemetry's WSGI middleware.

Bottle has no exporter of its own; OpenTelemetry's ``OpenTelemetryMiddleware`` (WSGI) with a
Prometheus metric reader is what its users would reach for (no tracer provider: its spans are
no-ops, its cheapest setting). The same trivial app (one route with a parameter) is built bare,
wrapped by RedMiddleware, with last9's plugin, and wrapped by OpenTelemetry, then called
in-process through WSGI with a prepared environ, so only the instrumentation differs. Times are
this thread's CPU time, in short interleaved rounds compared pairwise.
"""

from __future__ import annotations

import io
import time
from typing import Any

import bottle

import last9
from harness import Row, compare, overhead, paired_overheads, us
from last9.bottle import Plugin
from last9.wsgi.middleware import RedMiddleware

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/name/ada",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "8080",
    "HTTP_HOST": "localhost:8080",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.input": io.BytesIO(),
    "wsgi.errors": io.StringIO(),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def app() -> bottle.Bottle:
    app = bottle.Bottle()

    @app.route("/name/<name>")
    def hello(name: str) -> str:
        return f"<p>Hello, {name}!</p>"

    return app


def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def request(app: Any) -> None:
    body = app(dict(ENVIRON), start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def run() -> list[Row]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import generate_latest

    bare = app()
    ours = RedMiddleware(app(), registry=last9.Registry())
    plugged = app()
    plugged.install(Plugin(registry=last9.Registry()))
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    theirs = OpenTelemetryMiddleware(app(), meter_provider=provider)

    request(theirs)
    assert b"http_server_duration" in generate_latest(), "OpenTelemetry recorded nothing"

    candidates = {
        "bare Bottle": lambda: request(bare),
        "last9 RedMiddleware": lambda: request(ours),
        "last9 Plugin": lambda: request(plugged),
        "OpenTelemetry WSGI": lambda: request(theirs),
    }
    timings = compare(candidates, calls=5_000, rounds=31, clock=time.thread_time_ns)
    added = paired_overheads(timings, "bare Bottle")
    ours_ns, plugin_ns = added["last9 RedMiddleware"], added["last9 Plugin"]
    theirs_ns = added["OpenTelemetry WSGI"]
    bench = "Bottle, overhead per request"
    return [
        Row(bench, "bare Bottle (whole request, for scale)", us(timings["bare Bottle"].ns)),
        overhead(bench, "last9 RedMiddleware", us(ours_ns), ours_ns, "≤ 3 µs", ours_ns <= 3000),
        overhead(bench, "last9 Plugin", us(plugin_ns), plugin_ns, "≤ 3 µs", plugin_ns <= 3000),
        overhead(bench, "OpenTelemetry WSGI (OpenTelemetryMiddleware)", us(theirs_ns), theirs_ns),
        Row(
            bench,
            "OpenTelemetry ÷ last9 RedMiddleware",
            f"{theirs_ns / ours_ns:.0f}x",
            "≥ 10x",
            theirs_ns / ours_ns >= 10,
        ),
    ]
