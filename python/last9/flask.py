"""Flask: the route template is the matched ``Rule``'s ``rule``.

Werkzeug's request leaves itself in the environ (``environ["werkzeug.request"]``) until Flask
pops its request context, just before ``wsgi_app`` returns: the rule (blueprint prefixes
included) is read from it when the app calls ``start_response``, in Rust, with no Python call
per request. A view whose exception Flask lets through (``PROPAGATE_EXCEPTIONS``) never starts a
response: the ``got_request_exception`` signal leaves the request under our own key then. Should
an app's request class not leave itself in the environ, the request object is captured as it is
made instead: the app's ``request_class`` gets a thin subclass that does (a Python call per
request).

A rendered response (a list body, what a view's string, dict or ``Response(data)`` becomes)
reaches the server as Werkzeug's ``ClosingIterator``; the middleware recognises it, records at
once and passes it on unwrapped. A streamed one (a generator body) is wrapped and timed to its end.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Any

from last9._adapter import Adapter
from last9.views import is_excluded

#: Environ key Werkzeug's request stores itself under.
WERKZEUG_REQUEST_KEY = "werkzeug.request"
#: Environ key the capturing request class (or the exception hook) stores the request under.
REQUEST_KEY = "last9.flask.request"
_MISSING = object()


def adapt(app: Any) -> Adapter | None:
    flask = sys.modules.get("flask")
    if flask is None:
        return None
    if isinstance(app, flask.Flask):
        # `app.wsgi_app = RedMiddleware(app)`: call the original wsgi_app, not the app, whose
        # __call__ would come back to this middleware.
        flask_app, inner = app, app.wsgi_app
    elif isinstance(getattr(app, "__self__", None), flask.Flask):
        flask_app, inner = app.__self__, app  # RedMiddleware(app.wsgi_app)
    else:
        return None
    _release_port_before_reloading(flask_app)
    _keep_request_on_exception(flask_app)

    def route_of(environ: dict[str, Any]) -> str | None:
        request = environ.pop(REQUEST_KEY, None)
        if request is None:
            request = environ.get(WERKZEUG_REQUEST_KEY)
            if request is None:  # Flask has let go of it: no response was started
                return None
        rule = getattr(request, "url_rule", _MISSING)
        if rule is _MISSING:
            # Another Werkzeug request (a test client's, say): the app's request class does not
            # leave itself in the environ. Capture it from now on.
            _capture_requests(flask_app)
            return None
        if rule is not None:
            return rule.rule
        return _rule_allowing_other_method(flask_app, request)

    return Adapter(
        app=inner,
        route_syntax="angle",
        # The common case, read in Rust: environ["werkzeug.request"].url_rule.rule.
        route_source=(WERKZEUG_REQUEST_KEY, ("url_rule", "rule")),
        route_getter=route_of,
        route_at_start=True,
        werkzeug=_werkzeug_types(),
        program_hint=flask_app.name,
        route_at=lambda path: _route_at(flask_app, path),
        route_templates=lambda: [rule.rule for rule in flask_app.url_map.iter_rules()],
        excluded_views=lambda: [
            rule.rule
            for rule in flask_app.url_map.iter_rules()
            if is_excluded(flask_app.view_functions.get(rule.endpoint))
        ],
    )


def _werkzeug_types() -> tuple[type, type]:
    """Werkzeug's ``ClosingIterator`` (what a response's ``__call__`` returns) and ``Response``."""
    from werkzeug.wrappers import Response
    from werkzeug.wsgi import ClosingIterator

    return ClosingIterator, Response


def _keep_request_on_exception(app: Any) -> None:
    """Leaves the request in the environ when a view raises, for an exception that Flask lets
    through (the response, and the route read with it, never starts); costs nothing otherwise."""
    from flask import got_request_exception

    if getattr(app, "_last9_keep_request", None) is not None:
        return

    def keep_request(sender: Any, **_: Any) -> None:
        from flask import request

        if request:
            request.environ[REQUEST_KEY] = request._get_current_object()

    app._last9_keep_request = keep_request  # the signal holds its receivers weakly
    got_request_exception.connect(keep_request, app)


def _route_at(app: Any, path: str) -> str | None:
    """The app's rule a GET of ``path`` reaches, if any."""
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    try:
        rule, _ = app.url_map.bind("localhost").match(path, method="GET", return_rule=True)
    except (HTTPException, RequestRedirect):
        return None
    return f"{rule.rule!r} ({rule.endpoint})"


def _release_port_before_reloading(app: Any) -> None:
    """``app.run(debug=True)`` turns this process into a Werkzeug reloader that only watches
    files: it lets go of the LAST9_METRICS_PORT server first, for the child that serves."""
    run = app.run
    if getattr(run, "_last9", False):
        return

    def run_releasing_metrics_port(
        host: str | None = None,
        port: int | None = None,
        debug: bool | None = None,
        load_dotenv: bool = True,
        **options: Any,
    ) -> None:
        if os.environ.get("FLASK_RUN_FROM_CLI") != "true":  # under `flask run`, run() is a no-op
            from flask.helpers import get_debug_flag

            from last9.setup import release_for_reloader

            if debug is None:
                debug = get_debug_flag() if "FLASK_DEBUG" in os.environ else app.debug
            release_for_reloader(bool(options.get("use_reloader", debug)))
        run(host, port, debug, load_dotenv, **options)

    run_releasing_metrics_port._last9 = True  # type: ignore[attr-defined]
    app.run = run_releasing_metrics_port


def _capture_requests(app: Any) -> None:
    base = app.request_class
    if getattr(base, "_last9_captures", False):
        return

    base_init = base.__init__

    class CapturingRequest(base):  # type: ignore[misc, valid-type]
        _last9_captures = True

        if _takes_werkzeug_arguments(base_init):
            # Werkzeug's own signature: the cheapest call, once per request.
            def __init__(
                self, environ: dict[str, Any], populate_request: bool = True, shallow: bool = False
            ) -> None:
                base_init(self, environ, populate_request, shallow)
                environ[REQUEST_KEY] = self
        else:

            def __init__(self, environ: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                base_init(self, environ, *args, **kwargs)
                environ[REQUEST_KEY] = self

    CapturingRequest.__name__ = base.__name__
    CapturingRequest.__qualname__ = base.__qualname__
    CapturingRequest.__module__ = base.__module__
    app.request_class = CapturingRequest


def _takes_werkzeug_arguments(init: Any) -> bool:
    try:
        parameters = list(inspect.signature(init).parameters)
    except (TypeError, ValueError):
        return False
    return parameters == ["self", "environ", "populate_request", "shallow"]


def _rule_allowing_other_method(app: Any, request: Any) -> str | None:
    """For a 405 the path matched a rule, only not for this method: keep its template."""
    from werkzeug.exceptions import MethodNotAllowed

    error = request.routing_exception
    if not isinstance(error, MethodNotAllowed) or not error.valid_methods:
        return None
    try:
        adapter = app.url_map.bind_to_environ(request.environ)
        rule, _ = adapter.match(method=next(iter(error.valid_methods)), return_rule=True)
    except Exception:
        return None
    return rule.rule
