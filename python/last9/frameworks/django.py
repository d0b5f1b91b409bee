"""Django: the route template is the request's ``resolver_match.route``.

``RedMiddleware(get_wsgi_application())`` (or ``get_asgi_application()`` with the ASGI
middleware) needs no settings: the handler's ``request_class`` gets a subclass whose
``resolver_match`` setter also writes the matched route into the request's environ (``META``
under WSGI) or ASGI ``scope``, where the middleware reads it once the response is done (WSGI:
in Rust, through ``route_source``; ASGI: a C-level ``dict.get``), whatever Django has released.
The route has the ``include()`` prefixes joined, and re_path() parts as regexes: the "django"
route syntax converts both. No route resolved: no key, ``/unmatched``. A view answering 405
has resolved its route, which is kept.
"""

from __future__ import annotations

import operator
import sys
from typing import Any

from last9.frameworks import Adapter

#: Environ (WSGI) or scope (ASGI) key holding the route the request resolved.
ROUTE_KEY = "last9.django.route"

#: Set on capturing request classes: the handler's wrapper records this request, so
#: ``last9.django.RedMiddleware`` in ``MIDDLEWARE`` leaves it alone rather than count it twice.
RECORDED_BY_HANDLER = "_last9_recorded_by_handler"

#: The ASGI getter: ``scope.get(ROUTE_KEY)``, with no Python frame.
_read_route = operator.methodcaller("get", ROUTE_KEY)


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
