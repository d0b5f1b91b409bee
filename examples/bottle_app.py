"""The seed's example on Bottle, instrumented with one line."""

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
    app.run(host="127.0.0.1", port=8080)
