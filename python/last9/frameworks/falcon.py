"""Falcon (``falcon.App`` over WSGI, ``falcon.asgi.App`` over ASGI): the template is the one the
router returns with its match (what Falcon then sets as ``req.uri_template``).

``RedMiddleware(app)`` wraps the app's router search so the template is left in the environ (or
scope) as routing happens; a sink or a static route that answers instead is named by its prefix
(``/proxy/{path}``, regex groups as ``{name}``). :class:`Middleware` is the Falcon-style
alternative: a middleware component that times from ``process_request`` to ``process_response``.
"""

from __future__ import annotations

import operator
import sys
import time
from collections.abc import Sequence
from typing import Any

from last9 import config, server
from last9._core import Recorder, Registry, global_registry, route_template
from last9.frameworks import Adapter

#: Environ (WSGI) or scope (ASGI) key the template is left under.
ROUTE_KEY = "last9.falcon.route"
_STARTED_KEY = "last9.falcon.started"


def adapt(app: Any) -> Adapter | None:
    # falcon.app.App rather than falcon.App, which instrumentations replace by a subclass.
    falcon_app = sys.modules.get("falcon.app")
    asgi = sys.modules.get("falcon.asgi")
    if falcon_app is None or not isinstance(app, falcon_app.App):
        return None
    if asgi is not None and isinstance(app, asgi.App):
        return None  # an ASGI app: see adapt_asgi
    return _adapter(app, "env")


def adapt_asgi(app: Any) -> Adapter | None:
    asgi = sys.modules.get("falcon.asgi")
    if asgi is None or not isinstance(app, asgi.App):
        return None
    return _adapter(app, "scope")


def _adapter(app: Any, where: str) -> Adapter:
    search = app._router_search
    if not getattr(search, "_last9", False):
        store = operator.attrgetter(where)

        def search_noting_template(path: str, req: Any = None) -> Any:
            route = search(path, req=req)
            if req is not None:
                if route is not None and len(route) > 3:
                    store(req)[ROUTE_KEY] = route[3]
                elif route is None and app._sink_and_static_routes:
                    store(req)[ROUTE_KEY] = sink_template(app, path)
            return route

        search_noting_template._last9 = True  # type: ignore[attr-defined]
        app._router_search = search_noting_template
    return Adapter(
        app=app, route_syntax="brace", route_getter=operator.methodcaller("get", ROUTE_KEY)
    )


def sink_template(app: Any, path: str) -> str | None:
    """The template of the sink or static route that `path` goes to, as Falcon picks it."""
    for matcher, _, is_sink in app._sink_and_static_routes:
        if not matcher.match(path):
            continue
        if not is_sink:  # a static route: its prefix ends in '/'
            return getattr(matcher, "_prefix", "/") + "{path}"
        pattern = getattr(matcher, "pattern", "/")
        anchored = pattern.endswith(("$", r"\Z", r"\z"))
        prefix = route_template(pattern, "regex")
        return prefix if anchored else prefix.rstrip("/") + "/{path}"
    return None


class Middleware:
    """A Falcon middleware component, for WSGI and ASGI apps alike::

        app = falcon.App(middleware=[last9.frameworks.falcon.Middleware()])

    Times from ``process_request`` to ``process_response`` (so not a body streamed after), and
    counts requests answered by a sink or a static route under ``/unmatched``, as the
    component cannot see the app; ``RedMiddleware(app)`` has neither limit. Keyword arguments
    are those of :class:`last9.wsgi.middleware.RedMiddleware`.
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
        registry: Registry | None = None,
    ) -> None:
        settings = config.resolve(
            program=program,
            hostname=hostname,
            tenant=tenant,
            cluster=cluster,
            buckets=buckets,
            metrics_path=metrics_path,
            max_routes=max_routes,
            max_domains=max_domains,
        )
        self.registry = registry = registry or global_registry()
        self.metrics_path = settings.metrics_path
        self.recorder = Recorder(
            registry,
            hostname=settings.hostname,
            program=settings.program,
            tenant=settings.tenant,
            cluster=settings.cluster,
            buckets=list(settings.buckets) if settings.buckets is not None else None,
            max_routes=settings.max_routes,
            max_domains=settings.max_domains,
            route_syntax="brace",
        )
        server.start_from_env(settings.metrics_port, settings.metrics_addr, registry)

    def process_request(self, req: Any, resp: Any) -> None:
        if req.path == self.metrics_path and req.method in ("GET", "HEAD"):
            self._serve_metrics(req, resp)
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
            self._serve_metrics(req, resp)
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

    def _serve_metrics(self, req: Any, resp: Any) -> None:
        accept, encoding = req.get_header("Accept"), req.get_header("Accept-Encoding")
        content_type, content_encoding, body = self.registry.scrape(accept, encoding)
        resp.content_type = content_type
        resp.data = body
        resp.set_header("Vary", "Accept, Accept-Encoding")
        if content_encoding is not None:
            resp.set_header("Content-Encoding", content_encoding)
        resp.complete = True


def _status_code(status: Any) -> int:
    if status.__class__ is int:
        return status
    return sys.modules["falcon"].http_status_to_code(status)  # "200 OK", HTTPStatus
