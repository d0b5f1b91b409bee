"""RED metrics for any WSGI app, with route templates for the frameworks last9 knows."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from last9 import config, scrape
from last9._adapter import detect_native, detect_wsgi
from last9._core import Registry, WsgiMiddleware
from last9.setup import instrument_app, switched_off

if TYPE_CHECKING:
    from typing_extensions import Unpack


class RedMiddleware(WsgiMiddleware):
    """Wraps a WSGI app and records ``http_requests_duration_milliseconds`` for each request.

    ``RedMiddleware(app)`` works on the Flask app itself (``app.wsgi_app = RedMiddleware(app)``),
    on ``app.wsgi_app`` and on any WSGI callable. Keyword arguments (the settings, declared once
    in :class:`last9.config.Options`) override ``LAST9_*`` environment variables.
    ``metrics_path`` (default ``/metrics``; None turns it off) is answered with the metrics
    instead of reaching the app; with ``metrics_username`` and ``metrics_password``, or
    ``metrics_bearer_token``, only to scrapes that present them (others get 401 and never reach
    the app). The per-request work is done in Rust.

    On an app that is no WSGI callable but that last9 knows (a ``tornado.web.Application``),
    ``RedMiddleware(app)`` instruments the app in place and returns it, for its own server.
    """

    __slots__ = ()

    def __new__(
        cls,
        app: Any,
        *,
        registry: Registry | None = None,
        **options: Unpack[config.Options],
    ) -> RedMiddleware:
        if switched_off(dict(options)):
            return _untouched(app)  # type: ignore[no-any-return]
        instrument = detect_native(app)
        if instrument is not None:
            return instrument(app, registry=registry, **options)  # type: ignore[no-any-return]
        adapter = detect_wsgi(app)
        app_setup = instrument_app(
            route_syntax=adapter.route_syntax,
            program_hint=adapter.program_hint,
            route_templates=adapter.route_templates,
            excluded_views=adapter.excluded_views,
            framework=adapter.framework,
            registry=registry,
            **options,
        )
        registry, recorder, metrics = app_setup.registry, app_setup.recorder, app_setup.metrics
        scrape.warn_if_shadowed(metrics, adapter.route_at)
        return super().__new__(
            cls,
            adapter.app,
            recorder,
            registry,
            adapter.route_getter,
            metrics,
            adapter.route_source,
            adapter.complete_bodies,
            adapter.route_at_start,
            adapter.werkzeug,
        )

    def __repr__(self) -> str:
        return f"RedMiddleware({self.app!r}, program={self.recorder.program!r})"


def _untouched(app: Any) -> Any:
    """What the seed's line gets back when last9 is switched off: the app itself, or for a Flask
    app (``app.wsgi_app = RedMiddleware(app)``) its own ``wsgi_app``, which calling the app would
    come back to."""
    flask = sys.modules.get("flask")
    if flask is not None and isinstance(app, flask.Flask):
        return app.wsgi_app
    return app
