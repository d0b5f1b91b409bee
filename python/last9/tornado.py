"""RED metrics for Tornado apps, which run on Tornado's own server rather than WSGI or ASGI.

``instrument(app)`` hooks a ``tornado.web.Application`` in place and returns it::

    app = last9.tornado.instrument(tornado.web.Application([...]))

(``RedMiddleware(app)`` from ``last9.wsgi.middleware`` does the same), or build the app as a
``RedApplication``. Each request is recorded from ``Application.log_request``, which Tornado
calls once per response, just after writing its end: the status sent, the time since the
request's headers arrived, and the template of the rule that routed it. The route is resolved as
Tornado routes the request (``Application.get_handler_delegate``) and left on the request, and
Tornado's delegate class, taught once per process, runs the handler of such a request in
``http_requests_in_flight`` and, with lineage on, with outbound calls going under its route, as
with the WSGI and ASGI middlewares. ``/metrics`` is answered by a rule put in front of the
app's own (GET and HEAD only); scrapes are not counted.

Routing leaves no trace on the handler, so the rule tree is read once: a handler class that one
rule routes to gives its template by a dict lookup; a class several rules share (StaticFileHandler,
RedirectHandler, the 404 ErrorHandler, ``default_handler_class``) is matched again against the
matchers on the way to each of its rules, as Tornado did. Nested routers and nested
Applications are walked; their rules match the whole path, so the innermost ``PathMatches``
pattern is the template. Patterns are regular expressions, converted in Rust (syntax "regex").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado.routing import Matcher, Rule

from last9 import config, lineage, scrape
from last9._core import MetricsEndpoint, Recorder, Registry, lineage_enabled
from last9.setup import instrument_app, switched_off
from last9.views import is_excluded

if TYPE_CHECKING:
    from typing_extensions import Unpack

_SCRAPE_METHODS = ("GET", "HEAD")
#: What a chain of matchers from the root router down to a rule stands for in ``per``.
ROUTE_SYNTAX = "regex"
#: The template of a rule that no ``PathMatches`` guards (it serves every path).
ANY_PATH = "/(?P<path>.*)"
#: Returned by :meth:`RouteTable.route_of` for requests that are not recorded (scrapes).
SKIP = object()

Chain = tuple[tuple[Any, ...], str]


class _ScrapeHandler(tornado.web.RequestHandler):
    """What the metrics and live page handlers share: GET and HEAD only, no ETag, and a reply
    made in a worker thread so the IOLoop goes on serving meanwhile."""

    SUPPORTED_METHODS = _SCRAPE_METHODS

    def initialize(self, metrics: MetricsEndpoint) -> None:
        self.metrics = metrics

    def compute_etag(self) -> None:
        return None

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.set_status(status)
        for name, value in headers:
            self.set_header(name, value)
        self.write(body)


class MetricsHandler(_ScrapeHandler):
    """Answers a scrape with the registry's exposition (format and gzip from the headers); 401
    to a scrape without the credentials the endpoint asks for."""

    async def get(self) -> None:
        headers = self.request.headers
        self.reply(
            *await scrape.respond_async(
                self.metrics,
                headers.get("Authorization"),
                headers.get("Accept"),
                headers.get("Accept-Encoding"),
                head=self.request.method == "HEAD",
            )
        )

    head = get


class LivePageHandler(_ScrapeHandler):
    """``<metrics_path>/ui`` and ``<metrics_path>/ui/data.json``: the live page (``ui``),
    protected like the metrics."""

    async def get(self) -> None:
        data = self.metrics.ui_route(self.request.path)
        self.reply(
            *await scrape.respond_ui_async(
                self.metrics,
                self.request.headers.get("Authorization"),
                bool(data),
                head=self.request.method == "HEAD",
            )
        )

    head = get


class _LivePageMatches(Matcher):
    """A GET or HEAD of the live page or its data under the metrics path."""

    def __init__(self, metrics: MetricsEndpoint) -> None:
        self.metrics = metrics

    def match(self, request: Any) -> dict[str, Any] | None:
        if request.method in _SCRAPE_METHODS and self.metrics.ui_route(request.path) is not None:
            return {}
        return None


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
    registry: Registry | None = None,
    **options: Unpack[config.Options],
) -> tornado.web.Application:
    """Records every request of ``app`` (and of Applications nested in it); returns ``app``.

    Keyword arguments are the settings (:class:`last9.config.Options`) and the registry, as for
    :class:`last9.wsgi.middleware.RedMiddleware`. Instrumenting an app again replaces the
    earlier instrumentation.
    """
    if switched_off(dict(options)):
        return app
    module = type(app).__module__.partition(".")[0]
    app_setup = instrument_app(
        route_syntax=ROUTE_SYNTAX,
        program_hint=None if module in ("tornado", "last9") else module,
        registry=registry,
        excluded_views=lambda: _excluded_views(app),
        framework="tornado",
        **options,
    )
    recorder, metrics = app_setup.recorder, app_setup.metrics
    scrape.warn_if_shadowed(metrics, lambda path: route_at(app, path))
    rules = app.default_router.rules
    ours = (_ScrapeMatches, _LivePageMatches)
    rules[:] = [r for r in rules if not isinstance(r.matcher, ours)]
    if metrics is not None:
        rules.insert(0, Rule(_ScrapeMatches(metrics.path), MetricsHandler, {"metrics": metrics}))
        if app_setup.settings.ui:
            live = Rule(_LivePageMatches(metrics), LivePageHandler, {"metrics": metrics})
            rules.insert(1, live)

    recording = _Recording(recorder)

    def hook(target: tornado.web.Application) -> None:
        # Wraps the app's own methods, not an earlier instrument()'s hooks.
        own = target.__dict__.get("_last9_own")
        if own is None:
            own = target._last9_own = (target.get_handler_delegate, target.log_request)  # type: ignore[attr-defined]
        target.get_handler_delegate = recording.delegating(own[0], table)  # type: ignore[method-assign]
        target.log_request = recording.logging(own[1], table)  # type: ignore[method-assign]

    table = RouteTable(app, frozenset({MetricsHandler, LivePageHandler}), on_app=hook)
    table.rebuild()
    hook(app)
    return app


def _excluded_views(app: tornado.web.Application) -> list[str]:
    """Templates of the handlers (classes) that carry ``@last9.exclude``."""
    table = RouteTable(app, frozenset({MetricsHandler}))
    table.rebuild()
    return [template for handler, template in table.unique.items() if is_excluded(handler)]


#: Attributes a routed request carries: ``(recording, route)``, and its in-flight token while
#: in flight.
_FLIGHT, _TOKEN = "_last9_flight", "_last9_token"


class _Recording:
    """The hooks one ``instrument()`` puts on each Application under it, and what
    ``last9.lineage`` asks about the request running (``recorder``, ``observe_client``).

    A request is routed (``get_handler_delegate``: its route is resolved), its handler runs
    (the delegate's ``execute``), then Tornado logs it (``log_request``: it is recorded) once
    the response has ended. It is in flight from the start of its handler until it is logged
    or its client goes away; outbound calls made meanwhile (lineage on) go under its route.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.observe_client = recorder.observe_client
        _teach_tornados_delegate()

    def delegating(self, get_handler_delegate: Any, table: RouteTable) -> Any:
        """``Application.get_handler_delegate`` that resolves the request's route and leaves it,
        with this recording, on the request for Tornado's delegate and ``log_request``."""
        excluding, excluded = self.recorder.excluding, self.recorder.excluded
        unique, route_of = table.unique, table.route_of

        def get_handler_delegate_routed(
            request: Any,
            target_class: Any,
            target_kwargs: Any = None,
            path_args: Any = None,
            path_kwargs: Any = None,
        ) -> Any:
            delegate = get_handler_delegate(
                request, target_class, target_kwargs, path_args, path_kwargs
            )
            try:
                route = unique.get(target_class)
                if route is None:
                    route = route_of(target_class, request)
                if route is not SKIP and not (excluding and excluded(request.method, request.path)):
                    request._last9_flight = (self, route)
            except Exception:
                _log_failure_once()
            return delegate

        return get_handler_delegate_routed

    def logging(self, log: Any, table: RouteTable) -> Any:
        """``Application.log_request`` that records the request, then logs it as before."""
        recorder = self.recorder
        observe = recorder.observe_tornado
        excluding, excluded = recorder.excluding, recorder.excluded

        def log_request(handler: tornado.web.RequestHandler) -> None:
            try:
                request = handler.request
                attributes = request.__dict__
                flight = attributes.get(_FLIGHT)
                if flight is not None:
                    route = flight[1]
                    token = attributes.pop(_TOKEN, None)
                    if token is not None:
                        flight[0].recorder.leave(token)
                    observe(route, handler)
                    if lineage_enabled():
                        headers = request.headers
                        caller = headers.get(lineage.CALLER_HEADER) or headers.get(
                            lineage.ENVOY_CALLER_HEADER
                        )
                        recorder.count_caller(route, caller, handler.get_status())
                else:  # a handler this app's routing did not make, or a skipped request
                    route = table.route_of(handler.__class__, request)
                    if route is not SKIP and not (
                        excluding and excluded(request.method, request.path)
                    ):
                        observe(route, handler)
            except Exception:
                _log_failure_once()
            log(handler)

        return log_request


def _teach_tornados_delegate() -> None:
    """Once per process, Tornado's delegate (``_HandlerDelegate``, which
    ``Application.get_handler_delegate`` has made since Tornado 4.5) runs the handler of a
    request an instrumented app routed in flight and, with lineage on, with the request
    published to outbound clients; the handler's task copies the context as ``execute``
    creates it, and the connection's own context is left as it was. Other requests cost it
    one dict lookup. (Patched on the class: swapping each delegate's class, or wrapping its
    method, costs more per request, and a wrapped method ties it in a reference cycle.)

    A client that goes away ends the flight of a handler that may never finish: one streaming
    the request body (``on_connection_close``), or any other (the connection's close callback,
    which the handler set and ``finish()`` clears).
    """
    delegate_class = tornado.web._HandlerDelegate
    if "_last9_client_left" in delegate_class.__dict__:
        return
    execute, on_connection_close = delegate_class.execute, delegate_class.on_connection_close

    def execute_in_flight(self: Any) -> Any:
        request = self.request
        flight = request.__dict__.get(_FLIGHT)
        if flight is None:
            return execute(self)
        recording, route = flight
        request._last9_token = recording.recorder.enter(request.method)
        published = lineage_enabled() and lineage.publish(recording, route)
        try:
            started = execute(self)
        except BaseException:
            _land(request)
            raise
        finally:
            if published:
                lineage.unpublish(published)
        try:
            if not self.handler._finished:
                request.connection.set_close_callback(self._last9_client_left)
        except Exception:
            _log_failure_once()
        return started

    def on_connection_close_in_flight(self: Any) -> None:
        _land(self.request)
        on_connection_close(self)

    def client_left(self: Any) -> None:
        _land(self.request)
        self.handler.on_connection_close()

    delegate_class.execute = execute_in_flight
    delegate_class.on_connection_close = on_connection_close_in_flight
    delegate_class._last9_client_left = client_left


def _land(request: Any) -> None:
    """Out of flight, once however the request ends."""
    attributes = request.__dict__
    token = attributes.pop(_TOKEN, None)
    if token is not None:
        attributes[_FLIGHT][0].recorder.leave(token)


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


# --- The route table: handler class -> template --------------------------------------------


def owns(app: Any) -> bool:
    """Whether ``RedMiddleware(app)`` should hand `app` to :func:`instrument`."""
    return isinstance(app, tornado.web.Application)


class RouteTable:
    """Handler class → route template, for the rule tree under one Application.

    ``unique`` is the fast path; :meth:`route_of` handles everything else. :meth:`rebuild`
    reads the tree and calls ``on_app`` with each nested Application found, since their
    handlers log to them, not to the root.
    """

    def __init__(
        self, app: Any, skip: frozenset[type], on_app: Callable[[Any], None] | None = None
    ) -> None:
        self.app = app
        self.skip = skip
        self.on_app = on_app
        self.unique: dict[type, str] = {}
        self.candidates: dict[type, list[Chain]] = {}
        self.ignored: set[type] = set(skip)
        self.unrouted: set[type] = set()

    def rebuild(self) -> None:
        web, routing = sys.modules["tornado.web"], sys.modules["tornado.routing"]
        found: dict[type, list[Chain]] = {}
        shared = {web.ErrorHandler}  # classes Tornado also uses when no rule matched
        seen: set[int] = set()

        def walk_app(app: Any, chain: tuple[Any, ...]) -> None:
            if app is not self.app and self.on_app is not None:
                self.on_app(app)
            if app.settings.get("default_handler_class"):
                shared.add(app.settings["default_handler_class"])
            walk(app.default_router, chain)

        def walk(router: Any, chain: tuple[Any, ...]) -> None:
            if id(router) in seen:
                return
            seen.add(id(router))
            for rule in router.rules:
                target, matcher = rule.target, rule.matcher
                link = chain if isinstance(matcher, routing.AnyMatches) else (*chain, matcher)
                if isinstance(target, type) and issubclass(target, web.RequestHandler):
                    found.setdefault(target, []).append((link, _template(link, routing)))
                elif isinstance(target, web.Application):
                    walk_app(target, link)
                elif isinstance(getattr(target, "rules", None), list):
                    walk(target, link)

        walk_app(self.app, ())
        websocket = sys.modules.get("tornado.websocket")
        unique = {}
        for cls, chains in found.items():
            if cls in self.skip or (websocket and issubclass(cls, websocket.WebSocketHandler)):
                self.ignored.add(cls)  # websocket upgrades are not HTTP requests, as for ASGI
            elif len(chains) == 1 and cls not in shared:
                unique[cls] = chains[0][1]
        for cls in shared:
            found.setdefault(cls, [])
        self.candidates = found
        self.unique.clear()
        self.unique.update(unique)
        self.unrouted.clear()

    def route_of(self, cls: type, request: Any) -> Any:
        """The template (None: no rule matched, SKIP: not recorded) of a handler class not in
        ``unique``, serving `request`."""
        chains = self.candidates.get(cls)
        if chains is None and cls not in self.unrouted:
            self.rebuild()  # routes may have been added since the table was built
            if cls in self.unique:
                return self.unique[cls]
            chains = self.candidates.get(cls)
            if chains is None:
                self.unrouted.add(cls)
        if cls in self.ignored:
            return SKIP
        if chains is None:
            return None
        for matchers, template in chains:
            if all(matcher.match(request) is not None for matcher in matchers):
                return template
        return None


def _template(chain: tuple[Any, ...], routing: Any) -> str:
    for matcher in reversed(chain):
        if isinstance(matcher, routing.PathMatches):
            return matcher.regex.pattern
    return ANY_PATH
