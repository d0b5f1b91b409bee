"""Pyramid: the route template is the matched route's ``pattern``, route prefixes included.

Pyramid finishes its request before the WSGI call returns, so the pattern is left in the
environ while the request is handled: ``RedMiddleware(config.make_wsgi_app())`` puts a
capturing step in front of the router's tweens. The Pyramid way, a tween, is the other:
``config.include("last9.pyramid")`` (or ``pyramid.includes`` in an .ini file; with an
explicit ``pyramid.tweens`` list, name ``last9.pyramid.tween_factory`` there) adds one
that records on its own, from entering the tweens until the response is handed back (a streamed
body's time is not seen), and that only captures when RedMiddleware wraps the app as well.
No route matched (including pure traversal apps) → no pattern → ``/unmatched``.
"""

from __future__ import annotations

import sys
import time
from operator import methodcaller
from typing import Any

from last9._adapter import Adapter

#: Environ key the matched route's pattern is left under.
PATTERN_KEY = "last9.pyramid.pattern"
TWEEN = "last9.pyramid.tween_factory"
#: ``last9.<name>`` settings the tween reads, as RedMiddleware's keyword arguments.
SETTINGS = (
    "program",
    "hostname",
    "tenant",
    "cluster",
    "metrics_path",
    "metrics_username",
    "metrics_password",
    "metrics_bearer_token",
    "ui",
    "enabled",
    "exclude",
    "labels",
    "header_label",
    "header_label_values",
    "header_label_max",
    "request_labels",
    "group_status",
    "semconv",
    "body_sizes",
)


def adapt(app: Any) -> Adapter | None:
    router = sys.modules.get("pyramid.router")
    if router is None or not isinstance(app, router.Router):
        return None
    registry = app.registry
    tween = registry.get(TWEEN)
    if tween is not None:
        tween.recorder = None  # RedMiddleware records; the tween only leaves the pattern
    elif not getattr(app.handle_request, "last9_captures", False):
        app.handle_request = _capturing(app.handle_request)
    package = getattr(registry, "package_name", None) or None
    return Adapter(
        app=app,
        route_syntax="brace",
        route_getter=methodcaller("get", PATTERN_KEY),
        program_hint=package.partition(".")[0] if package else None,
        route_at=lambda path: route_at(registry, path),
    )


def _sent(response: Any) -> int | None:
    """The response body's size in bytes as declared (None: unknown, e.g. streamed). The
    request's is read from the environ, in Rust."""
    return None if response is None else response.content_length


def route_at(registry: Any, path: str) -> str | None:
    """The pattern of the app's own route that ``path`` matches, if any."""
    from pyramid.interfaces import IRoutesMapper

    mapper = registry.queryUtility(IRoutesMapper)
    for route in mapper.get_routes() if mapper is not None else ():
        if route.match(path) is not None:
            return f"{route.pattern!r} ({route.name})"
    return None


def _capturing(handle: Any) -> Any:
    def capture(request: Any) -> Any:
        try:
            return handle(request)
        finally:
            route = request.matched_route
            if route is not None:
                request.environ[PATTERN_KEY] = route.pattern

    capture.last9_captures = True  # type: ignore[attr-defined]
    return capture


def excluded_views(registry: Any) -> list[str]:
    """Patterns of the routes whose view callable carries ``@last9.exclude``."""
    from pyramid.interfaces import IRoutesMapper

    from last9.views import is_excluded

    mapper = registry.queryUtility(IRoutesMapper)
    introspector = getattr(registry, "introspector", None)
    if mapper is None or introspector is None:
        return []
    found = []
    for view in introspector.get_category("views"):
        intr = view["introspectable"]
        route_name = intr.get("route_name")
        if route_name and is_excluded(intr.get("callable")):
            route = mapper.get_route(route_name)
            if route is not None:
                found.append(route.pattern)
    return found


def includeme(config: Any) -> None:
    """``config.include("last9.pyramid")``: instrument with the tween (none when switched off)."""
    from pyramid.tweens import INGRESS

    from last9.setup import switched_off

    if switched_off({"enabled": config.get_settings().get("last9.enabled")}):
        return

    config.add_tween(TWEEN, under=INGRESS)


