"""A Tornado app with the route shapes people write, served by Tornado's own HTTPServer.

Run as ``python -m tests.apps.tornado_app PORT [PROCESSES]``: with several processes, Tornado's
own multi-process mode (``bind_sockets``, then ``fork_processes``).
"""

from __future__ import annotations

import asyncio
import os
import sys

import tornado.netutil
import tornado.process
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.routing import PathMatches, Rule

import last9.tornado


class Hello(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        self.write(f"<p>Hello, {name}!</p>")


class Item(tornado.web.RequestHandler):
    def get(self, item_id: str) -> None:
        self.write({"id": int(item_id)})

    def post(self, item_id: str) -> None:
        self.set_status(201)
        self.write({"id": int(item_id)})


class Files(tornado.web.RequestHandler):
    def get(self, subpath: str) -> None:
        self.write(subpath)


class Boom(tornado.web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError("boom")


class Forbidden(tornado.web.RequestHandler):
    def get(self) -> None:
        raise tornado.web.HTTPError(403)


class Slow(tornado.web.RequestHandler):
    async def get(self, ms: str) -> None:
        await asyncio.sleep(int(ms) / 1000)
        self.write("slept")


class Stream(tornado.web.RequestHandler):
    async def get(self, chunks: str) -> None:
        self.set_header("Content-Type", "text/plain")
        for i in range(int(chunks)):
            await asyncio.sleep(0.05)
            self.write(f"chunk {i}\n")
            await self.flush()


class Order(tornado.web.RequestHandler):
    def get(self, user_id: str, order_id: str) -> None:
        self.write({"user": user_id, "order": int(order_id)})


class AdminUser(tornado.web.RequestHandler):
    def get(self, user: str) -> None:
        self.write(user)


class Pid(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(str(os.getpid()))


class Ping(tornado.web.RequestHandler):
    """Routed by two rules: the template comes from the one that matched."""

    def get(self) -> None:
        self.write("pong")


def make_app() -> tornado.web.Application:
    admin = tornado.web.Application([(r"/admin/users/(?P<user>\w+)/?", AdminUser)])
    return tornado.web.Application(
        [
            (r"/name/([^/]+)", Hello),
            (r"/item/(?P<item_id>[0-9]+)", Item),
            (r"/files/(?P<subpath>.+)", Files),
            (r"/boom", Boom),
            (r"/forbidden", Forbidden),
            (r"/slow/(?P<ms>\d+)", Slow),
            (r"/stream/(?P<chunks>\d+)", Stream),
            (r"/v1/ping", Ping),
            (r"/v2/ping", Ping),
            (r"/old/(.*)", tornado.web.RedirectHandler, {"url": "/name/{0}"}),
            (r"/pid", Pid),
            # A nested router: its rules match the whole path.
            Rule(
                PathMatches(r"/api/.*"),
                [(r"/api/v1/users/(?P<user_id>[0-9a-f-]+)/orders/(?P<order_id>\d+)", Order)],
            ),
            # A nested Application: its handlers log to it, not to the outer app.
            Rule(PathMatches(r"/admin/.*"), admin),
        ]
    )


app = last9.tornado.instrument(make_app(), tenant="acme", cluster="test")


async def serve(sockets: list) -> None:
    HTTPServer(app).add_sockets(sockets)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sockets = tornado.netutil.bind_sockets(int(sys.argv[1]), "127.0.0.1")
    processes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    if processes > 1:
        tornado.process.fork_processes(processes)  # each child returns here; the parent waits
    asyncio.run(serve(sockets))
