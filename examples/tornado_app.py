"""A Tornado app instrumented with one line.

Run: python examples/tornado_app.py (PORT, default 5000)."""

import asyncio
import os

import tornado.web

from last9.tornado import instrument


class HelloWorld(tornado.web.RequestHandler):
    async def get(self, name):
        await asyncio.sleep(1)
        self.write(f"<p>Hello, {name}!</p>")


class HelloStatic(tornado.web.RequestHandler):
    def get(self):
        self.write("<p>Static</p>")


app = tornado.web.Application([(r"/name/(?P<name>[^/]+)", HelloWorld), (r"/static", HelloStatic)])

# Only line that needs to be changed (RedMiddleware(app) does the same)
instrument(app)


async def main():
    app.listen(int(os.environ.get("PORT", "5000")), "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
