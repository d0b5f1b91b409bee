"""Starlette and FastAPI: the template of the route that answered, mount prefixes included.

The router leaves what it matched in the scope: the route in ``scope["route"]`` (Starlette,
FastAPI's routes), FastAPI's route context of an included router under ``scope["fastapi"]``,
and the endpoint in ``scope["endpoint"]`` (every version). The first time one of these objects
is seen, the request is matched again from the top router (``route.matches``, descending into
``Mount`` and ``Host``, ``include_router`` prefixes unfolded), and the template is remembered
for that object when the route tree holds it once. Later requests cost one dict lookup. A path
that matched but not for this method (405) keeps its template; ``scope["root_path"]`` of mounts
is never used raw, as a mount's own path may have parameters.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from last9.frameworks import Adapter

#: Keys remembered at most: route objects come from the app's code, so they are few.
MAX_REMEMBERED = 10_000

_MISSING = object()
_AMBIGUOUS = object()


def adapt_asgi(app: Any) -> Adapter | None:
    routing = sys.modules.get("starlette.routing")
    if routing is None:
        return None
    router = _find_router(app, routing)
    if router is None:
        return None
    return Adapter(app=app, route_syntax="brace", route_getter=_route_getter(router, routing))


def _find_router(app: Any, routing: Any) -> Any:
    """The router of a Starlette/FastAPI app, or of the middleware stack in front of it (what
    ``app.add_middleware(RedMiddleware)`` hands over)."""
    applications = sys.modules.get("starlette.applications")
    for _ in range(64):
        if applications is not None and isinstance(app, applications.Starlette):
            return app.router
        if isinstance(app, routing.Router):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _route_getter(default_router: Any, routing: Any) -> Any:
    templates: dict[int, Any] = {}
    alive: list[Any] = []  # keeps remembered objects alive, so their ids stay theirs

    def route_of(scope: dict[str, Any]) -> str | None:
        key = scope.get("route")
        if key is None:
            key = scope.get("endpoint")
        template = templates.get(id(key), _MISSING)
        if template.__class__ is str:
            return template
        if template is _AMBIGUOUS:
            # FastAPI: a route of a router included twice has a context per inclusion.
            key = _fastapi_context(scope, key)
            template = templates.get(id(key), _MISSING) if key is not None else _AMBIGUOUS
            if template is _AMBIGUOUS:
                return match_again(scope)[0]
        if template is _MISSING:
            return learn(scope, key)
        return template  # None: remembered as matching no route

    def learn(scope: dict[str, Any], key: Any) -> str | None:
        template, router = match_again(scope)
        if key is not None and len(templates) < MAX_REMEMBERED:
            once = _occurrences(router.routes, key, routing) == 1
            templates[id(key)] = template if once else _AMBIGUOUS
            alive.append(key)
        return template

    def match_again(scope: dict[str, Any]) -> tuple[str | None, Any]:
        router = scope.get("router")
        probe = dict(scope)
        probe["path_params"] = {}
        probe["fastapi"] = {}
        if router is None:
            router = default_router
        else:
            # The top router saw the root_path a first mount kept as app_root_path.
            probe["root_path"] = scope.get("app_root_path", scope.get("root_path", ""))
        return _match(probe, router.routes, "", routing), router

    return route_of


def _match(scope: dict[str, Any], routes: Any, prefix: str, routing: Any) -> str | None:
    """The template of the route among `routes` that answers `scope`, as the router picks it:
    the first full match, else the first partial one (405)."""
    partial: Any = _MISSING
    for route, _ in _unfold(routes):
        try:
            match, child_scope = route.matches(scope)
        except Exception:
            continue
        if match == routing.Match.NONE:
            continue
        template = _answer(route, {**scope, **child_scope}, prefix, routing)
        if match == routing.Match.FULL:
            return template
        if partial is _MISSING:
            partial = template
    return None if partial is _MISSING else partial


def _answer(route: Any, scope: dict[str, Any], prefix: str, routing: Any) -> str | None:
    if isinstance(route, routing.Host):
        return _match(scope, route.routes, prefix, routing)
    if isinstance(route, routing.Mount):
        inner = _mounted_routes(route, routing)
        if inner:
            return _match(scope, inner, prefix + route.path, routing)
        return f"{prefix}{route.path}/{{path}}"  # a mounted app with no routes of its own
    path = getattr(route, "path", None)
    return None if path is None else prefix + path


def _fastapi_context(scope: dict[str, Any], route: Any) -> Any:
    """FastAPI's context of an included router that `route` answered through, if any."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return None


def _occurrences(routes: Any, key: Any, routing: Any) -> int:
    """How many routes of the tree the scope key can stand for."""
    count = 0
    for route, identity in _unfold(routes):
        names = (
            route,
            identity,
            getattr(route, "endpoint", None),
            getattr(identity, "original_route", None),
            route.app if isinstance(route, routing.Mount) else None,
        )
        if any(key is name for name in names):
            count += 1
        if isinstance(route, routing.Host):
            count += _occurrences(route.routes, key, routing)
        elif isinstance(route, routing.Mount):
            count += _occurrences(_mounted_routes(route, routing), key, routing)
    return count


def _mounted_routes(mount: Any, routing: Any) -> Any:
    """The routes of a mounted app, also behind middleware (an instrumented sub-app)."""
    routes = mount.routes
    if routes:
        return routes
    router = _find_router(mount.app, routing)
    return router.routes if router is not None else []


def _unfold(routes: Any) -> Iterator[tuple[Any, Any]]:
    """(route to match, object the scope names it by) for each route; FastAPI's included
    routers are unfolded into their effective routes."""
    fastapi = sys.modules.get("last9.frameworks.fastapi")
    if fastapi is None and "fastapi" in sys.modules:
        from last9.frameworks import fastapi
    if fastapi is not None:
        return fastapi.unfold(routes)
    return ((route, route) for route in routes)
