"""RED metrics for Django, the Django way: a ``MIDDLEWARE`` entry.

::

    MIDDLEWARE = ["last9.django.RedMiddleware", ...]  # first, so it times the others
    LAST9 = {"tenant": "acme", "cluster": "prod"}  # optional: RedMiddleware's keyword arguments

It serves ``/metrics`` and records each request with its route template (``/item/{pk}/``). It
works under WSGI and ASGI (sync and async capable). Wrapping the handler instead,
``RedMiddleware(get_wsgi_application())`` from ``last9.wsgi.middleware`` (or the ASGI one), needs
no settings; when both are in place the wrapper records and this middleware stands aside, so no
request is counted twice.

The wrapper's adapter: the handler's ``request_class`` gets a subclass whose ``resolver_match``
setter also writes the matched route into the request's environ (``META`` under WSGI) or ASGI
``scope``, where the middleware reads it once the response is done (WSGI: in Rust, through
``route_source``; ASGI: a C-level ``dict.get``), whatever Django has released. The route has the
``include()`` prefixes joined, and re_path() parts as regexes: the "django" route syntax converts
both. No route resolved: no key, ``/unmatched``. A view answering 405 has resolved its route,
which is kept.
"""

from __future__ import annotations

import asyncio
import operator
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from last9 import config, lineage, scrape
from last9._adapter import Adapter
from last9.asgi.middleware import CLIENT_CLOSED_REQUEST
from last9.setup import instrument_app, switched_off
from last9.views import is_excluded

__all__ = ["RedMiddleware"]

#: Environ (WSGI) or scope (ASGI) key holding the route the request resolved.
ROUTE_KEY = "last9.django.route"

#: Set on capturing request classes: the handler's wrapper records this request, so
#: ``last9.django.RedMiddleware`` in ``MIDDLEWARE`` leaves it alone rather than count it twice.
RECORDED_BY_HANDLER = "_last9_recorded_by_handler"

#: The ASGI getter: ``scope.get(ROUTE_KEY)``, with no Python frame.
_read_route = operator.methodcaller("get", ROUTE_KEY)

_SCRAPE_METHODS = ("GET", "HEAD")
_now = time.perf_counter_ns
#: Keys of ``settings.LAST9``: the keyword arguments of the WSGI and ASGI ``RedMiddleware``.
_OPTIONS = {*config.OPTION_NAMES, "registry"}


