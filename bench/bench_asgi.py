"""Per-request overhead of the ASGI middleware around a trivial ASGI app.

The app is driven directly (its coroutine stepped with ``send(None)``, as an event loop would),
with a prepared scope and do-nothing ``receive``/``send``, so only the middleware differs. The
yardstick is a pure-Python pass-through that wraps ``send`` and ``receive`` and reads the clock
twice but records nothing: the least a Python ASGI middleware does.

Also `exporter_rows`, the result rows of the ASGI framework benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import last9
from harness import Candidates, Row, overhead, overheads_of
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


def otel_meter_provider() -> Any:
    """An SDK MeterProvider, so OpenTelemetry's histograms record (its default records nothing)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def exporter_rows(
    bench: str,
    factory: str,
    bare: str,
    ours: list[str],
    exporters: list[str],
    versus: str | None = None,
) -> list[Row]:
    """A row per overhead (see `overheads_of`), the best exporter's ÷ last9's worst, and, with
    `versus`, that exporter's ÷ last9's worst against the goal of 20 times (all timed)."""
    counted = ours + ([versus] if versus else [])
    added, described, instructions = overheads_of(factory, bare, counted=counted)

    def row(name: str, target: str = "", met: bool | None = None) -> Row:
        return overhead(
            bench, name, described[name], added[name], target, met, instructions.get(name, "")
        )

    rows = [row(name, "≤ 3 µs", added[name] <= 3000) for name in ours]
    rows += [row(name) for name in exporters]
    worst = max(added[name] for name in ours)
    best_exporter = min(exporters, key=added.__getitem__)
    ratio = added[best_exporter] / worst
    rows.append(Row(bench, f"{best_exporter} ÷ last9", f"{ratio:.0f}×", "≥ 10×", ratio >= 10))
    if versus:
        ratio = added[versus] / worst
        rows.append(Row(bench, f"{versus} ÷ last9", f"{ratio:.0f}×", "≥ 20×", ratio >= 20))
    return rows


def candidates() -> Candidates:
    return {
        "bare ASGI app": lambda: asgi_request(trivial_app),
        "last9 RedMiddleware": lambda: asgi_request(
            RedMiddleware(trivial_app, registry=last9.Registry(), program="bench")
        ),
        "Python pass-through": lambda: asgi_request(PassThrough(trivial_app)),
    }


def run() -> list[Row]:
    ours, floor = "last9 RedMiddleware", "Python pass-through"
    added, described, counts = overheads_of(
        "bench_asgi:candidates", "bare ASGI app", [ours, floor], calls=20_000, rounds=15
    )
    bench = "ASGI middleware, trivial app, overhead per request"
    ratio = added[ours] / added[floor]
    return [
        overhead(
            bench,
            ours,
            described[ours],
            added[ours],
            "≤ 3 µs",
            added[ours] <= 3000,
            counts.get(ours, ""),
        ),
        overhead(
            bench,
            f"{floor} (records nothing)",
            described[floor],
            added[floor],
            instructions=counts.get(floor, ""),
        ),
        Row(bench, "last9 ÷ pass-through", f"{ratio:.2f}×", "≤ 1×", ratio <= 1),
    ]
