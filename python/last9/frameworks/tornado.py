"""Tornado: the route template is the pattern of the rule that routed the request.

Tornado apps are neither WSGI nor ASGI callables, so there is no ``adapt``: ``owns(app)`` tells
a ``tornado.web.Application`` apart and ``last9.tornado.instrument`` hooks it in place. Routing
leaves no trace on the handler, so the rule tree is read once: a handler class that one rule
routes to gives its template by a dict lookup; a class several rules share (StaticFileHandler,
RedirectHandler, the 404 ErrorHandler, ``default_handler_class``) is matched again against the
matchers on the way to each of its rules, as Tornado did. Nested routers and nested
Applications are walked; their rules match the whole path, so the innermost ``PathMatches``
pattern is the template. Patterns are regular expressions, converted in Rust (syntax "regex").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

#: What a chain of matchers from the root router down to a rule stands for in ``per``.
ROUTE_SYNTAX = "regex"
#: The template of a rule that no ``PathMatches`` guards (it serves every path).
ANY_PATH = "/(?P<path>.*)"
#: Returned by :meth:`RouteTable.route_of` for requests that are not recorded (scrapes).
SKIP = object()

Chain = tuple[tuple[Any, ...], str]


def owns(app: Any) -> bool:
    web = sys.modules.get("tornado.web")
    return web is not None and isinstance(app, web.Application)


def instrument(app: Any, **options: Any) -> Any:
    from last9.tornado import instrument as instrument_tornado

    return instrument_tornado(app, **options)


class RouteTable:
    """Handler class → route template, for the rule tree under one Application.

    ``unique`` is the fast path; :meth:`route_of` handles everything else. :meth:`rebuild`
    reads the tree and calls ``on_app`` with each nested Application found, since their
    handlers log to them, not to the root.
    """

    def __init__(
        self, app: Any, skip: frozenset[type], on_app: Callable[[Any], None] | None = None
    ) -> None:
        self.app = app
        self.skip = skip
        self.on_app = on_app
        self.unique: dict[type, str] = {}
        self.candidates: dict[type, list[Chain]] = {}
        self.ignored: set[type] = set(skip)
        self.unrouted: set[type] = set()

    def rebuild(self) -> None:
        web, routing = sys.modules["tornado.web"], sys.modules["tornado.routing"]
        found: dict[type, list[Chain]] = {}
        shared = {web.ErrorHandler}  # classes Tornado also uses when no rule matched
        seen: set[int] = set()

        def walk_app(app: Any, chain: tuple[Any, ...]) -> None:
            if app is not self.app and self.on_app is not None:
                self.on_app(app)
            if app.settings.get("default_handler_class"):
                shared.add(app.settings["default_handler_class"])
            walk(app.default_router, chain)

        def walk(router: Any, chain: tuple[Any, ...]) -> None:
            if id(router) in seen:
                return
            seen.add(id(router))
            for rule in router.rules:
                target, matcher = rule.target, rule.matcher
                link = chain if isinstance(matcher, routing.AnyMatches) else (*chain, matcher)
                if isinstance(target, type) and issubclass(target, web.RequestHandler):
                    found.setdefault(target, []).append((link, _template(link, routing)))
                elif isinstance(target, web.Application):
                    walk_app(target, link)
                elif isinstance(getattr(target, "rules", None), list):
                    walk(target, link)

        walk_app(self.app, ())
        websocket = sys.modules.get("tornado.websocket")
        unique = {}
        for cls, chains in found.items():
            if cls in self.skip or (websocket and issubclass(cls, websocket.WebSocketHandler)):
                self.ignored.add(cls)  # websocket upgrades are not HTTP requests, as for ASGI
            elif len(chains) == 1 and cls not in shared:
                unique[cls] = chains[0][1]
        for cls in shared:
            found.setdefault(cls, [])
        self.candidates = found
        self.unique.clear()
        self.unique.update(unique)
        self.unrouted.clear()

    def route_of(self, handler: Any) -> Any:
        """The template (None: no rule matched, SKIP: not recorded) of a class not in ``unique``."""
        cls = handler.__class__
        chains = self.candidates.get(cls)
        if chains is None and cls not in self.unrouted:
            self.rebuild()  # routes may have been added since the table was built
            if cls in self.unique:
                return self.unique[cls]
            chains = self.candidates.get(cls)
            if chains is None:
                self.unrouted.add(cls)
        if cls in self.ignored:
            return SKIP
        if chains is None:
            return None
        request = handler.request
        for matchers, template in chains:
            if all(matcher.match(request) is not None for matcher in matchers):
                return template
        return None


def _template(chain: tuple[Any, ...], routing: Any) -> str:
    for matcher in reversed(chain):
        if isinstance(matcher, routing.PathMatches):
            return matcher.regex.pattern
    return ANY_PATH
