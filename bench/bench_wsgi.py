"""Per-request overhead around a trivial WSGI app: last9 vs doing nothing in Python.

The yardstick is a pure-Python pass-through that wraps start_response and reads the clock
twice but records nothing; last9 must cost no more than it while recording everything. A
hand-written prometheus_client middleware (what users write otherwise) is shown for scale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

import last9
from harness import Candidates, Row, overhead, overheads_of
from last9.wsgi.middleware import RedMiddleware

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/user/42",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "HTTP_HOST": "example.com",
    "SERVER_NAME": "example.com",
    "SERVER_PORT": "80",
    "wsgi.url_scheme": "http",
}
BUCKETS_MS = [0.25 * 1.5**k for k in range(31)]


def trivial_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


class PassThrough:
    """Wraps start_response and reads the clock twice; records nothing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        status = None

        def wrapped_start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
            nonlocal status
            status = s
            return start_response(s, headers, exc_info)

        body = self.app(environ, wrapped_start_response)
        time.perf_counter() - started
        return body


class PrometheusClientMiddleware:
    """The usual hand-written middleware on prometheus_client, with last9's labels."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.histogram = Histogram(
            "http_requests_duration_milliseconds",
            "HTTP requests duration per path",
            ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"],
            buckets=BUCKETS_MS,
            registry=CollectorRegistry(),
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        status = ["500"]

        def wrapped_start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = s[:3]
            return start_response(s, headers, exc_info)

        body = self.app(environ, wrapped_start_response)
        self.histogram.labels(
            environ["PATH_INFO"],
            "box",
            environ.get("HTTP_HOST", ""),
            environ["REQUEST_METHOD"],
            "bench",
            status[0],
            "",
            "",
        ).observe((time.perf_counter() - started) * 1000)
        return body


def candidates() -> Candidates:
    def calling(app: Any) -> Callable[[], object]:
        return lambda: app(ENVIRON, start_response)

    return {
        "bare app": lambda: calling(trivial_app),
        "Python pass-through (records nothing)": lambda: calling(PassThrough(trivial_app)),
        "last9 RedMiddleware": lambda: calling(
            RedMiddleware(trivial_app, registry=last9.Registry(), program="bench")
        ),
        "prometheus_client middleware": lambda: calling(PrometheusClientMiddleware(trivial_app)),
        EXCLUDED: lambda: calling(
            RedMiddleware(
                trivial_app, registry=last9.Registry(), program="bench", exclude=["^/user/"]
            )
        ),
    }


#: The same middleware, for a request that `exclude` leaves out as it enters (a regular
#: expression on the raw path: the trivial app has no router).
EXCLUDED = "last9, request left out by exclude"


def run() -> list[Row]:
    ours, floor = "last9 RedMiddleware", "Python pass-through (records nothing)"
    added, described, instructions = overheads_of(
        "bench_wsgi:candidates", "bare app", counted=[ours, floor], calls=100_000, rounds=9
    )
    excluded_ratio = added[EXCLUDED] / added[ours]
    bench = "WSGI overhead, trivial app"
    ratio = added[ours] / added[floor]
    rows = [
        overhead(bench, name, described[name], ns, instructions=instructions.get(name, ""))
        for name, ns in added.items()
    ]
    rows.append(
        Row(
            bench,
            "last9 ÷ pass-through",
            f"{ratio:.2f}×",
            "≤ 1.0× (recording costs no more than doing nothing in Python)",
            ratio <= 1.0,
        )
    )
    rows.append(
        Row(
            bench,
            "excluded request ÷ recorded request",
            f"{excluded_ratio:.2f}×",
            "< 1.0× (leaving a request out costs less than recording it)",
            excluded_ratio < 1.0,
        )
    )
    return rows
