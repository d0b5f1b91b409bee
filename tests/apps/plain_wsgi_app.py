"""A WSGI app with no router: last9 normalises its raw paths into `per`."""

from last9.wsgi.middleware import RedMiddleware


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = RedMiddleware(hello, program="plain")
