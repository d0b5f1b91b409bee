"""Falcon apps with last9's component whose resource calls another service while it serves
(here the app itself, at the Host it was reached by): `wsgi_app` (requests) and `asgi_app`
(httpx), for lineage through the component."""

import falcon
import falcon.asgi
import httpx
import requests

from last9.falcon import Middleware


class Relay:
    def on_get(self, req, resp, n):
        hello = requests.get(f"http://{req.host}:{req.port}/name/n{n}", timeout=10)
        resp.text = f"relayed {hello.status_code}"


class AsyncRelay:
    async def on_get(self, req, resp, n):
        async with httpx.AsyncClient() as client:
            hello = await client.get(f"http://{req.host}:{req.port}/name/n{n}", timeout=10)
        resp.text = f"relayed {hello.status_code}"


class Name:
    def on_get(self, req, resp, name):
        resp.text = f"Hello, {name}!"


class AsyncName:
    async def on_get(self, req, resp, name):
        resp.text = f"Hello, {name}!"


wsgi_app = falcon.App(middleware=[Middleware(program="shop-mw")])
wsgi_app.add_route("/relay/{n:int}", Relay())
wsgi_app.add_route("/name/{name}", Name())

asgi_app = falcon.asgi.App(middleware=[Middleware(program="shop-mw")])
asgi_app.add_route("/relay/{n:int}", AsyncRelay())
asgi_app.add_route("/name/{name}", AsyncName())
