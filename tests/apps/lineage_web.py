"""The calling side of the lineage test: a Flask app under gunicorn, calling ``LAST9_TEST_API``
with requests and httpx (clients instrumented by ``LAST9_INSTRUMENT_HTTP_CLIENTS=1``)."""

import os

import httpx
import requests
from flask import Flask

from last9.wsgi.middleware import RedMiddleware

API = os.environ.get("LAST9_TEST_API", "http://127.0.0.1:1")

app = Flask("storefront")


@app.route("/buy/<int:n>")
def buy(n: int) -> str:
    return requests.get(f"{API}/items/{n}", timeout=5).text


@app.route("/look/<int:n>")
def look(n: int) -> str:
    with httpx.Client() as client:
        return client.get(f"{API}/items/{n}", timeout=5).text


@app.route("/fail")
def fail() -> tuple[str, int]:
    return "failed", 503


@app.route("/down")
def down() -> str:
    try:
        requests.get("http://127.0.0.1:9/", timeout=2)
    except requests.RequestException:
        return "down"
    return "up"


app.wsgi_app = RedMiddleware(app)
