"""Pyramid: per-request overhead of last9 vs opentelemetry-instrumentation-pyramid.

The same trivial app (one route with a parameter) is built four times: bare, wrapped by
RedMiddleware, with last9's tween (``config.include``), and with OpenTelemetry's tween feeding
a Prometheus metric reader (no tracer provider: its spans are no-ops, its cheapest setting). Each
is called in-process through WSGI with a prepared environ, so only the instrumentation differs.
Times are this thread's CPU time, in short interleaved rounds compared pairwise, so that other
processes on a shared machine do not drown a microsecond in their noise.
"""

from __future__ import annotations

import io
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

import last9
from harness import Row, compare, overhead, paired_overheads, us
from last9.wsgi.middleware import RedMiddleware

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/name/ada",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "6543",
    "HTTP_HOST": "localhost:6543",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.input": io.BytesIO(),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def hello(request: Any) -> Response:
    return Response(f"<p>Hello, {request.matchdict['name']}!</p>")


def config(settings: dict[str, str] | None = None) -> Configurator:
    config = Configurator(settings=settings)
    config.add_route("hello", "/name/{name}")
    config.add_view(hello, route_name="hello")
    return config


def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def request(app: Any) -> None:
    body = app(dict(ENVIRON), start_response)
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()


def otel_meter_provider() -> Any:
    """The global SDK meter provider with a Prometheus reader (OpenTelemetry's tween only uses
    the global one); set once per process."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    current = metrics.get_meter_provider()
    if not isinstance(current, MeterProvider):
        current = MeterProvider(metric_readers=[PrometheusMetricReader()])
        metrics.set_meter_provider(current)
    return current


def run() -> list[Row]:
    from opentelemetry.instrumentation.pyramid import PyramidInstrumentor
    from prometheus_client import generate_latest

    otel_meter_provider()
    bare = config().make_wsgi_app()
    ours = RedMiddleware(config().make_wsgi_app(), registry=last9.Registry())
    tweened = config({"last9.program": "bench-tween", "last9.metrics_path": "off"})
    tweened.include("last9.pyramid")
    tween = tweened.make_wsgi_app()
    otel = config()
    PyramidInstrumentor().instrument_config(otel)
    theirs = otel.make_wsgi_app()

    request(theirs)
    assert b"http_server_duration" in generate_latest(), "OpenTelemetry recorded nothing"

    candidates = {
        "bare Pyramid": lambda: request(bare),
        "last9 RedMiddleware": lambda: request(ours),
        "last9 tween": lambda: request(tween),
        "opentelemetry-instrumentation-pyramid": lambda: request(theirs),
    }
    timings = compare(candidates, calls=2_000, rounds=31, clock=time.thread_time_ns)
    added = paired_overheads(timings, "bare Pyramid")
    ours_ns, tween_ns = added["last9 RedMiddleware"], added["last9 tween"]
    theirs_ns = added["opentelemetry-instrumentation-pyramid"]
    bench = "Pyramid, overhead per request"
    return [
        Row(bench, "bare Pyramid (whole request, for scale)", us(timings["bare Pyramid"].ns)),
        overhead(bench, "last9 RedMiddleware", us(ours_ns), ours_ns, "≤ 3 µs", ours_ns <= 3000),
        overhead(
            bench,
            "last9 tween (config.include)",
            us(tween_ns),
            tween_ns,
            "≤ 3 µs",
            tween_ns <= 3000,
        ),
        overhead(bench, "opentelemetry-instrumentation-pyramid", us(theirs_ns), theirs_ns),
        Row(
            bench,
            "OpenTelemetry ÷ last9 RedMiddleware",
            f"{theirs_ns / ours_ns:.0f}x",
            "≥ 10x",
            theirs_ns / ours_ns >= 10,
        ),
    ]
