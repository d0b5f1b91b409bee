"""RED metrics for any ASGI 3 app, with route templates for the frameworks last9 knows.

Statuses recorded: the one sent in ``http.response.start``; 500 when the app raises before its
response is complete; 499 (nginx's "client closed request") when the client went away before
the response was complete (the app received ``http.disconnect``), whatever the app did next, or
when the app returned without completing a response. A client that hangs up while a handler
runs without reading from it is not seen: the server drops the response, and the status the
app sent is recorded.

The per-request work is done in Rust (``last9._core.AsgiMiddleware``): no coroutine frame is
added to the app's, and the app's ``send`` is a Rust callable that returns the server's own
``send(...)`` awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from last9 import config
from last9._core import AsgiMiddleware, Registry
from last9.frameworks import detect_asgi
from last9.setup import instrument_app

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
        program: str | None = None,
        hostname: str | None = None,
        tenant: str | None = None,
        cluster: str | None = None,
        buckets: Sequence[float] | None = None,
        metrics_path: Any = config.UNSET,
        max_routes: int | None = None,
        max_domains: int | None = None,
        domains: Sequence[str] | None = None,
        registry: Registry | None = None,
    ) -> RedMiddleware:
        adapter = detect_asgi(app)
        app_setup = instrument_app(
            route_syntax=adapter.route_syntax,
            program_hint=adapter.program_hint,
            route_templates=adapter.route_templates,
            registry=registry,
            program=program,
            hostname=hostname,
            tenant=tenant,
            cluster=cluster,
            buckets=buckets,
            metrics_path=metrics_path,
            max_routes=max_routes,
            max_domains=max_domains,
            domains=domains,
        )
        settings, registry, recorder = app_setup.settings, app_setup.registry, app_setup.recorder
        self = super().__new__(
            cls, adapter.app, recorder, registry, adapter.route_getter, settings.metrics_path
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
        """Answers a scrape of ``metrics_path`` (called from the Rust ``__call__``)."""
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        accept = headers.get(b"accept", b"").decode("latin-1") or None
        accept_encoding = headers.get(b"accept-encoding", b"").decode("latin-1") or None
        content_type, encoding, body = self.registry.scrape(accept, accept_encoding)
        response_headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"vary", b"Accept, Accept-Encoding"),
        ]
        if encoding is not None:
            response_headers.append((b"content-encoding", encoding.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )
