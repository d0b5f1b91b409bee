"""Django: the route template is the request's ``resolver_match.route``.

``RedMiddleware(get_wsgi_application())`` (or ``get_asgi_application()`` with the ASGI
middleware) needs no settings: the handler's ``request_class`` gets a thin subclass that leaves
each request in the environ (or ASGI scope) it was made from. After the response, the route of
its ``resolver_match`` is read from there: path() routes with their ``include()`` prefixes
joined, re_path() regexes, converted by the "django" route syntax. A request that resolved no
route has no ``resolver_match``: ``/unmatched``. A view answering 405 has resolved its route.
"""

from __future__ import annotations

import sys
from typing import Any

from last9.frameworks import Adapter

#: Environ (WSGI) or scope (ASGI) key the capturing request class stores itself under.
REQUEST_KEY = "last9.django.request"

#: Set on capturing request classes: the handler's wrapper records this request, so
#: ``last9.django.RedMiddleware`` in ``MIDDLEWARE`` leaves it alone rather than count it twice.
RECORDED_BY_HANDLER = "_last9_recorded_by_handler"


def adapt(app: Any) -> Adapter | None:
    wsgi = sys.modules.get("django.core.handlers.wsgi")
    if wsgi is None or not isinstance(app, wsgi.WSGIHandler):
        return None
    return _adapter(app)


def adapt_asgi(app: Any) -> Adapter | None:
    asgi = sys.modules.get("django.core.handlers.asgi")
    if asgi is None or not isinstance(app, asgi.ASGIHandler):
        return None
    return _adapter(app)


def _adapter(handler: Any) -> Adapter:
    _capture_requests(handler)

    def route_of(environ_or_scope: dict[str, Any]) -> str | None:
        request = environ_or_scope.pop(REQUEST_KEY, None)
        if request is None:
            _capture_requests(handler)  # request_class was replaced after we wrapped it
            return None
        match = request.resolver_match
        return None if match is None else match.route

    return Adapter(
        app=handler, route_syntax="django", route_getter=route_of, program_hint=program_hint()
    )


def _capture_requests(handler: Any) -> None:
    base = handler.request_class
    if getattr(base, RECORDED_BY_HANDLER, False):
        return

    class CapturingRequest(base):  # type: ignore[misc, valid-type]
        # WSGIRequest(environ) and ASGIRequest(scope, body_file): the first argument is the
        # dict the middleware hands the route getter once the response is done.
        def __init__(self, environ_or_scope: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            super().__init__(environ_or_scope, *args, **kwargs)
            environ_or_scope[REQUEST_KEY] = self

    setattr(CapturingRequest, RECORDED_BY_HANDLER, True)
    CapturingRequest.__name__ = base.__name__
    CapturingRequest.__qualname__ = base.__qualname__
    CapturingRequest.__module__ = base.__module__
    handler.request_class = CapturingRequest


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
