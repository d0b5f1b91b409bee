"""A Pyramid app with the route shapes people write: instrumented by RedMiddleware, or by the
tween that ``config.include("last9.pyramid")`` adds."""

import time

from pyramid.config import Configurator
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPMethodNotAllowed
from pyramid.response import Response

from last9.wsgi.middleware import RedMiddleware


def hello(request):
    return Response(f"<p>Hello, {request.matchdict['name']}!</p>")


def item(request):
    return {"id": int(request.matchdict["item_id"])}


def files(request):
    return Response("/".join(request.subpath))


def boom(request):
    raise RuntimeError("boom")


def slow(request):
    time.sleep(int(request.matchdict["ms"]) / 1000)
    return Response("slept")


def stream(request):
    def generate():
        for i in range(int(request.matchdict["chunks"])):
            time.sleep(0.05)
            yield f"chunk {i}\n".encode()

    return Response(app_iter=generate(), content_type="text/plain")


def order(request):
    return {"user": request.matchdict["user_id"], "order": int(request.matchdict["order_id"])}


def method_not_allowed(exc, request):
    """A view's request_method predicate failing is a 404 in Pyramid unless an app says 405."""
    return HTTPMethodNotAllowed()


def api_routes(config):
    config.add_route("order", "/users/{user_id}/orders/{order_id:\\d+}")
    config.add_view(order, route_name="order", renderer="json")


def configure(settings=None):
    config = Configurator(settings=settings)
    config.add_route("hello", "/name/{name}")
    config.add_view(hello, route_name="hello")
    config.add_route("item", "/item/{item_id:\\d+}")
    config.add_view(item, route_name="item", request_method=("GET", "POST"), renderer="json")
    config.add_route("files", "/files/*subpath")
    config.add_view(files, route_name="files")
    config.add_route("boom", "/boom")
    config.add_view(boom, route_name="boom")
    config.add_route("slow", "/slow/{ms:\\d+}")
    config.add_view(slow, route_name="slow")
    config.add_route("stream", "/stream/{chunks:\\d+}")
    config.add_view(stream, route_name="stream")
    config.include(api_routes, route_prefix="/api/v1")
    config.add_view(method_not_allowed, context=PredicateMismatch)
    return config


def make_app():
    """The main way: RedMiddleware around the router (served by gunicorn in the tests)."""
    router = configure().make_wsgi_app()
    return RedMiddleware(router, program="shop", tenant="acme", cluster="test")


def make_tween_app():
    """The Pyramid way: settings and an include, no wrapping (served by waitress)."""
    settings = {
        "pyramid.includes": "last9.pyramid",
        "last9.program": "shop-tween",
        "last9.tenant": "acme",
        "last9.cluster": "test",
    }
    return configure(settings).make_wsgi_app()
