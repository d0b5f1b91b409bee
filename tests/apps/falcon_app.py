"""A Falcon app (WSGI) with the route shapes people write, instrumented two ways:
`app = RedMiddleware(falcon_app)`, and `component_app` with last9's Falcon middleware."""

import time

import falcon

from last9.falcon import Middleware
from last9.wsgi.middleware import RedMiddleware


class Name:
    def on_get(self, req, resp, name):
        resp.text = f"Hello, {name}!"


class Item:
    def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id}

    def on_get_detail(self, req, resp, item_id):
        resp.media = {"id": item_id, "detail": True}


class Order:
    def on_get(self, req, resp, user_id, order_id):
        resp.media = {"user": str(user_id), "order": order_id}


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("boom")


class Stream:
    def on_get(self, req, resp, chunks):
        def generate():
            for i in range(chunks):
                time.sleep(0.05)
                yield f"chunk {i}\n".encode()

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = generate()


def proxy(req, resp, **params):
    resp.text = f"proxied {req.path}"


def build(app: falcon.App) -> falcon.App:
    app.add_route("/name/{name}", Name())
    app.add_route("/item/{item_id:int}", Item())
    app.add_route("/item/{item_id:int}/detail", Item(), suffix="detail")
    app.add_route("/api/v1/users/{user_id:uuid}/orders/{order_id:int}", Order())
    app.add_route("/boom", Boom())
    app.add_route("/stream/{chunks:int}", Stream())
    app.add_sink(proxy, "/proxy")
    return app


app = RedMiddleware(build(falcon.App()), program="shop", tenant="acme", cluster="test")

component_app = build(
    falcon.App(middleware=[Middleware(program="shop-mw", tenant="acme", cluster="test")])
)
