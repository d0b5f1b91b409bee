"""Bottle: the route template is the matched route's ``rule`` (``environ["bottle.route"]``).

``parent.mount("/api/", child)`` copies the child's routes into the parent with the prefix
already in their rules. Apps mounted the WSGI way (Bottle 0.12, a prefix without a trailing
slash, an app mounted twice, a non-Bottle app) answer behind a ``PROXY`` route, and their rules
get the mount prefixes prepended here. A 405 (or 404) leaves no route in the environ: the path
is matched again for every method, to keep the template of a route that exists for another.
``app.install(Plugin())`` is the Bottle way to say ``RedMiddleware(app)``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from last9 import config
from last9._adapter import Adapter
from last9._core import Registry, WsgiMiddleware

if TYPE_CHECKING:
    from typing_extensions import Unpack
from last9.views import is_excluded


def adapt(app: Any) -> Adapter | None:
    bottle = sys.modules.get("bottle")
    if bottle is None:
        return None
    if isinstance(app, bottle.Bottle):
        root, inner = app, app
        installed = app.__dict__.get("wsgi")
        if isinstance(installed, WsgiMiddleware):
            inner = installed.app  # the Plugin's middleware is skipped, not counted twice
    elif isinstance(getattr(app, "__self__", None), bottle.Bottle):
        root, inner = app.__self__, app  # Bottle.wsgi, as the Plugin wraps it
    else:
        return None
    prefixes = _Prefixes(root, bottle.Bottle)

    def route_of(environ: dict[str, Any]) -> str | None:
        route = environ.get("bottle.route")
        if route is None or route.method == "PROXY":
            return _unrouted(environ, route, prefixes, bottle)
        return prefixes[route.app] + route.rule

    return Adapter(
        app=inner,
        route_syntax="angle_name_first",
        route_getter=route_of,
        route_at=lambda path: _route_at(root, path, bottle),
        excluded_views=lambda: [
            prefixes[route.app] + route.rule for route in root.routes if is_excluded(route.callback)
        ],
    )


def _route_at(app: Any, path: str, bottle: Any) -> str | None:
    """The rule of the app's own route a GET of ``path`` reaches, if any."""
    try:
        route, _ = app.router.match({"PATH_INFO": path, "REQUEST_METHOD": "GET"})
    except bottle.HTTPError:
        return None
    return repr(route.rule)


class _Prefixes(dict):  # type: ignore[type-arg]
    """The mount prefix of each app mounted the WSGI way below the root; "" for any other."""

    def __init__(self, root: Any, bottle_class: type) -> None:
        super().__init__()
        self.root, self.bottle_class = root, bottle_class

    def __missing__(self, app: Any) -> str:
        self.update(self._walk(self.root, "", {self.root}))  # mounted after we wrapped
        return self.setdefault(app, "")

    def _walk(self, app: Any, prefix: str, seen: set[Any]) -> dict[Any, str]:
        found = {app: prefix}
        for route in app.routes:
            target = route.config.get("mountpoint.target")
            if isinstance(target, self.bottle_class) and target not in seen:
                seen.add(target)
                inner = prefix + "/" + route.config["mountpoint.prefix"].strip("/")
                found.update(self._walk(target, inner, seen))
        return found


def _unrouted(environ: dict[str, Any], route: Any, prefixes: _Prefixes, bottle: Any) -> Any:
    app = environ.get("bottle.app")  # the innermost Bottle app that saw the request
    if app is None:
        return None
    if route is not None:
        target = route.config.get("mountpoint.target")
        if not isinstance(target, bottle.Bottle):  # a PROXY route, or a mounted WSGI app
            return prefixes[route.app] + route.rule
        # A mounted Bottle app that matched none of its routes.
    prefix = prefixes[app]
    path = environ.get("PATH_INFO") or "/"
    if prefix:
        path = bottle.path_shift("", path, prefix.count("/"))[1]
    found = _match_any_method(app.router, path, environ.get("REQUEST_METHOD", "GET"))
    return None if found is None else prefixes[found.app] + found.rule


def _match_any_method(router: Any, path: str, verb: str) -> Any:
    """The route `path` matches for any method, the request's first: what Bottle's own 405
    check looks at (with the request's method too, for a route whose filter failed: 400)."""
    methods = sorted({*router.static, *router.dyna_regexes}, key=lambda m: (m != verb, m))
    for method in methods:
        target = router.static.get(method, {}).get(path)
        if target is not None:
            return target[0]
        for combined, rules in router.dyna_regexes.get(method, ()):
            match = combined(path)
            if match:
                return rules[match.lastindex - 1][0]
    return None


class Plugin:
    """``app.install(Plugin(**options))``: ``RedMiddleware(app, **options)`` as a plugin.

    Install it on the app the server runs (not on a mounted one). Routes are left alone: the
    app's WSGI entry is wrapped when the plugin is installed, and unwrapped when uninstalled.
    """

    name = "last9"
    api = 2

    def __init__(
        self, *, registry: Registry | None = None, **options: Unpack[config.Options]
    ) -> None:
        config.check_options(options)  # a typo is told here, not when the plugin is installed
        self.registry = registry
        self.options = options
        self.app: Any = None

    def setup(self, app: Any) -> None:
        from last9.setup import switched_off
        from last9.wsgi.middleware import RedMiddleware

        if switched_off(dict(self.options)):
            return  # the app's WSGI entry and routes stay as they were
        self.app = app
        app.wsgi = RedMiddleware(app.wsgi, registry=self.registry, **self.options)

    def apply(self, callback: Any, route: Any) -> Any:
        return callback

    def close(self) -> None:
        if self.app is not None:
            self.app.__dict__.pop("wsgi", None)
            self.app = None
