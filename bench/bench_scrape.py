"""A scrape through an app's own ``/metrics`` (WSGI and ASGI middlewares) vs ``render()``.

Both must cost the same: the endpoint renders once, with the GIL released, straight into the
``bytes`` object handed to the server, so it adds no copy of the body. Reported beside the cost
of one allocation and copy of a body that size, the most a second copy would add.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench_asgi import SCOPE, receive
from bench_render import SERIES, last9_registry

import last9.asgi.middleware
import last9.wsgi.middleware
from harness import Row, compare


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"app"})


def wsgi_scrape(app: Any) -> Callable[[], None]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/metrics",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost",
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200"), status

    def scrape() -> None:
        body = app(dict(environ), start_response)
        assert len(b"".join(body)) > 1_000_000

    return scrape


def asgi_scrape(app: Any) -> Callable[[], None]:
    sizes: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sizes.append(len(message["body"]))

    async def serve() -> None:
        await app({**SCOPE, "path": "/metrics", "raw_path": b"/metrics"}, receive, send)

    def scrape() -> None:
        sizes.clear()
        coroutine = serve()
        try:
            while True:
                coroutine.send(None)
        except StopIteration:
            pass
        assert sum(sizes) > 1_000_000

    return scrape


def run() -> list[Row]:
    registry = last9_registry()
    wsgi = last9.wsgi.middleware.RedMiddleware(wsgi_app, registry=registry, program="bench")
    asgi = last9.asgi.middleware.RedMiddleware(asgi_app, registry=registry, program="bench")
    size = len(registry.render())
    body = b"x" * size
    timings = compare(
        {
            "render()": registry.render,
            "WSGI GET /metrics": wsgi_scrape(wsgi),
            "ASGI GET /metrics": asgi_scrape(asgi),
            "one allocation and copy of the body": lambda: bytearray(body),
        },
        calls=1,
        rounds=9,
        clock=time.thread_time_ns,
    )
    render_ns = timings["render()"].ns
    copy_ns = timings["one allocation and copy of the body"].ns
    bench = f"scrape of {SERIES:,} series ({size / 1e6:.0f} MB) through /metrics vs render()"
    rows = [
        Row(bench, "render()", f"{render_ns / 1e6:.1f} ms"),
        Row(bench, "one allocation and copy of the body", f"{copy_ns / 1e6:.1f} ms"),
        Row(
            bench,
            "render() ÷ one allocation and copy",
            f"{render_ns / copy_ns:.2f}×",
            "≤ 1.3×",
            render_ns <= 1.3 * copy_ns,
        ),
    ]
    for name in ("WSGI GET /metrics", "ASGI GET /metrics"):
        ratio = timings[name].ns / render_ns
        rows.append(Row(bench, name, f"{timings[name].ns / 1e6:.1f} ms"))
        rows.append(Row(bench, f"{name} ÷ render()", f"{ratio:.2f}×", "≤ 1.1×", ratio <= 1.1))
    return rows
