"""The seed's app for pre-fork servers: the one instrumentation line and no other set-up."""

import os

from flask import Flask

from last9.wsgi.middleware import RedMiddleware

app = Flask("prefork")
app.wsgi_app = RedMiddleware(app)


@app.route("/name/<name>")
def hello(name):
    return f"<p>Hello, {name}!</p>", {"X-Pid": str(os.getpid())}
