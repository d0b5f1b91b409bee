"""A Flask app whose views set a request label (``last9.set_label``), for gunicorn -w 2."""

from flask import Flask, request

import last9
from last9.wsgi.middleware import RedMiddleware

app = Flask("labels", static_folder=None)


@app.route("/order/<item>")
def order(item):
    tier = request.args.get("tier")
    if tier is not None:
        last9.set_label("tier", tier)
    last9.set_label("undeclared", "x")  # ignored, with one warning
    return f"ordered {item}"


@app.route("/stream/<item>")
def stream(item):
    last9.set_label("tier", request.args.get("tier", ""))

    def chunks():
        yield b"streamed "
        yield item.encode()

    return app.response_class(chunks())


app.wsgi_app = RedMiddleware(app)
