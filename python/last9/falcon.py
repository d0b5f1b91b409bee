"""Falcon's own hook: a middleware component that records each request, for WSGI
(``falcon.App``) and ASGI (``falcon.asgi.App``) apps alike::

    import last9.falcon

    app = falcon.App(middleware=[last9.falcon.Middleware()])

The template is ``req.uri_template``. ``RedMiddleware(app)`` from ``last9.wsgi.middleware`` (or
the ASGI one) is the other way, and the one that also times a streamed body: it wraps the app's
router search so the template the router returns with its match is left in the environ (or
scope) as routing happens; a sink or a static route that answers instead is named by its prefix
(``/proxy/{path}``, regex groups as ``{name}``).
"""

from __future__ import annotations

import operator
import sys
import time
from typing import TYPE_CHECKING, Any

from last9 import config, lineage, scrape
from last9._adapter import Adapter
from last9._core import Registry, route_template
from last9.setup import instrument_app, switched_off
from last9.views import is_excluded

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Environ (WSGI) or scope (ASGI) key the template is left under (``RedMiddleware(app)``).
ROUTE_KEY = "last9.falcon.route"
#: Environ (WSGI) or scope (ASGI) key the start of a request and its in-flight token are kept
#: under.
_STARTED_KEY = "last9.falcon.started"


class Middleware:
    """A Falcon middleware component, for WSGI and ASGI apps alike.

    Switched off (``LAST9_DISABLED=1``, ``enabled=False``) it is a component that does nothing:
    Falcon needs at least one method, so a WSGI app calls an empty ``process_request``.

    List it first: a request that an earlier component answers or refuses in its
    ``process_request`` never reaches this one's, and is not counted. It times from
    ``process_request`` to ``process_response`` (so not a body streamed after), and counts
    requests answered by a sink or a static route under ``/unmatched``, as a component cannot
    see the app; ``RedMiddleware(app)`` has none of these limits. Keyword arguments are those
    of :class:`last9.wsgi.middleware.RedMiddleware`.
    """

    def __new__(cls, *, registry: Registry | None = None, **options: Unpack[config.Options]) -> Any:
        if switched_off(dict(options)):
            return _SwitchedOff()
        return super().__new__(cls)

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        **options: Unpack[config.Options],
    ) -> None:
        app_setup = instrument_app(
            route_syntax="brace",
            registry=registry,
            framework="falcon",
            **options,
        )
        self.registry, self.recorder = app_setup.registry, app_setup.recorder
        self.excluding = self.recorder.excluding
        self.metrics = app_setup.metrics
        self.metrics_path = app_setup.settings.metrics_path
        #: Whether `<metrics_path>/ui` answers with the live page (``ui``, ``LAST9_UI``).
        self.ui = self.metrics is not None and app_setup.settings.ui
        #: Whether responders set a request label (``request_labels``): each request gets a holder.
        self.labelled = app_setup.settings.request_label is not None

    def process_request(self, req: Any, resp: Any) -> None:
        if req.path == self.metrics_path and req.method in ("GET", "HEAD"):
            _answer(resp, self.metrics.respond(*_scrape_headers(req)))
        elif self.ui and (ui := _ui_request(self.metrics, req)) is not None:
            _answer(resp, self.metrics.respond_ui(*ui))
        elif not (self.excluding and self.recorder.excluded(req.method, req.path)):
            if self.labelled:
                self.recorder.begin_request(req.env)
            token = lineage.begin(self, req, self.recorder, req.method)
            req.env[_STARTED_KEY] = (time.perf_counter_ns(), token)

    def process_response(self, req: Any, resp: Any, resource: Any, req_succeeded: bool) -> None:
        env = req.env
        entered = env.pop(_STARTED_KEY, None)
        if entered is not None:
            started, token = entered
            status = _status_code(resp.status)
            elapsed = time.perf_counter_ns() - started
            caller = env.get("HTTP_X_LAST9_CALLER") or env.get(
                "HTTP_X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER"
            )
            lineage.end(self.recorder, token, req.uri_template, caller, status)
            # Host, method and the request label are read from the environ, in Rust.
            self.recorder.observe_environ(req.uri_template, env, status, elapsed)

    async def process_request_async(self, req: Any, resp: Any) -> None:
        if req.path == self.metrics_path and req.method in ("GET", "HEAD"):
            # Rendered in a worker thread: the event loop goes on serving meanwhile.
            _answer(resp, await scrape.respond_async(self.metrics, *_scrape_headers(req)))
        elif self.ui and (ui := _ui_request(self.metrics, req)) is not None:
            _answer(resp, await scrape.respond_ui_async(self.metrics, *ui))
        elif not (self.excluding and self.recorder.excluded(req.method, req.path)):
            if self.labelled:
                self.recorder.begin_request(req.scope)
            token = lineage.begin(self, req, self.recorder, req.method)
            req.scope[_STARTED_KEY] = (time.perf_counter_ns(), token)

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        scope = req.scope
        entered = scope.pop(_STARTED_KEY, None)
        if entered is not None:
            started, token = entered
            status = _status_code(resp.status)
            elapsed = time.perf_counter_ns() - started
            caller = req.get_header("X-Last9-Caller") or req.get_header(
                "X-Envoy-Downstream-Service-Cluster"
            )
            lineage.end(self.recorder, token, req.uri_template, caller, status)
            self.recorder.observe_scope(req.uri_template, scope, status, elapsed)

    def observe_client(
        self, req: Any, upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """An outbound call made while `req` runs (lineage; called by `last9.lineage`)."""
        self.recorder.observe_client(req.uri_template, upstream, method, status, duration_ns)


class _SwitchedOff:
    """What ``Middleware()`` is when last9 is switched off: Falcon refuses a component without
    methods, so this one has an empty ``process_request``."""

    def process_request(self, req: Any, resp: Any) -> None:
        pass

    async def process_request_async(self, req: Any, resp: Any) -> None:
        pass


def _scrape_headers(req: Any) -> tuple[str | None, str | None, str | None]:
    """``MetricsEndpoint.respond``'s arguments (Falcon itself drops the body of a HEAD)."""
    return (
        req.get_header("Authorization"),
        req.get_header("Accept"),
        req.get_header("Accept-Encoding"),
    )


def _ui_request(metrics: Any, req: Any) -> tuple[str | None, bool, bool] | None:
    """``respond_ui``'s arguments when the request asks for the live page or its data."""
    if req.method not in ("GET", "HEAD"):
        return None
    data = metrics.ui_route(req.path)
    if data is None:
        return None
    return req.get_header("Authorization"), data, req.method == "HEAD"


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


# --- The adapter: RedMiddleware(app) --------------------------------------------------------


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
        app=app,
        route_syntax="brace",
        route_getter=operator.methodcaller("get", ROUTE_KEY),
        route_at=lambda path: _route_at(app, path),
        excluded_views=lambda: _excluded_views(app),
    )


def _excluded_views(app: Any) -> list[str]:
    """Templates of the compiled router whose resource (or its class) is ``@last9.exclude``."""
    found: list[str] = []
    nodes = list(getattr(app._router, "_roots", ()))
    while nodes and len(found) < 10_000:
        node = nodes.pop()
        resource = getattr(node, "resource", None)
        if resource is not None and (is_excluded(resource) or is_excluded(type(resource))):
            found.append(node.uri_template)
        nodes.extend(getattr(node, "children", ()))
    return found


def _route_at(app: Any, path: str) -> str | None:
    """The URI template of the app's own resource at ``path``, if any."""
    found = app._router.find(path)
    return None if found is None else repr(found[3])


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
