"""A Bottle app instrumented with one line.

Run: python examples/bottle_app.py (PORT, default 8080)."""

import os

from bottle import Bottle

from last9.bottle import Plugin

app = Bottle()

# Only line that needs to be changed (or: serve RedMiddleware(app) instead of app)
app.install(Plugin())


@app.route("/name/<name>")
def hello_world(name):
    return f"<p>Hello, {name}!</p>"


@app.route("/static")
def hello_static():
    return "<p>Static</p>"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
