"""Per-request overhead of the ASGI middleware around a trivial ASGI app.

The app is driven directly (its coroutine stepped with ``send(None)``, as an event loop would),
with a prepared scope and do-nothing ``receive``/``send``, so only the middleware differs. The
yardstick is a pure-Python pass-through that wraps ``send`` and ``receive`` and reads the clock
twice but records nothing: the least a Python ASGI middleware does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import last9
from harness import Row, compare, paired_overheads, us
from last9.asgi.middleware import RedMiddleware

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/hello/42",
    "raw_path": b"/hello/42",
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"curl/8.5.0"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "state": {},
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    return None


def asgi_request(app: Any) -> Callable[[], None]:
    """One request through `app` with a fresh copy of SCOPE, awaited by a coroutine as a
    server's would, stepped to its end."""

    async def serve() -> None:
        await app(dict(SCOPE), receive, send)

    def request() -> None:
        coroutine = serve()
        try:
            while True:
                coroutine.send(None)
        except StopIteration:
            pass

    return request


START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain")],
}
BODY = {"type": "http.response.body", "body": b"ok"}


async def trivial_app(scope: Any, receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY)


class PassThrough:
    """Wraps send and receive and reads the clock twice; records nothing."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        status = 0

        async def receive_() -> Any:
            return await receive()

        async def send_(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive_, send_)
        time.perf_counter_ns() - started


def run() -> list[Row]:
    ours = RedMiddleware(trivial_app, registry=last9.Registry(), program="bench", hostname="bench")
    candidates = {
        "bare ASGI app": asgi_request(trivial_app),
        "last9 RedMiddleware": asgi_request(ours),
        "Python pass-through": asgi_request(PassThrough(trivial_app)),
    }
    timings = compare(candidates, calls=50_000, rounds=9, clock=time.thread_time_ns)
    added = paired_overheads(timings, "bare ASGI app")
    ours_ns, floor_ns = added["last9 RedMiddleware"], added["Python pass-through"]
    bench = "ASGI middleware, trivial app, overhead per request"
    return [
        Row(bench, "last9 RedMiddleware", us(ours_ns), "≤ 3 µs", ours_ns <= 3000),
        Row(bench, "Python pass-through (records nothing)", us(floor_ns)),
        Row(
            bench,
            "last9 ÷ pass-through",
            f"{ours_ns / floor_ns:.2f}×",
            "≤ 1×",
            ours_ns <= floor_ns,
        ),
    ]