def tween_factory(handler: Any, registry: Any) -> Any:
    from last9.setup import switched_off

    if switched_off({"enabled": registry.settings.get("last9.enabled")}):
        return handler  # listed in pyramid.tweens, but switched off: the handler itself
    tween = Tween(handler, registry)
    registry[TWEEN] = tween  # found by adapt() if RedMiddleware wraps the app after all
    return tween


class Tween:
    """Records each request, unless RedMiddleware does (then ``recorder`` is None)."""

    def __init__(self, handler: Any, registry: Any) -> None:
        from last9 import config, scrape
        from last9.setup import instrument_app

        given = {name: registry.settings.get(f"last9.{name}") for name in SETTINGS}
        if given["metrics_path"] is None:
            given["metrics_path"] = config.UNSET
        if isinstance(given["ui"], str):  # from an .ini file
            from pyramid.settings import asbool

            given["ui"] = asbool(given["ui"])
        package = getattr(registry, "package_name", None) or ""
        given = {name: value for name, value in given.items() if value is not None}
        app_setup = instrument_app(
            route_syntax="brace",
            program_hint=package.partition(".")[0] or None,
            excluded_views=lambda: excluded_views(registry),
            framework="pyramid",
            **given,
        )
        self.handler = handler
        #: Whether body sizes are passed on (``last9.body_sizes``, ``LAST9_BODY_SIZES``).
        self.body_sizes = app_setup.settings.body_sizes
        self.metrics = app_setup.metrics
        self.metrics_path = app_setup.settings.metrics_path
        #: Whether `<metrics_path>/ui` answers with the live page (``last9.ui``, ``LAST9_UI``).
        self.ui = self.metrics is not None and app_setup.settings.ui
        scrape.warn_if_shadowed(self.metrics, lambda path: route_at(registry, path))
        self.recorder: Any = app_setup.recorder
        self.excluding = self.recorder.excluding
        #: Whether views set a request label (``last9.request_labels``): each request gets a holder.
        self.labelled = app_setup.settings.request_label is not None
        self.capture = _capturing(handler)

    def __call__(self, request: Any) -> Any:
        recorder = self.recorder
        if recorder is None:
            return self.capture(request)
        environ = request.environ
        if environ["PATH_INFO"] == self.metrics_path and request.method in ("GET", "HEAD"):
            return self._metrics(request)
        if self.ui and request.method in ("GET", "HEAD"):
            data = self.metrics.ui_route(environ["PATH_INFO"])
            if data is not None:
                return self._ui(request, data)
        if self.excluding and recorder.excluded(request.method, request.path):
            return self.handler(request)
        if self.labelled:
            recorder.begin_request(environ)
        started = time.perf_counter_ns()
        status = 500  # recorded if the handler raises, which is then re-raised as it was
        response = None
        try:
            response = self.handler(request)
            status = response.status_int
            return response
        finally:
            route = request.matched_route
            # Host, method, the request label and the request's size are read from the environ,
            # in Rust.
            recorder.observe_environ(
                None if route is None else route.pattern,
                environ,
                status,
                time.perf_counter_ns() - started,
                _sent(response) if self.body_sizes else None,
            )

    def _ui(self, request: Any, data: bool) -> Any:
        from pyramid.response import Response

        authorization = request.headers.get("Authorization")
        status, response_headers, body = self.metrics.respond_ui(authorization, data)
        response = Response(body=body, status=status)
        for name, value in response_headers:
            if name != "Content-Length":  # WebOb counts the body itself
                response.headers[name] = value
        return response

    def _metrics(self, request: Any) -> Any:
        from pyramid.response import Response

        headers = request.headers
        status, response_headers, body = self.metrics.respond(
            headers.get("Authorization"), headers.get("Accept"), headers.get("Accept-Encoding")
        )
        response = Response(body=body, status=status)
        for name, value in response_headers:
            if name != "Content-Length":  # WebOb counts the body itself
                response.headers[name] = value
        return response
