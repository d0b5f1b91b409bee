"""The issue's app: Flask under a pre-fork server, with a prometheus_client counter of its own
beside last9's one line."""

import os

from flask import Flask
from prometheus_client import Counter

from last9.wsgi.middleware import RedMiddleware

ORDERS = Counter("app_orders", "Orders taken by the app", ["kind"])

app = Flask("onescrape")
app.wsgi_app = RedMiddleware(app)


@app.route("/order/<kind>")
def order(kind):
    ORDERS.labels(kind=kind).inc()
    return "ok", {"X-Pid": str(os.getpid())}
