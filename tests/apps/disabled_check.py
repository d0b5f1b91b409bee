"""Run with LAST9_DISABLED=1: every way of instrumenting an app hands the app back unchanged and
starts nothing (no thread, no file, no port, no patched client, no series).

The other LAST9_* variables of the environment ask for all that can be started (a metrics
port, a multi-process directory, remote write, client instrumentation), so that a switch that
leaks shows here. Prints "unchanged" when every check passed.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> None:
    import bottle
    import falcon
    import falcon.asgi
    import flask
    import tornado.web
    import urllib3
    from fastapi import FastAPI
    from pyramid.config import Configurator
    from starlette.applications import Starlette

    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen
    threads = os_threads()

    import last9
    import last9.asgi.middleware
    import last9.wsgi.middleware

    # The seed's line on a Flask app leaves its wsgi_app as it was.
    app = flask.Flask("disabled")
    app.add_url_rule("/name/<name>", view_func=lambda name: name)
    wsgi_app, request_class, run = app.wsgi_app, app.request_class, app.run
    app.wsgi_app = last9.wsgi.middleware.RedMiddleware(app)
    assert app.wsgi_app == wsgi_app, app.wsgi_app
    assert app.request_class is request_class and app.run == run
    assert app.test_client().get("/name/x").status_code == 200

    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    assert last9.wsgi.middleware.RedMiddleware(plain) is plain

    async def bare(scope, receive, send):
        pass

    assert last9.asgi.middleware.RedMiddleware(bare) is bare
    starlette = Starlette()
    starlette.add_middleware(last9.asgi.middleware.RedMiddleware)
    fastapi = FastAPI()
    fastapi.add_middleware(last9.asgi.middleware.RedMiddleware)
    for asgi_app in (starlette, fastapi):
        stack = asgi_app.build_middleware_stack()
        while hasattr(stack, "app"):
            assert not isinstance(stack, last9.asgi.middleware.RedMiddleware), stack
            stack = stack.app

    bottle_app = bottle.Bottle()
    assert last9.wsgi.middleware.RedMiddleware(bottle_app) is bottle_app
    falcon_app = falcon.App()
    assert last9.wsgi.middleware.RedMiddleware(falcon_app) is falcon_app
    falcon_asgi = falcon.asgi.App()
    assert last9.asgi.middleware.RedMiddleware(falcon_asgi) is falcon_asgi

    tornado_app = tornado.web.Application([(r"/", tornado.web.RequestHandler)])
    log_function = tornado_app.settings.get("log_function")
    assert last9.wsgi.middleware.RedMiddleware(tornado_app) is tornado_app
    import last9.tornado

    assert last9.tornado.instrument(tornado_app) is tornado_app
    assert tornado_app.settings.get("log_function") is log_function

    # The frameworks' own hooks stand aside.
    import last9.bottle
    import last9.falcon
    import last9.pyramid

    bottle_app.route("/", callback=lambda: "ok")
    plugin = last9.bottle.Plugin()
    bottle_app.install(plugin)
    # Bottle's own plugins still wrap the callback; last9's leaves it and the WSGI entry alone.
    assert plugin.apply(route_callback := bottle_app.routes[-1].callback, None) is route_callback
    assert "wsgi" not in vars(bottle_app) and plugin.app is None
    component = last9.falcon.Middleware()
    falcon.App(middleware=[component])
    config = Configurator()
    config.include("last9.pyramid")
    config.commit()
    tweens = config.registry.queryUtility(__import__("pyramid.interfaces").interfaces.ITweens)
    assert tweens is None or not any("last9" in name for name, _ in tweens.implicit()), tweens

    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["last9.django.RedMiddleware"],
        SECRET_KEY="x",
    )
    django.setup()
    from django.core.exceptions import MiddlewareNotUsed

    import last9.django

    try:
        last9.django.RedMiddleware(lambda request: None)
    except MiddlewareNotUsed:
        pass
    else:
        raise AssertionError("the Django middleware must stand aside")

    assert os_threads() == threads, (threads, os_threads())
    assert not port_open(int(os.environ["LAST9_METRICS_PORT"])), "metrics port listens"
    store = Path(os.environ["LAST9_MULTIPROC_DIR"])
    assert not store.exists() or not any(store.iterdir()), list(store.iterdir())
    assert last9.instrument_http_clients() == []
    assert urllib3.connectionpool.HTTPConnectionPool.urlopen is urlopen, "urllib3 patched"
    assert last9.multiprocess_dir() is None
    text = last9.generate_latest().decode()
    assert "http_requests_duration_milliseconds_count" not in text, text
    assert "http_requests_in_flight{" not in text, text
    print("unchanged")


urlpatterns: list[object] = []

if __name__ == "__main__":
    sys.exit(main())
