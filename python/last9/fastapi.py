"""FastAPI: a Starlette app, read by :mod:`last9.starlette`; this module only knows how
FastAPI lays out routers added with ``include_router``.

Before FastAPI 0.137, ``include_router`` copied each route into the app with its prefix joined
to its path, so the app's routes are plain Starlette routes. Since then an ``_IncludedRouter``
stands in the app's routes, and its effective route contexts carry the joined path; the context
a request used is left in ``scope["fastapi"]["effective_route_context"]``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any


def unfold(routes: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """(route to match, object the scope names it by) for each route, included routers
    unfolded into their effective routes."""
    routing = sys.modules.get("fastapi.routing")
    iter_route_contexts = getattr(routing, "iter_route_contexts", None)
    for route in routes:
        if iter_route_contexts is not None:
            contexts = [getattr(c, "_route_context", None) for c in iter_route_contexts([route])]
        elif hasattr(route, "effective_route_contexts"):  # FastAPI 0.137.0 to 0.137.2
            contexts = list(route.effective_route_contexts())
        else:
            contexts = [None]
        for context in contexts:
            if context is None:
                yield route, route
            else:
                yield (getattr(context, "starlette_route", None) or context), context


def included_context(scope: dict[str, Any], route: Any) -> Any:
    """The context of the included router that `route` answered through, if any: a route of a
    router included twice has one per inclusion, each with its own prefix."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return None
