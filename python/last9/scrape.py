"""The app's own metrics path, as every entry point answers it.

A :class:`~last9._core.MetricsEndpoint` holds the path and who may scrape it, and renders with
the GIL released. On an event loop the render also runs in a worker thread, so a scrape of many
series never holds up the loop's other requests. At start-up the app's own routes are asked
whether one of them answers the path too: last9 would then hide it, which is worth a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from last9._core import MetricsEndpoint, Registry
from last9.config import Settings

#: Answers "which of the app's own routes would a GET of this path reach?" (a description of the
#: route, or None).
RouteAt = Callable[[str], "str | None"]

_logger = logging.getLogger("last9")


def endpoint(settings: Settings, registry: Registry) -> MetricsEndpoint | None:
    """The app's metrics path from its settings; None when ``metrics_path`` is off.

    Raises:
        MetricsError: credentials that cannot work together.
    """
    if settings.metrics_path is None:
        return None
    auth = settings.metrics_auth
    return MetricsEndpoint(
        registry,
        settings.metrics_path,
        username=auth.username,
        password=auth.password,
        bearer_token=auth.bearer_token,
        ui=settings.ui,
    )


async def respond_async(
    metrics: MetricsEndpoint,
    authorization: str | None,
    accept: str | None,
    accept_encoding: str | None,
    head: bool = False,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``metrics.respond(...)`` in a worker thread, so the event loop goes on serving meanwhile.

    Without an asyncio loop (a trio server, say) it is answered in place: the render releases
    the GIL, but the loop waits for it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return metrics.respond(authorization, accept, accept_encoding, head)
    return await asyncio.to_thread(metrics.respond, authorization, accept, accept_encoding, head)


async def respond_ui_async(
    metrics: MetricsEndpoint, authorization: str | None, data: bool, head: bool = False
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``metrics.respond_ui(...)`` (the live page, or its data) in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return metrics.respond_ui(authorization, data, head)
    return await asyncio.to_thread(metrics.respond_ui, authorization, data, head)


def warn_if_shadowed(metrics: MetricsEndpoint | None, route_at: RouteAt | None) -> None:
    """Warns (once, at start-up) when the app has a route of its own that the metrics path
    hides. A router that cannot answer the question is no reason to fail the app's start."""
    if metrics is None or route_at is None:
        return
    try:
        route = route_at(metrics.path)
    except Exception:
        return
    if route is not None:
        _logger.warning(
            "last9: the app's own route %s also answers %s; last9 answers GET and HEAD of %s "
            "with the metrics instead. Set metrics_path (LAST9_METRICS_PATH) to another path, "
            "or to None, to keep the app's route.",
            route,
            metrics.path,
            metrics.path,
        )
