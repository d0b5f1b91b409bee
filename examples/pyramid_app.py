"""A Pyramid app instrumented with one line.

Run: python examples/pyramid_app.py (PORT, default 6543)."""

import os
from wsgiref.simple_server import make_server

from pyramid.config import Configurator
from pyramid.response import Response

from last9.wsgi.middleware import RedMiddleware


def hello_world(request):
    return Response(f"<p>Hello, {request.matchdict['name']}!</p>")


def hello_static(request):
    return Response("<p>Static</p>")


with Configurator() as config:
    config.add_route("hello", "/name/{name}")
    config.add_view(hello_world, route_name="hello")
    config.add_route("static", "/static")
    config.add_view(hello_static, route_name="static")
    # Only line that needs to be changed (or: config.include("last9.pyramid"))
    app = RedMiddleware(config.make_wsgi_app())

if __name__ == "__main__":
    make_server("127.0.0.1", int(os.environ.get("PORT", "6543")), app).serve_forever()
