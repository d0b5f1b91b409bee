"""RED metrics for Tornado apps, which run on Tornado's own server rather than WSGI or ASGI.

``instrument(app)`` hooks a ``tornado.web.Application`` in place and returns it::

    app = last9.tornado.instrument(tornado.web.Application([...]))

(``RedMiddleware(app)`` from ``last9.wsgi.middleware`` does the same), or build the app as a
``RedApplication``. Each request is recorded from ``Application.log_request``, which Tornado
calls once per response, just after writing its end: the status sent, the time since the
request's headers arrived, and the template of the rule that routed it. ``/metrics`` is answered
by a rule put in front of the app's own (GET and HEAD only); scrapes are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tornado.web
from tornado.routing import Matcher, Rule

from last9 import config, scrape
from last9._core import MetricsEndpoint, Recorder, Registry
from last9.frameworks.tornado import ROUTE_SYNTAX, SKIP, RouteTable
from last9.setup import instrument_app

_SCRAPE_METHODS = ("GET", "HEAD")


class MetricsHandler(tornado.web.RequestHandler):
    """Answers a scrape with the registry's exposition (format and gzip from the headers),
    rendered in a worker thread so the IOLoop goes on serving meanwhile; 401 to a scrape
    without the credentials the endpoint asks for."""

    SUPPORTED_METHODS = _SCRAPE_METHODS

    def initialize(self, metrics: MetricsEndpoint) -> None:
        self.metrics = metrics

    def compute_etag(self) -> None:
        return None

    async def get(self) -> None:
        headers = self.request.headers
        status, response_headers, body = await scrape.respond_async(
            self.metrics,
            headers.get("Authorization"),
            headers.get("Accept"),
            headers.get("Accept-Encoding"),
            head=self.request.method == "HEAD",
        )
        self.set_status(status)
        for name, value in response_headers:
            self.set_header(name, value)
        self.write(body)

    head = get


class _ScrapeMatches(Matcher):
    """A GET or HEAD of exactly the metrics path; anything else goes on to the app's rules."""

    def __init__(self, path: str) -> None:
        self.path = path

    def match(self, request: Any) -> dict[str, Any] | None:
        if request.path == self.path and request.method in _SCRAPE_METHODS:
            return {}
        return None


def instrument(
    app: tornado.web.Application,
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
) -> tornado.web.Application:
    """Records every request of ``app`` (and of Applications nested in it); returns ``app``.

    Keyword arguments are those of :class:`last9.wsgi.middleware.RedMiddleware`. Instrumenting
    an app again replaces the earlier instrumentation.
    """
    module = type(app).__module__.partition(".")[0]
    app_setup = instrument_app(
        route_syntax=ROUTE_SYNTAX,
        program_hint=None if module in ("tornado", "last9") else module,
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
    recorder, metrics = app_setup.recorder, app_setup.metrics
    scrape.warn_if_shadowed(metrics, lambda path: route_at(app, path))
    rules = app.default_router.rules
    rules[:] = [r for r in rules if not isinstance(r.matcher, _ScrapeMatches)]
    if metrics is not None:
        rules.insert(0, Rule(_ScrapeMatches(metrics.path), MetricsHandler, {"metrics": metrics}))

    def hook(target: tornado.web.Application) -> None:
        # Wraps the app's own log_request, not an earlier instrument()'s hook.
        log = target.__dict__.get("_last9_log_request") or target.log_request
        target._last9_log_request = log  # type: ignore[attr-defined]
        target.log_request = _log_request(log, recorder, table)  # type: ignore[method-assign]

    table = RouteTable(app, frozenset({MetricsHandler}), on_app=hook)
    table.rebuild()
    hook(app)
    return app


def _log_request(log: Any, recorder: Recorder, table: RouteTable) -> Any:
    """``Application.log_request`` that records the request, then logs it as before."""
    observe = recorder.observe_tornado
    unique = table.unique
    route_of = table.route_of

    def log_request(handler: tornado.web.RequestHandler) -> None:
        try:
            route = unique.get(handler.__class__)
            if route is None:
                route = route_of(handler)
            if route is not SKIP:
                observe(route, handler)
        except Exception:
            _log_failure_once()
        log(handler)

    return log_request


def route_at(app: tornado.web.Application, path: str) -> str | None:
    """The app's own handler a GET of ``path`` reaches, if any."""
    from tornado.httputil import HTTPServerRequest

    delegate = app.wildcard_router.find_handler(HTTPServerRequest(method="GET", uri=path))
    handler = getattr(delegate, "handler_class", None)
    return None if handler is None else handler.__qualname__


class RedApplication(tornado.web.Application):
    """A ``tornado.web.Application`` that instruments itself; ``last9_options`` are
    :func:`instrument`'s keyword arguments, the rest is Tornado's."""

    def __init__(
        self,
        handlers: Any = None,
        default_host: str | None = None,
        transforms: Any = None,
        *,
        last9_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(handlers, default_host, transforms, **settings)
        instrument(self, **(last9_options or {}))


_failure_logged = False


def _log_failure_once() -> None:
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        import logging

        logging.getLogger("last9").warning(
            "last9: could not record a Tornado request; it is not counted", exc_info=True
        )
