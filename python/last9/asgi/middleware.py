"""RED metrics for any ASGI 3 app, with route templates for the frameworks last9 knows.

Statuses recorded: the one sent in ``http.response.start``; 500 when the app raises before its
response is complete; 499 (nginx's "client closed request") when the client went away before
the response was complete and the app gave up, whether by returning or by raising.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from last9 import config, lineage, prefork, remote_write, server
from last9._core import Recorder, Registry, global_registry, lineage_enabled
from last9.frameworks import detect_asgi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Status recorded for a request whose client disconnected before the response was complete.
CLIENT_CLOSED_REQUEST = 499


class RedMiddleware:
    """Wraps an ASGI app and records ``http_requests_duration_milliseconds`` per request.

    ``lifespan`` and ``websocket`` scopes pass through untouched. Keyword arguments are those
    of :class:`last9.wsgi.middleware.RedMiddleware`.
    """

    def __init__(
        self,
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
        registry: Registry | None = None,
    ) -> None:
        adapter = detect_asgi(app)
        settings = config.resolve(
            program_hint=adapter.program_hint,
            program=program,
            hostname=hostname,
            tenant=tenant,
            cluster=cluster,
            buckets=buckets,
            metrics_path=metrics_path,
            max_routes=max_routes,
            max_domains=max_domains,
        )
        self.app = adapter.app
        if registry is None:
            prefork.activate()  # usually done at import; the app may have imported last9 early
        self.registry = registry or global_registry()
        self.recorder = Recorder(
            self.registry,
            hostname=settings.hostname,
            program=settings.program,
            tenant=settings.tenant,
            cluster=settings.cluster,
            buckets=list(settings.buckets) if settings.buckets is not None else None,
            max_routes=settings.max_routes,
            max_domains=settings.max_domains,
            route_syntax=adapter.route_syntax,
        )
        self.metrics_path = settings.metrics_path
        self._route_of = adapter.route_getter
        server.start_from_env(settings.metrics_port, settings.metrics_addr, self.registry)
        remote_write.start_from_env(self.registry)
        lineage.note_program(self.recorder.program)
        lineage.instrument_from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == self.metrics_path and scope["method"] in ("GET", "HEAD"):
            await self._serve_metrics(scope, send)
            return
        started = time.perf_counter_ns()
        status = 0
        finished = False
        disconnected = False
        # In flight from here until recorded; the token is given back exactly once (`_record`).
        token = [self.recorder.enter(scope["method"])]
        if lineage_enabled():
            lineage._inbound.set((self, scope))  # this request's task context only

        async def receive_noting_disconnect() -> Message:
            nonlocal disconnected
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_noting_status(message: Message) -> None:
            nonlocal status, finished
            await send(message)
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif (
                kind == "http.response.body"
                and not message.get("more_body", False)
                and not finished
            ):
                finished = True
                self._record(scope, status, started, token)

        try:
            await self.app(scope, receive_noting_disconnect, send_noting_status)
        except BaseException:
            # Recorded, then re-raised as it was: the server decides what the client sees.
            if not finished:
                self._record(scope, CLIENT_CLOSED_REQUEST if disconnected else 500, started, token)
            raise
        if not finished:
            # The app returned without finishing its response: the client went away, or the
            # app gave up; neither is a status the client received.
            self._record(
                scope,
                CLIENT_CLOSED_REQUEST if disconnected or status == 0 else status,
                started,
                token,
            )

    def _record(self, scope: Scope, status: int, started: int, token: list[int]) -> None:
        elapsed = time.perf_counter_ns() - started
        if token:
            self.recorder.leave(token.pop())
        route = self._route(scope)
        self.recorder.observe_scope(route, scope, status, elapsed)
        if lineage_enabled():
            headers = dict(scope.get("headers") or ())
            caller = headers.get(b"x-last9-caller") or headers.get(
                b"x-envoy-downstream-service-cluster"
            )
            self.recorder.count_caller(
                route, caller.decode("latin-1") if caller is not None else None
            )

    def _route(self, scope: Scope) -> str | None:
        try:
            return self._route_of(scope) if self._route_of is not None else None
        except Exception:
            _log_failure_once()
            return None

    def observe_client(
        self, scope: Scope, upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """Records an outbound call made while ``scope``'s request runs (see ``last9.lineage``)."""
        self.recorder.observe_client(self._route(scope), upstream, method, status, duration_ns)

    async def _serve_metrics(self, scope: Scope, send: Send) -> None:
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


_failure_logged = False


def _log_failure_once() -> None:
    global _failure_logged
    if not _failure_logged:
        _failure_logged = True
        import logging

        logging.getLogger("last9").warning(
            "last9: could not read the route of a request, counting it as unmatched", exc_info=True
        )
