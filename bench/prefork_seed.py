"""The seed's Flask app without its sleep, for `gunicorn -w 2` under wrk (bench_prefork).

`BENCH_APP` picks the instrumentation: `bare` (none), `last9` (the seed's one line) or
`prometheus` (a prometheus_client middleware in multiprocess mode, the usual pre-fork set-up:
`PROMETHEUS_MULTIPROC_DIR` set before import, `MultiProcessCollector` on the scrape).
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask

app = Flask(__name__)


@app.route("/name/<name>")
def hello_world(name: str) -> str:
    return f"<p>Hello, {name}!</p>"


@app.route("/static")
def hello_static() -> str:
    return "<p>Static</p>"


class PrometheusMultiprocess:
    """A prometheus_client middleware with last9's labels, recording into mmap files."""

    def __init__(self, flask_app: Flask) -> None:
        from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess

        self.app = flask_app.wsgi_app
        self.histogram = Histogram(
            "http_requests_duration_milliseconds",
            "HTTP requests duration per path",
            ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"],
            buckets=[0.25 * 1.5**k for k in range(31)],
        )
        self.generate_latest = generate_latest
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/metrics":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [self.generate_latest(self.registry)]
        started = time.perf_counter()
        status = ["500"]

        def wrapped(s: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = s[:3]
            return start_response(s, headers, exc_info)

        body = self.app(environ, wrapped)
        rule = environ.get("werkzeug.request")
        self.histogram.labels(
            getattr(getattr(rule, "url_rule", None), "rule", "/unmatched"),
            "box",
            environ.get("HTTP_HOST", ""),
            environ["REQUEST_METHOD"],
            "seed",
            status[0],
            "",
            "",
        ).observe((time.perf_counter() - started) * 1000)
        return body


match os.environ.get("BENCH_APP", "bare"):
    case "last9":
        from last9.wsgi.middleware import RedMiddleware

        app.wsgi_app = RedMiddleware(app)
    case "prometheus":
        app.wsgi_app = PrometheusMultiprocess(app)
    case _:
        pass
