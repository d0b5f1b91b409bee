"""A Falcon ASGI app (`falcon.asgi.App`), instrumented as `RedMiddleware(app)`."""

import asyncio

import falcon
import falcon.asgi

from last9.asgi.middleware import RedMiddleware


class Name:
    async def on_get(self, req, resp, name):
        resp.text = f"Hello, {name}!"


class Item:
    async def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id}

    async def on_get_detail(self, req, resp, item_id):
        resp.media = {"id": item_id, "detail": True}


class Order:
    async def on_get(self, req, resp, user_id, order_id):
        resp.media = {"user": str(user_id), "order": order_id}


class Boom:
    async def on_get(self, req, resp):
        raise RuntimeError("boom")


class Stream:
    async def on_get(self, req, resp, chunks):
        async def generate():
            for i in range(chunks):
                await asyncio.sleep(0.05)
                yield f"chunk {i}\n".encode()

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = generate()


async def proxy(req, resp, **params):
    resp.text = f"proxied {req.path}"


falcon_app = falcon.asgi.App()
falcon_app.add_route("/name/{name}", Name())
falcon_app.add_route("/item/{item_id:int}", Item())
falcon_app.add_route("/item/{item_id:int}/detail", Item(), suffix="detail")
falcon_app.add_route("/api/v1/users/{user_id:uuid}/orders/{order_id:int}", Order())
falcon_app.add_route("/boom", Boom())
falcon_app.add_route("/stream/{chunks:int}", Stream())
falcon_app.add_sink(proxy, "/proxy")

app = RedMiddleware(falcon_app, program="shop", tenant="acme", cluster="test")
