"""RED metrics for any ASGI 3 app, with route templates for the frameworks last9 knows.

Statuses recorded: the one sent in ``http.response.start``; 500 when the app raises before its
response is complete; 499 (nginx's "client closed request") when the client went away before
the response was complete (the app received ``http.disconnect``), whatever the app did next, or
when the app returned without completing a response. A client that hangs up while a handler
runs without reading from it is not seen: servers tell an app only through ``receive()`` (uvicorn
lets ``send()`` after a disconnect return quietly), so the status the app sent is recorded.

``GET``/``HEAD`` of ``metrics_path`` is answered here, never by the app, after the credentials
check; the render runs in a worker thread, so the loop goes on serving other requests.

The per-request work is done in Rust (``last9._core.AsgiMiddleware``): no coroutine frame is
added to the app's, and the app's ``send`` is a Rust callable that returns the server's own
``send(...)`` awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from last9 import config, scrape
from last9._adapter import detect_asgi
from last9._core import AsgiMiddleware, Registry
from last9.setup import instrument_app, switched_off

if TYPE_CHECKING:
    from typing_extensions import Unpack

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Status recorded for a request whose client disconnected before the response was complete.
CLIENT_CLOSED_REQUEST = 499


class RedMiddleware(AsgiMiddleware):
    """Wraps an ASGI app and records ``http_requests_duration_milliseconds`` per request.

    ``RedMiddleware(app)`` works on the app object, and as ``app.add_middleware(RedMiddleware)``
    in Starlette and FastAPI. ``lifespan`` and ``websocket`` scopes pass through untouched.
    Keyword arguments are those of :class:`last9.wsgi.middleware.RedMiddleware`.
    """

    def __new__(
        cls,
        app: Any,
        *,
        registry: Registry | None = None,
        **options: Unpack[config.Options],
    ) -> RedMiddleware:
        if switched_off(dict(options)):
            return app  # type: ignore[no-any-return]
        adapter = detect_asgi(app)
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
        self = super().__new__(
            cls,
            adapter.app,
            recorder,
            registry,
            adapter.route_getter,
            metrics,
            adapter.route_cache,
        )

        # Servers (uvicorn, hypercorn, asgiref) tell ASGI 3 from ASGI 2 apps by asking whether
        # `app.__call__` is a coroutine function, which a Rust slot is not. This instance
        # attribute answers them; calling the instance still goes through the Rust slot.
        async def __call__(scope: Scope, receive: Receive, send: Send) -> None:
            await AsgiMiddleware.__call__(self, scope, receive, send)

        self.__dict__["__call__"] = __call__
        return self

    def __repr__(self) -> str:
        return f"RedMiddleware({self.app!r}, program={self.recorder.program!r})"

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
        """Answers a scrape of ``metrics_path`` (called from the Rust ``__call__``), rendered in
        a worker thread so that the loop goes on serving the app meanwhile."""
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        status, response_headers, body = await scrape.respond_async(
            self.metrics,
            _header(headers, b"authorization"),
            _header(headers, b"accept"),
            _header(headers, b"accept-encoding"),
            head=scope["method"] == "HEAD",
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(n.lower().encode(), v.encode()) for n, v in response_headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _serve_ui(self, scope: Scope, send: Send, data: bool) -> None:
        """Answers ``<metrics_path>/ui`` (the live page) or its ``ui/data.json`` (called from
        the Rust ``__call__`` when ``ui`` is on), computed in a worker thread."""
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        status, response_headers, body = await scrape.respond_ui_async(
            self.metrics, _header(headers, b"authorization"), data, head=scope["method"] == "HEAD"
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(n.lower().encode(), v.encode()) for n, v in response_headers],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    return headers.get(name, b"").decode("latin-1") or None
