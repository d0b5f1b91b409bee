"""Falcon's own hook: a middleware component that records each request, for WSGI
(``falcon.App``) and ASGI (``falcon.asgi.App``) apps alike::

    import last9.falcon

    app = falcon.App(middleware=[last9.falcon.Middleware()])

The template is ``req.uri_template``. ``RedMiddleware(app)`` (see
:mod:`last9.frameworks.falcon`) is the other way, and the one that also times a streamed body.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from last9 import config, scrape
from last9._core import Registry
from last9.setup import instrument_app

#: Environ (WSGI) or scope (ASGI) key the start of a request is kept under.
_STARTED_KEY = "last9.falcon.started"


class Middleware:
    """A Falcon middleware component, for WSGI and ASGI apps alike.

    List it first: a request that an earlier component answers or refuses in its
    ``process_request`` never reaches this one's, and is not counted. It times from
    ``process_request`` to ``process_response`` (so not a body streamed after), and counts
    requests answered by a sink or a static route under ``/unmatched``, as a component cannot
    see the app; ``RedMiddleware(app)`` has none of these limits. Keyword arguments are those
    of :class:`last9.wsgi.middleware.RedMiddleware`.
    """

    def __init__(
        self,
        *,
        program: str | None = None,
        hostname: str | None = None,
        tenant: str | None = None,
        cluster: str | None = None,
        buckets: Sequence[float] | None = None,
        metrics_path: Any = config.UNSET,
        max_routes: int | None = None,
        max_domains: int | None = None,
        metrics_username: str | None = None,
        metrics_password: str | None = None,
        metrics_bearer_token: str | None = None,
        domains: Sequence[str] | None = None,
        registry: Registry | None = None,
    ) -> None:
        app_setup = instrument_app(
            route_syntax="brace",
            registry=registry,
            program=program,
            hostname=hostname,
            tenant=tenant,
            cluster=cluster,
            buckets=buckets,
            metrics_path=metrics_path,
            max_routes=max_routes,
            max_domains=max_domains,
            metrics_username=metrics_username,
            metrics_password=metrics_password,
            metrics_bearer_token=metrics_bearer_token,
            domains=domains,
        )
        self.registry, self.recorder = app_setup.registry, app_setup.recorder
        self.metrics = app_setup.metrics
        self.metrics_path = app_setup.settings.metrics_path

    def process_request(self, req: Any, resp: Any) -> None:
        if req.path == self.metrics_path and req.method in ("GET", "HEAD"):
            _answer(resp, self.metrics.respond(*_scrape_headers(req)))
        else:
            req.env[_STARTED_KEY] = time.perf_counter_ns()

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        env = req.env
        started = env.pop(_STARTED_KEY, None)
        if started is not None:
            host = env.get("HTTP_HOST") or env.get("SERVER_NAME")
            status = _status_code(resp.status)
            elapsed = time.perf_counter_ns() - started
            self.recorder.observe(req.uri_template, "", host, req.method, status, elapsed)

    async def process_request_async(self, req: Any, resp: Any) -> None:
        if req.path == self.metrics_path and req.method in ("GET", "HEAD"):
            # Rendered in a worker thread: the event loop goes on serving meanwhile.
            _answer(resp, await scrape.respond_async(self.metrics, *_scrape_headers(req)))
        else:
            req.scope[_STARTED_KEY] = time.perf_counter_ns()

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        scope = req.scope
        started = scope.pop(_STARTED_KEY, None)
        if started is not None:
            status = _status_code(resp.status)
            elapsed = time.perf_counter_ns() - started
            self.recorder.observe_scope(req.uri_template, scope, status, elapsed)


def _scrape_headers(req: Any) -> tuple[str | None, str | None, str | None]:
    """``MetricsEndpoint.respond``'s arguments (Falcon itself drops the body of a HEAD)."""
    return (
        req.get_header("Authorization"),
        req.get_header("Accept"),
        req.get_header("Accept-Encoding"),
    )


def _answer(resp: Any, answer: tuple[int, list[tuple[str, str]], bytes]) -> None:
    """Sets the scrape's answer and skips the app's responder (a 401 never reaches it)."""
    status, headers, body = answer
    resp.status = status
    for name, value in headers:
        if name != "Content-Length":  # Falcon counts the body itself
            resp.set_header(name, value)
    resp.data = body
    resp.complete = True


def _status_code(status: Any) -> int:
    if status.__class__ is int:
        return status
    return sys.modules["falcon"].http_status_to_code(status)  # "200 OK", HTTPStatus
