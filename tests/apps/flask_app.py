"""A Flask app with the route shapes people write, instrumented the seed's way."""

import time

from flask import Blueprint, Flask, Response, stream_with_context

from last9.wsgi.middleware import RedMiddleware

app = Flask("shop")
app.wsgi_app = RedMiddleware(app, tenant="acme", cluster="test")

api = Blueprint("api", __name__, url_prefix="/api/v1")


@app.route("/name/<name>")
def hello(name):
    return f"<p>Hello, {name}!</p>"


@app.route("/item/<int:item_id>", methods=["GET", "POST"])
def item(item_id):
    return {"id": item_id}


@app.route("/files/<path:subpath>")
def files(subpath):
    return subpath


@app.route("/boom")
def boom():
    raise RuntimeError("boom")


@app.route("/slow/<int:ms>")
def slow(ms):
    time.sleep(ms / 1000)
    return "slept"


@app.route("/stream/<int:chunks>")
def stream(chunks):
    def generate():
        for i in range(chunks):
            time.sleep(0.05)
            yield f"chunk {i}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@api.route("/users/<uuid:user_id>/orders/<int:order_id>")
def order(user_id, order_id):
    return {"user": str(user_id), "order": order_id}


app.register_blueprint(api)
