"""Starlette and FastAPI: the template of the route that answered, mount prefixes included.

The router leaves what it matched in the scope: the route in ``scope["route"]`` (recent
Starlette, FastAPI's routes), else the endpoint in ``scope["endpoint"]``. The first time one of
these objects is seen, the request is matched again from the top router (``route.matches``,
into ``Mount`` and ``Host``, FastAPI's included routers unfolded), and the template is kept for
that object if the route tree holds it once; later requests cost a dict lookup. A 405 (partial
match) keeps its template. Mount prefixes come from the mounts' own paths, never from the raw
``root_path``, as a mount's path may have parameters.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from last9._adapter import Adapter
from last9.views import is_excluded

#: Keys remembered at most: route objects come from the app's code, so they are few.
MAX_REMEMBERED = 10_000

_MISSING = object()
_AMBIGUOUS = object()
_BY_ENDPOINT = object()


def adapt_asgi(app: Any) -> Adapter | None:
    routing = sys.modules.get("starlette.routing")
    if routing is None:
        return None
    router = _find_router(app, routing)
    if router is None:
        return None
    route_getter, learnt = _route_getter(router, routing)
    return Adapter(
        app=app,
        route_syntax="brace",
        route_getter=route_getter,
        route_cache=learnt,
        route_at=lambda path: _route_at(router, routing, path),
        route_templates=lambda: [t for t, _ in _templates(router.routes, "", routing)],
        excluded_views=lambda: [
            t
            for t, route in _templates(router.routes, "", routing)
            if is_excluded(getattr(route, "endpoint", None))
        ],
    )


def _route_at(router: Any, routing: Any, path: str) -> str | None:
    """The path of the app's own route (or mount) a GET of ``path`` reaches, if any."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    for route in router.routes:
        match, _ = route.matches(scope)
        if match is routing.Match.FULL:
            return repr(getattr(route, "path", route))
    return None


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


def _route_getter(default_router: Any, routing: Any) -> tuple[Any, dict[int, Any]]:
    """The route getter, and the templates it has learnt by ``id()`` of the scope's route (or
    endpoint) object, which the middleware reads in Rust before calling the getter."""
    templates: dict[int, Any] = {}
    alive: list[Any] = []  # keeps remembered objects alive, so their ids stay theirs

    def route_of(scope: dict[str, Any]) -> str | None:
        key = scope.get("route")
        if key is None:
            key = scope.get("endpoint")
        template = templates.get(id(key), _MISSING)
        if template.__class__ is str:
            return template
        return resolve(scope, key, template)

    def resolve(scope: dict[str, Any], key: Any, template: Any) -> str | None:
        if template is _BY_ENDPOINT:
            key = scope.get("endpoint")
            template = templates.get(id(key), _MISSING)
        if template is _AMBIGUOUS:
            # FastAPI: a route of a router included twice has a context per inclusion.
            fastapi = _fastapi()
            key = fastapi.included_context(scope, key) if fastapi is not None else None
            template = templates.get(id(key), _MISSING) if key is not None else _AMBIGUOUS
            if template is _AMBIGUOUS:
                return match_again(scope)[0]
        if template is _MISSING:
            return learn(scope, key)
        return template  # a template, or None: remembered as matching no route

    def learn(scope: dict[str, Any], key: Any) -> str | None:
        if key is None or len(templates) >= MAX_REMEMBERED:
            return match_again(scope)[0]
        alive.append(key)
        if _has_routes(key, routing):
            # A mount or host left as the route: the router inside may not name its own
            # routes in the scope (FastAPI's plain ones), but their endpoints are there.
            templates[id(key)] = _BY_ENDPOINT
            return resolve(scope, key, _BY_ENDPOINT)
        template, router = match_again(scope)
        once = _occurrences(router.routes, key, routing) == 1
        templates[id(key)] = template if once else _AMBIGUOUS
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

    return route_of, templates


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


def _templates(routes: Any, prefix: str, routing: Any) -> Iterator[tuple[str, Any]]:
    """Every template of the route tree, as ``_answer`` would name it, with its route."""
    for route, _ in _unfold(routes):
        if isinstance(route, routing.Host):
            yield from _templates(route.routes, prefix, routing)
        elif isinstance(route, routing.Mount):
            inner = _mounted_routes(route, routing)
            if inner:
                yield from _templates(inner, prefix + route.path, routing)
            else:
                yield f"{prefix}{route.path}/{{path}}", route
        elif isinstance(getattr(route, "path", None), str):
            yield prefix + route.path, route


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


def _has_routes(route: Any, routing: Any) -> bool:
    if isinstance(route, routing.Host):
        return bool(route.routes)
    return isinstance(route, routing.Mount) and bool(_mounted_routes(route, routing))


def _mounted_routes(mount: Any, routing: Any) -> Any:
    """The routes of a mounted app, also behind middleware (an instrumented sub-app)."""
    routes = mount.routes
    if routes:
        return routes
    router = _find_router(mount.app, routing)
    return router.routes if router is not None else []


def _unfold(routes: Any) -> Iterator[tuple[Any, Any]]:
    """(route to match, object the scope names it by) for each route."""
    fastapi = _fastapi()
    if fastapi is not None:
        return fastapi.unfold(routes)
    return ((route, route) for route in routes)


def _fastapi() -> Any:
    """last9's FastAPI helpers, when the app is a FastAPI one (FastAPI is imported)."""
    if "fastapi" not in sys.modules:
        return None
    from last9 import fastapi

    return fastapi
