"""Falcon (``falcon.App`` over WSGI, ``falcon.asgi.App`` over ASGI): the template is the one the
router returns with its match (what Falcon then sets as ``req.uri_template``).

``RedMiddleware(app)`` wraps the app's router search so the template is left in the environ (or
scope) as routing happens; a sink or a static route that answers instead is named by its prefix
(``/proxy/{path}``, regex groups as ``{name}``). :class:`last9.falcon.Middleware` is the
Falcon-style alternative, a middleware component.
"""

from __future__ import annotations

import operator
import sys
from typing import Any

from last9._core import route_template
from last9.frameworks import Adapter

#: Environ (WSGI) or scope (ASGI) key the template is left under.
ROUTE_KEY = "last9.falcon.route"


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
    )


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
