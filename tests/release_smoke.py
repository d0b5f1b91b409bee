"""The release smoke test: run by an installed last9 wheel's own Python, outside the checkout.

A WSGI app served over loopback and an ASGI app driven in-process, both instrumented; it checks
the exact counts in /metrics and prints a JSON report (version, where last9 was imported from,
the /metrics text). Standard library only, so any CPython >= 3.10 with the wheel can run it:
tests/test_release.py in fresh virtualenvs, scripts/smoke-aarch64.sh under qemu.
"""

import asyncio
import json
import re
import sys
import threading
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import last9
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.wsgi.middleware import RedMiddleware


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def hello(environ, start_response):
    missing = environ["PATH_INFO"] == "/missing"
    start_response("404 Not Found" if missing else "200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


server = make_server(
    "127.0.0.1", 0, RedMiddleware(hello, program="smoke-wsgi"), handler_class=Quiet
)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
for _ in range(3):
    assert urllib.request.urlopen(base + "/hello").read() == b"hello"
try:
    urllib.request.urlopen(base + "/missing")
except urllib.error.HTTPError as error:
    assert error.code == 404


async def created(scope, receive, send):
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"made"})


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/items",
    "raw_path": b"/items",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"api.example")],
    "server": ("127.0.0.1", 80),
    "client": ("127.0.0.1", 5000),
}


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def post(app):
    sent = []

    async def send(message):
        sent.append(message)

    await app(dict(SCOPE), receive, send)
    return sent


async def post_twice():
    app = AsgiRedMiddleware(created, program="smoke-asgi")
    for _ in range(2):
        sent = await post(app)
        assert sent[0]["status"] == 201 and sent[-1]["body"] == b"made"


asyncio.run(post_twice())
metrics = urllib.request.urlopen(base + "/metrics").read().decode()
COUNT = r"^http_requests_duration_milliseconds_count\{(.*)\} (\S+)$"
counts = {}
for labels, value in re.findall(COUNT, metrics, re.MULTILINE):
    pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    key = (pairs["program"], pairs["method"], pairs["per"], pairs["status"])
    counts[key] = float(value)
expected = {
    ("smoke-wsgi", "GET", "/hello", "200"): 3,
    ("smoke-wsgi", "GET", "/missing", "404"): 1,
    ("smoke-asgi", "POST", "/items", "201"): 2,
}
assert counts == expected, counts
json.dump({"version": last9.__version__, "file": last9.__file__, "metrics": metrics}, sys.stdout)
