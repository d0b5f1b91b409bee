"""A Flask app whose durations are known: each request sleeps the milliseconds it names and
answers with the pid of the worker that served it (to tell gunicorn's workers apart) and how
long it slept, as measured (on a loaded machine a sleep can overrun)."""

import os
import time

from flask import Flask

from last9.wsgi.middleware import RedMiddleware

app = Flask("native")
app.wsgi_app = RedMiddleware(app)


@app.route("/sleep/<int:ms>")
def sleep(ms):
    start = time.perf_counter()
    time.sleep(ms / 1000)
    return f"{os.getpid()} {(time.perf_counter() - start) * 1000}"
