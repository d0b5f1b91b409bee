"""The seed's Flask app: per-request overhead of last9 vs prometheus-flask-exporter.

Both instrument the same app (the seed's routes, without its one-second sleep), called
in-process through WSGI with a prepared environ, so only the instrumentation differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry

import last9
from harness import Candidates, Row, overhead, overheads_of
from last9.wsgi.middleware import RedMiddleware

ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/name/ada",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "5000",
    "HTTP_HOST": "localhost:5000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "wsgi.url_scheme": "http",
    "wsgi.version": (1, 0),
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


#: The configured variants: exclusions (templates, a regular expression, a method) and
#: constant labels; and both namings (LAST9_SEMCONV=dup).
CONFIGURED = "last9, exclude + labels"
DUP = "last9, semconv=dup"
EXCLUDE = ["/healthz", "/static/{path}", "^/internal/", "OPTIONS"]
CONSTANT_LABELS = {"env": "prod", "version": "1.4.2"}


def seed_app(name: str) -> Flask:
    app = Flask(name)

    @app.route("/name/<name>")
    def hello_world(name: str) -> str:
        return f"<p>Hello, {name}!</p>"

    @app.route("/static")
    def hello_static() -> str:
        return "<p>Static</p>"

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


def candidates() -> Candidates:
    from prometheus_flask_exporter import PrometheusMetrics

    def bare() -> Callable[[], None]:
        app = seed_app("bare")
        return lambda: request(app)

    def ours() -> Callable[[], None]:
        app = seed_app("last9")
        app.wsgi_app = RedMiddleware(app, registry=last9.Registry())
        return lambda: request(app)

    def configured() -> Callable[[], None]:
        # What an operator typically sets: health checks and internal paths left out (none of
        # them is the benchmarked path, so the request still pays for the check), constant labels.
        app = seed_app("last9-configured")
        app.wsgi_app = RedMiddleware(
            app, registry=last9.Registry(), exclude=EXCLUDE, labels=CONSTANT_LABELS
        )
        return lambda: request(app)

    def dup() -> Callable[[], None]:
        # Both namings from one observation (its own registry; the naming of a scrape is
        # process-wide, the cost of a request is its recorder's).
        app = seed_app("last9-dup")
        app.wsgi_app = RedMiddleware(app, registry=last9.Registry(), semconv="dup")
        return lambda: request(app)

    def exporter() -> Callable[[], None]:
        app = seed_app("exporter")
        PrometheusMetrics(app, registry=CollectorRegistry())
        return lambda: request(app)

    return {
        "bare Flask": bare,
        "last9 RedMiddleware": ours,
        CONFIGURED: configured,
        DUP: dup,
        "prometheus-flask-exporter": exporter,
    }


def run() -> list[Row]:
    ours, theirs = "last9 RedMiddleware", "prometheus-flask-exporter"
    added, described, counts = overheads_of(
        "bench_flask:candidates",
        "bare Flask",
        counted=[ours, CONFIGURED, DUP, theirs],
        calls=5_000,
        rounds=15,
    )
    bench = "Flask seed app, overhead per request"
    ratio = added[theirs] / added[ours]
    return [
        overhead(
            bench,
            ours,
            described[ours],
            added[ours],
            "≤ 2 µs",
            added[ours] <= 2000,
            counts.get(ours, ""),
        ),
        *(
            overhead(
                bench,
                variant,
                described[variant],
                added[variant],
                "≤ 2 µs",
                added[variant] <= 2000,
                counts.get(variant, ""),
            )
            for variant in (CONFIGURED, DUP)
        ),
        overhead(
            bench, theirs, described[theirs], added[theirs], instructions=counts.get(theirs, "")
        ),
        Row(bench, "exporter ÷ last9", f"{ratio:.0f}×", "≥ 20×", ratio >= 20),
    ]
