"""The seed's Flask app: per-request overhead of last9 vs prometheus-flask-exporter.

Both instrument the same app (the seed's routes, without its one-second sleep), called
in-process through WSGI with a prepared environ, so only the instrumentation differs.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry

import last9
from harness import Row, compare, paired_overheads, us
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


def run() -> list[Row]:
    from prometheus_flask_exporter import PrometheusMetrics

    bare = seed_app("bare")
    ours = seed_app("last9")
    ours.wsgi_app = RedMiddleware(ours, registry=last9.Registry())
    exporter = seed_app("exporter")
    PrometheusMetrics(exporter, registry=CollectorRegistry())

    candidates = {
        "bare Flask": lambda: request(bare),
        "last9 RedMiddleware": lambda: request(ours),
        "prometheus-flask-exporter": lambda: request(exporter),
    }
    added = paired_overheads(
        compare(candidates, calls=20_000, clock=time.thread_time_ns), "bare Flask"
    )
    ours_ns, theirs_ns = added["last9 RedMiddleware"], added["prometheus-flask-exporter"]
    bench = "Flask seed app, overhead per request"
    return [
        Row(bench, "last9 RedMiddleware", us(ours_ns), "≤ 2 µs", ours_ns <= 2000),
        Row(bench, "prometheus-flask-exporter", us(theirs_ns)),
        Row(
            bench,
            "exporter ÷ last9",
            f"{theirs_ns / ours_ns:.0f}×",
            "≥ 20×",
            theirs_ns / ours_ns >= 20,
        ),
    ]
