"""A Bottle app with the route shapes people write: instrumented by RedMiddleware, or by the
plugin."""

import time

import bottle

from last9.bottle import Plugin
from last9.wsgi.middleware import RedMiddleware


def build():
    app = bottle.Bottle()

    @app.route("/name/<name>")
    def hello(name):
        return f"<p>Hello, {name}!</p>"

    @app.route("/item/<item_id:int>", method=["GET", "POST"])
    def item(item_id):
        return {"id": item_id}

    @app.route("/files/<subpath:path>")
    def files(subpath):
        return subpath

    @app.route("/boom")
    def boom():
        raise RuntimeError("boom")

    @app.route("/slow/<ms:int>")
    def slow(ms):
        time.sleep(ms / 1000)
        return "slept"

    @app.route("/stream/<chunks:int>")
    def stream(chunks):
        bottle.response.content_type = "text/plain"
        for i in range(chunks):
            time.sleep(0.05)
            yield f"chunk {i}\n"

    # Mounted the 0.13 way (prefix ends in "/"): the routes are copied in, prefix included.
    api = bottle.Bottle()

    @api.route("/users/<user_id>/orders/<order_id:int>")
    def order(user_id, order_id):
        return {"user": user_id, "order": order_id}

    app.mount("/api/v1/", api)

    # Mounted the WSGI way (Bottle 0.12's only way; here: no trailing slash), one inside
    # another: each app routes the rest of the path on its own.
    legacy = bottle.Bottle()

    @legacy.route("/items/:item_id", method="GET")
    def legacy_item(item_id):
        return {"legacy": item_id}

    deep = bottle.Bottle()

    @deep.route("/<a>/<b:re:[a-z]+>")
    def pair(a, b):
        return f"{a}-{b}"

    legacy.mount("/deep", deep)
    app.mount("/legacy", legacy)
    return app


#: The main way (served by gunicorn in the tests).
application = RedMiddleware(build(), program="shop", tenant="acme", cluster="test")


def make_plugin_app():
    """The Bottle way (served by waitress)."""
    app = build()
    app.install(Plugin(program="shop-plugin", tenant="acme", cluster="test"))
    return app
