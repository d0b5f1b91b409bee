"""Apps whose registry holds 10,000 series, so that rendering a scrape takes a while (tens of
milliseconds), and whose ``/ping`` answers at once: ASGI (``asgi_app``), WSGI (``wsgi_app``) and
Tornado (``python -m tests.apps.big_registry PORT``). They share the process's registry.
"""

from __future__ import annotations

import asyncio
import sys

import tornado.web
from tornado.httpserver import HTTPServer

import last9.tornado
from last9._core import Recorder, global_registry
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.wsgi.middleware import RedMiddleware as WsgiRedMiddleware

SERIES = 10_000


async def _asgi_ping(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"pong"})


def _wsgi_ping(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pong"]


class Ping(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("pong")


asgi_app = AsgiRedMiddleware(_asgi_ping, program="big")
wsgi_app = WsgiRedMiddleware(_wsgi_ping, program="big")
tornado_app = last9.tornado.instrument(tornado.web.Application([(r"/ping", Ping)]))

_bulk = Recorder(
    global_registry(), hostname="test", program="bulk", route_syntax="brace", max_routes=SERIES
)
for i in range(SERIES):
    _bulk.observe(f"/bulk/{i}", "", "localhost", "GET", 200, 1_000_000)


async def _serve_tornado(port: int) -> None:
    HTTPServer(tornado_app).listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_serve_tornado(int(sys.argv[1])))
