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

from last9 import config
from last9._core import Recorder, Registry
from last9.frameworks.tornado import ROUTE_SYNTAX, SKIP, RouteTable
from last9.setup import instrument_app

_SCRAPE_METHODS = ("GET", "HEAD")


class MetricsHandler(tornado.web.RequestHandler):
    """Answers a scrape with the registry's exposition (format and gzip from the headers)."""

    SUPPORTED_METHODS = _SCRAPE_METHODS

    def initialize(self, registry: Registry) -> None:
        self.registry = registry

    def compute_etag(self) -> None:
        return None

    def get(self) -> None:
        headers = self.request.headers
        content_type, encoding, body = self.registry.scrape(
            headers.get("Accept"), headers.get("Accept-Encoding")
        )
        self.set_header("Content-Type", content_type)
        self.set_header("Vary", "Accept, Accept-Encoding")
        if encoding is not None:
            self.set_header("Content-Encoding", encoding)
        self.set_header("Content-Length", len(body))
        if self.request.method == "GET":
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
        domains=domains,
    )
    settings, registry, recorder = app_setup.settings, app_setup.registry, app_setup.recorder
    rules = app.default_router.rules
    rules[:] = [r for r in rules if not isinstance(r.matcher, _ScrapeMatches)]
    if settings.metrics_path is not None:
        scrape = Rule(_ScrapeMatches(settings.metrics_path), MetricsHandler, {"registry": registry})
        rules.insert(0, scrape)

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
