"""The seed's Flask app with routes an operator leaves out of the metrics (LAST9_EXCLUDE)."""

import os

from flask import Flask

import last9
from last9.wsgi.middleware import RedMiddleware

app = Flask("control", static_folder=None)


@app.route("/name/<name>")
def hello(name):
    return f"<p>Hello, {name}!</p>", {"X-Pid": str(os.getpid())}


@app.route("/healthz")
def healthz():
    return "ok", {"X-Pid": str(os.getpid())}


@app.route("/static/<path:filename>")
def asset(filename):
    return filename, {"X-Pid": str(os.getpid())}


@app.route("/internal/<what>")
def internal(what):
    return what, {"X-Pid": str(os.getpid())}


@app.route("/ping")
@last9.exclude
def ping():
    return "pong", {"X-Pid": str(os.getpid())}


app.wsgi_app = RedMiddleware(app)
