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
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from last9 import config, scrape
from last9._adapter import Adapter
from last9.asgi.middleware import CLIENT_CLOSED_REQUEST
from last9.setup import instrument_app

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
        app_setup = instrument_app(route_syntax="django", program_hint=program_hint(), **options)
        self.registry, self.recorder = app_setup.registry, app_setup.recorder
        self.metrics = app_setup.metrics
        self.metrics_path = app_setup.settings.metrics_path
        scrape.warn_if_shadowed(self.metrics, route_at)

    def __call__(self, request: HttpRequest) -> Any:
        if self._is_async:
            return self._acall(request)
        if getattr(request, RECORDED_BY_HANDLER, False):
            return self.get_response(request)  # the handler's RedMiddleware records this one
        if request.path_info == self.metrics_path and request.method in _SCRAPE_METHODS:
            return _response(self.metrics.respond(*_scrape_headers(request)))
        started = _now()
        try:
            response = self.get_response(request)
        except BaseException:
            # Only reached with DEBUG_PROPAGATE_EXCEPTIONS: recorded, then re-raised as it was.
            self._record(request, 500, started)
            raise
        if response.streaming:
            self._record_when_closed(request, response, started)
        else:
            self._record(request, response.status_code, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if getattr(request, RECORDED_BY_HANDLER, False):
            return await get_response(request)
        if request.path_info == self.metrics_path and request.method in _SCRAPE_METHODS:
            return _response(await scrape.respond_async(self.metrics, *_scrape_headers(request)))
        started = _now()
        try:
            response = await get_response(request)
        except asyncio.CancelledError:
            self._record(request, CLIENT_CLOSED_REQUEST, started)  # the client went away
            raise
        except BaseException:
            self._record(request, 500, started)
            raise
        if response.streaming:
            self._record_when_closed(request, response, started)
        else:
            self._record(request, response.status_code, started)
        return response

    def _record_when_closed(
        self, request: HttpRequest, response: HttpResponseBase, started: int
    ) -> None:
        """A streamed body is timed until the server closes the response, as Django's handlers
        do for their own clean-up (`_resource_closers` is how they attach it)."""

        def record() -> None:
            self._record(request, response.status_code, started)

        response._resource_closers.append(record)

    def _record(self, request: HttpRequest, status: int, started: int) -> None:
        elapsed = _now() - started
        match = request.resolver_match
        # META is the WSGI environ, or under ASGI a dict with the same keys.
        self.recorder.observe_environ(
            None if match is None else match.route, request.META, status, elapsed
        )


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
    return Adapter(
        app=app,
        route_syntax="django",
        route_source=(ROUTE_KEY, ()),  # environ[ROUTE_KEY] itself, read in Rust
        program_hint=program_hint(),
        route_at=route_at,
        # Rendered when returned (streaming responses are other classes): no body wrapper.
        complete_bodies=(sys.modules["django.http"].HttpResponse,),
    )


def adapt_asgi(app: Any) -> Adapter | None:
    asgi = sys.modules.get("django.core.handlers.asgi")
    if asgi is None or not isinstance(app, asgi.ASGIHandler):
        return None
    _capture_routes(app, operator.attrgetter("scope"))
    return Adapter(
        app=app,
        route_syntax="django",
        route_getter=_read_route,
        program_hint=program_hint(),
        route_at=route_at,
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
