"""A Falcon app instrumented with one line. Run: python examples/falcon_app.py (PORT, default
8000), or gunicorn --chdir examples falcon_app:app. For `falcon.asgi.App`, wrap it with
`last9.asgi.middleware.RedMiddleware` and run it with uvicorn."""

import os

import falcon

from last9.wsgi.middleware import RedMiddleware


class HelloWorld:
    def on_get(self, req, resp, name):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = f"<p>Hello, {name}!</p>"


class HelloStatic:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_HTML
        resp.text = "<p>Static</p>"


falcon_app = falcon.App()
falcon_app.add_route("/name/{name}", HelloWorld())
falcon_app.add_route("/static", HelloStatic())

# Only line that needs to be changed (or: falcon.App(middleware=[last9.falcon.Middleware()]))
app = RedMiddleware(falcon_app)

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    make_server("127.0.0.1", int(os.environ.get("PORT", "8000")), app).serve_forever()
