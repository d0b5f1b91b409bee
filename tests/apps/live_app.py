"""The live page's app: a shop with fast, slow and failing routes that calls an upstream
(``LAST9_TEST_API``) with requests, instrumented by ``LAST9_INSTRUMENT_HTTP_CLIENTS=1``."""

import os
import time

import requests
from flask import Flask

from last9.wsgi.middleware import RedMiddleware

API = os.environ.get("LAST9_TEST_API", "http://127.0.0.1:1")

app = Flask("shop")


@app.route("/fast")
def fast() -> str:
    return "ok"


@app.route("/slow/<int:ms>")
def slow(ms: int) -> str:
    time.sleep(ms / 1000)
    return "slept"


@app.route("/flaky/<int:n>")
def flaky(n: int) -> tuple[str, int]:
    # One request in four fails.
    return ("failed", 503) if n % 4 == 0 else ("ok", 200)


@app.route("/stock/<int:n>")
def stock(n: int) -> str:
    return requests.get(f"{API}/items/{n}", timeout=5).text


app.wsgi_app = RedMiddleware(app, program="shop")