class RedMiddleware:
    """Records ``http_requests_duration_milliseconds`` for each request Django handles.

    Settings come from the optional ``LAST9`` dict, then ``LAST9_*`` environment variables; its
    keys are the keyword arguments of :class:`last9.wsgi.middleware.RedMiddleware`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        options = dict(getattr(settings, "LAST9", None) or {})
        unknown = options.keys() - _OPTIONS
        if unknown:
            raise ImproperlyConfigured(
                f"settings.LAST9 has unknown keys {sorted(unknown)}; known: {sorted(_OPTIONS)}"
            )
        if switched_off(options):
            raise MiddlewareNotUsed("last9 is switched off (LAST9_DISABLED / enabled=False)")
        app_setup = instrument_app(
            route_syntax="django",
            program_hint=program_hint(),
            excluded_views=excluded_views,
            framework="django",
            **options,
        )
        self.registry, self.recorder = app_setup.registry, app_setup.recorder
        self.excluding = self.recorder.excluding
        #: Whether a rendered response's size is passed on (``body_sizes``).
        self.body_sizes = app_setup.settings.body_sizes
        self.metrics = app_setup.metrics
        self.metrics_path = app_setup.settings.metrics_path
        #: Whether `<metrics_path>/ui` answers with the live page (``ui``, ``LAST9_UI``).
        self.ui = self.metrics is not None and app_setup.settings.ui
        #: Whether views set a request label (``request_labels``): each request gets a holder.
        self.labelled = app_setup.settings.request_label is not None
        scrape.warn_if_shadowed(self.metrics, route_at)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self._acall(request)
        if getattr(request, RECORDED_BY_HANDLER, False):
            return self.get_response(request)  # the handler's RedMiddleware records this one
        if self.excluding and self.recorder.excluded(request.method, request.path):
            return self.get_response(request)
        if request.path_info == self.metrics_path and request.method in _SCRAPE_METHODS:
            return _response(self.metrics.respond(*_scrape_headers(request)))
        if self.ui and (ui := self._ui_request(request)) is not None:
            return _response(self.metrics.respond_ui(*ui))
        started, token = self._begin(request)
        try:
            response = self.get_response(request)
        except BaseException:
            # Only reached with DEBUG_PROPAGATE_EXCEPTIONS: recorded, then re-raised as it was.
            self._record(request, 500, started, token)
            raise
        if response.streaming:
            self._record_when_closed(request, response, started, token)
        else:
            sent = _sent(response) if self.body_sizes else None
            self._record(request, response.status_code, started, token, sent)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if getattr(request, RECORDED_BY_HANDLER, False):
            return await get_response(request)
        if self.excluding and self.recorder.excluded(request.method, request.path):
            return await get_response(request)
        if request.path_info == self.metrics_path and request.method in _SCRAPE_METHODS:
            return _response(await scrape.respond_async(self.metrics, *_scrape_headers(request)))
        if self.ui and (ui := self._ui_request(request)) is not None:
            return _response(await scrape.respond_ui_async(self.metrics, *ui))
        started, token = self._begin(request)
        try:
            response = await get_response(request)
        except asyncio.CancelledError:
            # The client went away.
            self._record(request, CLIENT_CLOSED_REQUEST, started, token)
            raise
        except BaseException:
            self._record(request, 500, started, token)
            raise
        if response.streaming:
            self._record_when_closed(request, response, started, token)
        else:
            sent = _sent(response) if self.body_sizes else None
            self._record(request, response.status_code, started, token, sent)
        return response

    def _begin(self, request: HttpRequest) -> tuple[int, int]:
        """A recorded request starts: its start time and lineage token."""
        if self.labelled:
            self.recorder.begin_request(request.META)
        return _now(), lineage.begin(self, request, self.recorder, request.method)

    def _ui_request(self, request: HttpRequest) -> tuple[str | None, bool, bool] | None:
        """``respond_ui``'s arguments when the request asks for the live page or its data."""
        if request.method not in _SCRAPE_METHODS:
            return None
        data = self.metrics.ui_route(request.path_info)
        if data is None:
            return None
        return request.META.get("HTTP_AUTHORIZATION"), data, request.method == "HEAD"

    def _record_when_closed(
        self, request: HttpRequest, response: HttpResponseBase, started: int, token: int
    ) -> None:
        """A streamed body is timed until the server closes the response, as Django's handlers
        do for their own clean-up (`_resource_closers` is how they attach it)."""

        def record() -> None:
            self._record(request, response.status_code, started, token)

        response._resource_closers.append(record)

    def _record(
        self, request: HttpRequest, status: int, started: int, token: int, sent: int | None = None
    ) -> None:
        """`sent`: the response body's size in bytes, when known (``body_sizes``)."""
        elapsed = _now() - started
        route = _route(request)
        # META is the WSGI environ, or under ASGI a dict with the same keys.
        meta = request.META
        lineage.end(self.recorder, token, route, _caller(meta), status)
        self.recorder.observe_environ(route, meta, status, elapsed, sent)

    def observe_client(
        self, request: HttpRequest, upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """An outbound call made while `request` runs (lineage; called by `last9.lineage`)."""
        self.recorder.observe_client(_route(request), upstream, method, status, duration_ns)


def _sent(response: HttpResponseBase) -> int | None:
    """The size of a rendered (not streamed) response body."""
    content = getattr(response, "content", None)
    return len(content) if isinstance(content, bytes) else None


def _route(request: HttpRequest) -> str | None:
    match = request.resolver_match
    return None if match is None else match.route


def _caller(meta: dict[str, Any]) -> str | None:
    """Who called: an instrumented client's ``x-last9-caller``, else Envoy's header."""
    return meta.get("HTTP_X_LAST9_CALLER") or meta.get("HTTP_X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER")


def _scrape_headers(request: HttpRequest) -> tuple[str | None, str | None, str | None, bool]:
    """``MetricsEndpoint.respond``'s arguments: Authorization, Accept, Accept-Encoding, HEAD."""
    meta = request.META
    return (
        meta.get("HTTP_AUTHORIZATION"),
        meta.get("HTTP_ACCEPT"),
        meta.get("HTTP_ACCEPT_ENCODING"),
        request.method == "HEAD",
    )


def _response(answer: tuple[int, list[tuple[str, str]], bytes]) -> HttpResponse:
    status, headers, body = answer
    response = HttpResponse(body, status=status)
    for name, value in headers:
        response[name] = value  # Content-Length too: a HEAD's body is empty, its length is not
    return response


# --- The adapter: RedMiddleware(get_wsgi_application()) -------------------------------


def adapt(app: Any) -> Adapter | None:
    wsgi = sys.modules.get("django.core.handlers.wsgi")
    if wsgi is None or not isinstance(app, wsgi.WSGIHandler):
        return None
    _capture_routes(app, operator.attrgetter("META"))
    return _adapter(
        app,
        route_source=(ROUTE_KEY, ()),  # environ[ROUTE_KEY] itself, read in Rust
        # Rendered when returned (streaming responses are other classes): no body wrapper.
        complete_bodies=(sys.modules["django.http"].HttpResponse,),
    )


def adapt_asgi(app: Any) -> Adapter | None:
    asgi = sys.modules.get("django.core.handlers.asgi")
    if asgi is None or not isinstance(app, asgi.ASGIHandler):
        return None
    _capture_routes(app, operator.attrgetter("scope"))
    return _adapter(app, route_getter=_read_route)


def _adapter(app: Any, **route_reading: Any) -> Adapter:
    """What the WSGI and ASGI handlers share; `route_reading` says how each finds the route."""
    return Adapter(
        app=app,
        route_syntax="django",
        program_hint=program_hint(),
        route_at=route_at,
        excluded_views=excluded_views,
        **route_reading,
    )


def _capture_routes(handler: Any, carrier: Any) -> None:
    """`carrier(request)` is the dict the middleware will hand the getter: environ or scope."""
    base = handler.request_class
    if getattr(base, RECORDED_BY_HANDLER, False):
        return

    def set_resolver_match(request: Any, match: Any) -> None:
        request._last9_resolver_match = match
        if match is not None:
            carrier(request)[ROUTE_KEY] = getattr(match, "route", None)

    namespace = {
        RECORDED_BY_HANDLER: True,
        # Read through a C-level getter; only setting it (twice a request) runs Python.
        "resolver_match": property(
            operator.attrgetter("_last9_resolver_match"), set_resolver_match
        ),
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
    }
    handler.request_class = type(base.__name__, (base,), namespace)


def excluded_views() -> list[str]:
    """The routes (``resolver_match.route`` spelling) whose view carries ``@last9.exclude``."""
    from django.urls import URLPattern, URLResolver, get_resolver

    found: list[str] = []

    def walk(patterns: Any, prefix: str, depth: int) -> None:
        for entry in patterns:
            route = str(entry.pattern)
            # As Django joins them in `route`: a nested regex's leading "^" is dropped.
            joined = prefix + (route[1:] if prefix and route.startswith("^") else route)
            if isinstance(entry, URLPattern) and is_excluded(entry.callback):
                found.append(joined)
            elif isinstance(entry, URLResolver) and depth < 32:
                walk(entry.url_patterns, joined, depth + 1)

    walk(get_resolver().url_patterns, "", 0)
    return found


def program_hint() -> str | None:
    """The project's package: the top of the settings module (``mysite.settings`` → ``mysite``),
    else of ``ROOT_URLCONF``."""
    conf = sys.modules.get("django.conf")
    if conf is None:
        return None
    try:
        candidates = (conf.settings.SETTINGS_MODULE, conf.settings.ROOT_URLCONF)
    except Exception:  # settings not configured: no hint, not our error to raise
        return None
    for module in candidates:
        if isinstance(module, str) and "." in module:
            return module.partition(".")[0]
    return None


def route_at(path: str) -> str | None:
    """The URL pattern of the app's own that ``path`` resolves to, if any."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return None
    return f"{match.route!r} ({match.view_name})"
