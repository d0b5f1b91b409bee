"""Tornado: route templates from the rule that routed each request, in-process and over HTTP
through Tornado's own server in a subprocess."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import tornado.simple_httpclient
import tornado.web
import tornado.websocket
from auth_helpers import BASIC, CREDENTIALS
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.routing import HostMatches, PathMatches, Rule
from tornado.testing import bind_unused_port
from tornado.wsgi import WSGIContainer

import last9
import last9.tornado
from conftest import METRIC, ROOT, counts_by, free_port, parse, scrape, serve, wait_for_port
from last9 import config
from last9.tornado import RedApplication, instrument
from last9.wsgi.middleware import RedMiddleware
from traffic import family


class Hello(tornado.web.RequestHandler):
    def get(self, name: str) -> None:
        self.write(name)


class Named(tornado.web.RequestHandler):
    def get(self, **kwargs: str) -> None:
        self.write(kwargs)


class Ok(tornado.web.RequestHandler):
    def get(self, *args: str) -> None:
        self.write("ok")

    def post(self, *args: str) -> None:
        self.write("posted")


class NotFound(tornado.web.RequestHandler):
    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


def listen(app: tornado.web.Application) -> tuple[HTTPServer, int]:
    """Tornado's server for `app` on a free loopback port (call inside the event loop)."""
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    return server, port


def fetch_all(
    app: tornado.web.Application,
    requests_: Sequence[str | tuple[str, str]],
    headers: dict[str, str] | None = None,
) -> list[HTTPResponse]:
    """Serves `app` on a loopback port in this process and makes the requests in order."""

    async def go() -> list[HTTPResponse]:
        server, port = listen(app)
        client = AsyncHTTPClient(force_instance=True)
        responses = []
        try:
            for item in requests_:
                method, path = ("GET", item) if isinstance(item, str) else item
                responses.append(
                    await client.fetch(
                        f"http://127.0.0.1:{port}{path}",
                        method=method,
                        body=b"" if method in ("POST", "PUT") else None,
                        headers=headers,
                        follow_redirects=False,
                        raise_error=False,
                        allow_nonstandard_methods=True,
                    )
                )
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()
        return responses

    return asyncio.run(go())


def counted(registry: last9.Registry, *labels: str) -> dict[tuple[str, ...], float]:
    return counts_by(registry.render(), *(labels or ("per", "status", "method")))


@pytest.fixture(autouse=True)
def quiet_tornado_logs():
    """Tornado logs every 4xx/5xx and uncaught exception; the tests cause them on purpose."""
    loggers = [logging.getLogger(n) for n in ("tornado.access", "tornado.application")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_regex_groups_become_params_and_unmatched_paths_do_not(registry):
    app = instrument(
        tornado.web.Application(
            [
                (r"/name/([^/]+)", Hello),
                (r"/item/(?P<item_id>[0-9]+)/?", Named),
                (r"/a/([0-9]+)/b/([a-z]+)", Ok),
            ]
        ),
        registry=registry,
        hostname="box",
    )
    codes = [
        r.code
        for r in fetch_all(
            app,
            [
                *(f"/name/{n}" for n in range(10)),
                "/item/1",
                "/item/22/",
                "/a/1/b/x",
                "/item/abc",
                "/nothing/here",
                ("POST", "/name/x"),
                ("DELETE", "/a/1/b/x"),
                ("PROPFIND", "/item/3"),
            ],
        )
    ]
    assert codes == [200] * 13 + [404, 404, 405, 405, 405]
    assert counted(registry) == {
        ("/name/{arg0}", "200", "GET"): 10,
        ("/item/{item_id}/", "200", "GET"): 2,
        ("/a/{arg0}/b/{arg1}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 2,
        ("/name/{arg0}", "405", "POST"): 1,
        ("/a/{arg0}/b/{arg1}", "405", "DELETE"): 1,
        ("/item/{item_id}/", "405", "_OTHER"): 1,  # methods are a bounded label
    }


def test_red_middleware_instruments_a_tornado_app_in_place(registry):
    app = tornado.web.Application([(r"/u/(?P<uid>\d+)", Named)])
    wrapped = RedMiddleware(app, registry=registry, program="svc")
    assert wrapped is app  # Tornado's server still gets its Application
    fetch_all(app, ["/u/5"])
    assert counted(registry, "per", "program") == {("/u/{uid}", "svc"): 1}


def test_red_application_instruments_itself(registry):
    app = RedApplication(
        [(r"/u/(?P<uid>\d+)", Named)],
        last9_options={"registry": registry, "program": "svc"},
        compress_response=True,
    )
    assert app.settings == {"compress_response": True}
    fetch_all(app, ["/u/1", "/x"])
    assert counted(registry, "per", "status", "program") == {
        ("/u/{uid}", "200", "svc"): 1,
        ("/unmatched", "404", "svc"): 1,
    }


def test_nested_routers_and_applications_give_the_inner_template(registry):
    inner_app = tornado.web.Application(
        [(r"/sub/items/(?P<item>\d+)", Named)], default_handler_class=NotFound
    )
    app = instrument(
        tornado.web.Application(
            [
                Rule(
                    PathMatches(r"/api/.*"),
                    [
                        Rule(PathMatches(r"/api/v1/.*"), [(r"/api/v1/users/(\d+)", Ok)]),
                        (r"/api/v2/users/(?P<uid>\d+)", Named),
                    ],
                ),
                Rule(PathMatches(r"/sub/.*"), inner_app),
                Rule(PathMatches(r"/anything/.*"), [Rule(HostMatches(r".*"), Ok)]),
            ]
        ),
        registry=registry,
    )
    fetch_all(
        app,
        [
            "/api/v1/users/1",
            "/api/v2/users/2",
            "/api/v3/nope",
            "/sub/items/3",
            "/sub/nope",
            "/anything/at/all",
        ],
    )
    assert counted(registry) == {
        ("/api/v1/users/{arg0}", "200", "GET"): 1,
        ("/api/v2/users/{uid}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 2,  # one by the outer app, one by the inner one
        ("/sub/items/{item}", "200", "GET"): 1,
        # No PathMatches on the way to Ok but the router's: its pattern, as written.
        ("/anything/.*", "200", "GET"): 1,
    }


def test_a_handler_class_on_several_rules_gets_the_matching_rule(registry):
    app = instrument(
        tornado.web.Application(
            [
                (r"/v1/ping", Ok),
                (r"/v2/ping/(\d+)", Ok),
                (r"/old/(.*)", tornado.web.RedirectHandler, {"url": "/v1/ping"}),
                (r"/older", tornado.web.RedirectHandler, {"url": "/v1/ping"}),
                (r"/gone", tornado.web.ErrorHandler, {"status_code": 410}),
            ],
            static_path=os.path.dirname(__file__),
        ),
        registry=registry,
    )
    codes = [
        r.code
        for r in fetch_all(
            app,
            ["/v1/ping", "/v2/ping/3", "/old/x", "/older", "/gone", "/nope", "/static/conftest.py"],
        )
    ]
    assert codes == [200, 200, 301, 301, 410, 404, 200]
    assert counted(registry) == {
        ("/v1/ping", "200", "GET"): 1,
        ("/v2/ping/{arg0}", "200", "GET"): 1,
        ("/old/{arg0}", "301", "GET"): 1,
        ("/older", "301", "GET"): 1,
        ("/gone", "410", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
        ("/static/{arg0}", "200", "GET"): 1,
    }


def test_default_handler_class_is_unmatched_unless_a_rule_routed_to_it(registry):
    app = instrument(
        tornado.web.Application([(r"/known", NotFound)], default_handler_class=NotFound),
        registry=registry,
    )
    fetch_all(app, ["/known", "/unknown"])
    assert counted(registry) == {("/known", "404", "GET"): 1, ("/unmatched", "404", "GET"): 1}


def test_rules_added_after_instrumenting_are_found(registry):
    app = instrument(tornado.web.Application([(r"/a", Ok)]), registry=registry)
    fetch_all(app, ["/a"])
    app.add_handlers(r"api\.example\.com", [(r"/b/(?P<uid>\d+)", Named)])
    app.wildcard_router.add_rules([(r"/c/(.*)", Hello)])
    fetch_all(app, ["/b/1", "/c/x", "/a"], headers={"Host": "api.example.com"})
    assert counted(registry, "per", "status", "domain") == {
        ("/a", "200", "127.0.0.1"): 1,
        ("/b/{uid}", "200", "api.example.com"): 1,
        ("/c/{arg0}", "200", "api.example.com"): 1,
        ("/a", "200", "api.example.com"): 1,
    }


def test_statuses_are_what_tornado_sent(registry):
    class Teapot(tornado.web.RequestHandler):
        def get(self) -> None:
            self.set_status(418)
            self.finish("short and stout")

    class Boom(tornado.web.RequestHandler):
        async def get(self) -> None:
            await asyncio.sleep(0)
            raise RuntimeError("boom")

    class Denied(tornado.web.RequestHandler):
        def get(self) -> None:
            raise tornado.web.HTTPError(403)

    class Finished(tornado.web.RequestHandler):
        def prepare(self) -> None:
            raise tornado.web.Finish("early")

    app = instrument(
        tornado.web.Application(
            [(r"/teapot", Teapot), (r"/boom", Boom), (r"/denied", Denied), (r"/early", Finished)]
        ),
        registry=registry,
    )
    codes = [r.code for r in fetch_all(app, ["/teapot", "/boom", "/denied", "/early"])]
    assert codes == [418, 500, 403, 200]
    assert counted(registry) == {
        ("/teapot", "418", "GET"): 1,
        ("/boom", "500", "GET"): 1,
        ("/denied", "403", "GET"): 1,
        ("/early", "200", "GET"): 1,
    }


def test_responses_are_unchanged(registry):
    class Custom(tornado.web.RequestHandler):
        def get(self, n: str) -> None:
            self.set_status(201)
            self.set_header("X-Custom", "yes")
            self.write({"n": int(n)})

    def make() -> tornado.web.Application:
        return tornado.web.Application([(r"/x/(\d+)", Custom)])

    paths = ["/x/1", "/x/abc", "/missing", ("POST", "/x/1")]
    plain = fetch_all(make(), paths)
    wrapped = fetch_all(instrument(make(), registry=registry), paths)
    for a, b in zip(plain, wrapped, strict=True):
        assert (a.code, a.body) == (b.code, b.body)
        assert {k: v for k, v in a.headers.get_all() if k != "Date"} == {
            k: v for k, v in b.headers.get_all() if k != "Date"
        }


def test_the_access_log_and_log_function_still_run(registry):
    seen: list[tuple[int, str]] = []
    app = instrument(
        tornado.web.Application(
            [(r"/a", Ok)], log_function=lambda h: seen.append((h.get_status(), h.request.path))
        ),
        registry=registry,
    )
    fetch_all(app, ["/a", "/b"])
    assert seen == [(200, "/a"), (404, "/b")]
    assert sum(counted(registry).values()) == 2


def test_instrumenting_again_replaces_the_earlier_hook(registry):
    other = last9.Registry()
    app = instrument(tornado.web.Application([(r"/a", Ok)]), registry=other)
    instrument(app, registry=registry)
    responses = fetch_all(app, ["/a", "/metrics"])
    assert counted(registry) == {("/a", "200", "GET"): 1}
    assert counted(other) == {}
    assert counts_by(responses[1].body, "per") == {("/a",): 1}


def test_metrics_are_served_and_scrapes_not_counted(registry):
    app = instrument(tornado.web.Application([(r"/a", Ok)]), registry=registry)
    om = "application/openmetrics-text; version=1.0.0"
    responses = fetch_all(app, ["/a", "/metrics", ("HEAD", "/metrics"), ("POST", "/metrics")])
    text, head, post = responses[1], responses[2], responses[3]
    assert text.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert text.body.startswith(b"# HELP")
    assert head.code == 200 and head.body == b""
    assert post.code == 404  # only GET and HEAD are scrapes; the rest go to the app
    assert counted(registry) == {("/a", "200", "GET"): 1, ("/unmatched", "404", "POST"): 1}
    (openmetrics,) = fetch_all(app, ["/metrics"], headers={"Accept": om})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.endswith(b"# EOF\n")


def test_metrics_path_can_move_or_go(registry):
    moved = instrument(
        tornado.web.Application([(r"/metrics", Ok)]), registry=registry, metrics_path="/_m"
    )
    responses = fetch_all(moved, ["/metrics", "/_m"])
    assert responses[0].body == b"ok"
    assert responses[1].body.startswith(b"# HELP")
    off = instrument(tornado.web.Application([]), registry=last9.Registry(), metrics_path=None)
    assert fetch_all(off, ["/metrics"])[0].code == 404


def test_a_wsgi_app_in_a_fallback_handler_is_counted_once_by_its_own_middleware(registry):
    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"from wsgi"]

    # FallbackHandler bypasses log_request: the WSGI app's RedMiddleware counts it, once.
    container = WSGIContainer(RedMiddleware(hello, registry=registry, program="wsgi"))
    app = instrument(
        tornado.web.Application(
            [(r"/a", Ok), (r"/wsgi/.*", tornado.web.FallbackHandler, {"fallback": container})]
        ),
        registry=registry,
        program="tornado",
    )
    responses = fetch_all(app, ["/a", "/wsgi/users/42"])
    assert [r.body for r in responses] == [b"ok", b"from wsgi"]
    assert counted(registry, "per", "program") == {
        ("/a", "tornado"): 1,
        ("/wsgi/users/{id}", "wsgi"): 1,
    }


def test_websocket_upgrades_are_not_counted(registry):
    class Echo(tornado.websocket.WebSocketHandler):
        def on_message(self, message: str | bytes) -> None:
            self.write_message(message)

    app = instrument(tornado.web.Application([(r"/ws", Echo), (r"/a", Ok)]), registry=registry)

    async def go() -> str | bytes | None:
        server, port = listen(app)
        conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
        await conn.write_message("hi")
        reply = await conn.read_message()
        conn.close()
        server.stop()
        await server.close_all_connections()
        return reply

    assert asyncio.run(go()) == "hi"
    fetch_all(app, ["/a"])
    assert counted(registry) == {("/a", "200", "GET"): 1}


def test_a_failing_recording_never_breaks_the_request(registry, caplog, monkeypatch):
    class Odd(tornado.web.RequestHandler):
        def get(self) -> None:
            del self.request._start_time  # the recorder cannot time this request
            self.write("fine")

    monkeypatch.setattr(last9.tornado, "_failure_logged", False)
    app = instrument(tornado.web.Application([(r"/odd", Odd), (r"/a", Ok)]), registry=registry)
    with caplog.at_level(logging.WARNING, logger="last9"):
        responses = fetch_all(app, ["/odd", "/odd", "/a"])
    assert [(r.code, r.body) for r in responses] == [(200, b"fine"), (200, b"fine"), (200, b"ok")]
    assert counted(registry) == {("/a", "200", "GET"): 1}
    assert [r.message for r in caplog.records if r.name == "last9"] == [
        "last9: could not record a Tornado request; it is not counted"
    ]


def test_durations_cover_coroutines_and_streamed_bodies(registry):
    class Slow(tornado.web.RequestHandler):
        async def get(self) -> None:
            await asyncio.sleep(0.12)
            self.write("slept")

    class Stream(tornado.web.RequestHandler):
        async def get(self) -> None:
            for i in range(4):
                await asyncio.sleep(0.05)
                self.write(f"chunk {i}\n")
                await self.flush()

    app = instrument(
        tornado.web.Application([(r"/slow", Slow), (r"/stream", Stream)]), registry=registry
    )
    responses = fetch_all(app, ["/slow", "/stream"])
    assert responses[1].body == b"".join(f"chunk {i}\n".encode() for i in range(4))
    assert sum_of(registry.render(), "/slow") >= 120
    assert sum_of(registry.render(), "/stream") >= 200


def sum_of(text: str | bytes, per: str) -> float:
    return next(
        v
        for k, v in parse(text).items()
        if dict(k)["__name__"] == f"{METRIC}_sum" and dict(k)["per"] == per
    )


def test_program_is_the_app_module_else_the_main_script(registry):
    class ShopApplication(tornado.web.Application):
        pass

    ShopApplication.__module__ = "shop.web"
    fetch_all(instrument(ShopApplication([(r"/a", Ok)]), registry=registry), ["/a"])
    # Tornado's and last9's own classes say nothing about the app: the main script does.
    expected = config.default_program(None)
    fetch_all(instrument(tornado.web.Application([(r"/b", Ok)]), registry=registry), ["/b"])
    fetch_all(RedApplication([(r"/c", Ok)], last9_options={"registry": registry}), ["/c"])
    assert counted(registry, "per", "program") == {
        ("/a", "shop"): 1,
        ("/b", expected): 1,
        ("/c", expected): 1,
    }


# --- Over real HTTP: the test app on Tornado's own server, in a subprocess ---------------


def tornado_server(port: int, processes: int = 1) -> list[str]:
    return [sys.executable, "-m", "tests.apps.tornado_app", str(port), str(processes)]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with serve(tornado_server(port), port):
        yield port


def get(port: int, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=10)


def test_real_http_traffic_is_counted_by_template(server):
    before = counts_by(scrape(server).text, "per", "status", "method")
    for n in range(10):
        assert get(server, f"/name/{n}").status_code == 200
    for n in (1, 22, 333):
        assert get(server, f"/item/{n}").json() == {"id": n}
    assert get(server, "/item/4", "POST").status_code == 201
    assert get(server, "/files/a/b/c.txt").text == "a/b/c.txt"
    uid = "7d3f0c1e-9b6a-4c4b-8f1e-2a2b3c4d5e6f"
    assert get(server, f"/api/v1/users/{uid}/orders/9").json() == {"user": uid, "order": 9}
    assert get(server, "/admin/users/bob/").text == "bob"
    assert get(server, "/v1/ping").text == get(server, "/v2/ping").text == "pong"
    assert get(server, "/old/ada").url.endswith("/name/ada")  # 301, then the target
    assert get(server, "/no/such/route").status_code == 404
    assert get(server, "/api/v1/nothing").status_code == 404
    assert get(server, "/admin/nothing").status_code == 404
    assert get(server, "/item/abc").status_code == 404  # the regex is the converter
    assert get(server, "/item/5", "DELETE").status_code == 405
    assert get(server, "/boom").status_code == 500
    assert get(server, "/forbidden").status_code == 403
    after = counts_by(scrape(server).text, "per", "status", "method")
    delta = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert delta == {
        ("/name/{arg0}", "200", "GET"): 11,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/item/{item_id}", "201", "POST"): 1,
        ("/files/{subpath}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/admin/users/{user}/", "200", "GET"): 1,
        ("/v1/ping", "200", "GET"): 1,
        ("/v2/ping", "200", "GET"): 1,
        ("/old/{arg0}", "301", "GET"): 1,
        ("/unmatched", "404", "GET"): 4,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/boom", "500", "GET"): 1,
        ("/forbidden", "403", "GET"): 1,
    }


def test_real_http_labels_and_formats(server):
    get(server, "/name/x")
    response = scrape(server)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    labels = next(dict(k) for k in parse(response.text) if dict(k).get("per") == "/name/{arg0}")
    assert labels["program"] == "tornado_app"
    assert labels["tenant"] == "acme" and labels["cluster"] == "test"
    assert labels["domain"] == "127.0.0.1"
    assert labels["hostname"] == os.uname().nodename
    om = scrape(server, Accept="application/openmetrics-text; version=1.0.0")
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    raw = requests.get(
        f"http://127.0.0.1:{server}/metrics",
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(raw.raw.read()).startswith(b"# HELP")


def test_real_http_durations_cover_streamed_bodies(server):
    response = requests.get(f"http://127.0.0.1:{server}/stream/4", stream=True, timeout=10)
    chunks = [line for line in response.iter_lines() if line]
    assert chunks == [f"chunk {i}".encode() for i in range(4)]
    get(server, "/slow/120")
    text = scrape(server).text
    assert sum_of(text, "/slow/{ms}") >= 120
    assert sum_of(text, "/stream/{chunks}") >= 200
    assert counts_by(text, "per", "status")[("/stream/{chunks}", "200")] == 1


def test_dedicated_metrics_port_from_environment():
    port, metrics_port = free_port(), free_port()
    env = {"LAST9_METRICS_PORT": str(metrics_port), "LAST9_METRICS_ADDR": "127.0.0.1"}
    with serve(tornado_server(port), port, env=env):
        get(port, "/name/z")
        # Tornado records a request just after writing its response, so a scrape on another
        # thread could come first; one on the app's own IOLoop comes after.
        assert counts_by(scrape(port).text, "per") == {("/name/{arg0}",): 1}
        text = scrape(metrics_port).text
        assert counts_by(text, "per") == {("/name/{arg0}",): 1}
        assert requests.get(f"http://127.0.0.1:{metrics_port}/other", timeout=5).status_code == 404


def test_tornado_multi_process_mode_sums_every_process():
    """``fork_processes`` after instrumenting: each child turns to the shared store on its own,
    and a scrape answered by any of them counts the requests of all."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                tornado_server(port, 2),
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=out,
                stderr=out,
                start_new_session=True,  # the children too are ended with the group
            )
        try:
            wait_for_port(port, process, log)
            with ThreadPoolExecutor(8) as pool:
                pids = set(pool.map(lambda _: int(get(port, "/pid").text), range(400)))
            assert len(pids) >= 2, f"one process answered all: {pids}"
            # A request is recorded just after its answer is written: wait for the last few,
            # and never see more than were made.
            seen: list[float] = []
            while not seen or seen[-1] != 400:
                seen.append(counts_by(scrape(port).text, "per").get(("/pid",), 0))
                assert seen[-1] <= 400, seen
                assert len(seen) < 300, seen
                time.sleep(0.05)
            for _ in range(8):  # whichever process answers the scrape
                assert counts_by(scrape(port).text, "per")[("/pid",)] == 400
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


def test_a_protected_metrics_path_needs_the_credentials(registry):
    app = instrument(tornado.web.Application([(r"/a", Ok)]), registry=registry, **BASIC)
    right, wrong = CREDENTIALS["Basic"]
    missing, refused, allowed, head = (
        fetch_all(app, ["/a", "/metrics"])[1],
        fetch_all(app, ["/metrics"], headers={"Authorization": wrong})[0],
        fetch_all(app, ["/metrics"], headers={"Authorization": right})[0],
        fetch_all(app, [("HEAD", "/metrics")], headers={"Authorization": wrong})[0],
    )
    for response in (missing, refused, head):
        assert response.code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert METRIC.encode() not in response.body
    assert allowed.code == 200
    # Refused scrapes are not counted as the app's traffic.
    assert counts_by(allowed.body, "per") == {("/a",): 1}


def test_a_tornado_handler_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    with caplog.at_level("WARNING", logger="last9"):
        instrument(tornado.web.Application([(r"/metrics", Ok)]), registry=registry)
        instrument(tornado.web.Application([(r"/a", Ok)]), registry=registry)
    (record,) = caplog.records
    assert "Ok" in record.getMessage()


def test_the_live_page_is_served_under_the_metrics_path_when_ui_is_on(registry):
    import json

    app = instrument(tornado.web.Application([(r"/a", Ok)]), registry=registry, ui=True)
    _, page, data = fetch_all(app, ["/a", "/metrics/ui", "/metrics/ui/data.json"])
    assert page.code == 200 and b"<script>" in page.body
    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    routes = [r["per"] for p in json.loads(data.body)["programs"] for r in p["routes"]]
    assert data.code == 200 and routes == ["/a"]
    off = instrument(tornado.web.Application([]), registry=last9.Registry())
    assert fetch_all(off, ["/metrics/ui"])[0].code == 404


# --- Every family, as the WSGI and ASGI wrappers keep them: in flight, lineage -----------------


def in_flight(registry: last9.Registry) -> float:
    return sum(family(registry.render(), "http_requests_in_flight").values())


async def until(check: Any) -> None:
    """Lets the IOLoop run until `check()` holds (at most 10 s: a hang fails, never waits)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def test_in_flight_rises_during_slow_requests_and_returns_to_zero(registry):
    entered: list[str] = []
    release = asyncio.Event()

    class Slow(tornado.web.RequestHandler):
        async def get(self) -> None:
            entered.append(self.request.method)
            await release.wait()
            self.write("done")

    app = instrument(tornado.web.Application([(r"/slow", Slow)]), registry=registry)

    async def go() -> tuple[list[int], float, str, float]:
        server, port = listen(app)
        client = AsyncHTTPClient(force_instance=True)
        url = f"http://127.0.0.1:{port}"
        try:
            pending = [asyncio.ensure_future(client.fetch(f"{url}/slow")) for _ in range(3)]
            await until(lambda: len(entered) == 3)
            during = in_flight(registry)
            scraped = (await client.fetch(f"{url}/metrics")).body.decode()
            release.set()
            codes = [r.code for r in await asyncio.gather(*pending)]
            return codes, during, scraped, in_flight(registry)
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()

    codes, during, scraped, after = asyncio.run(go())
    assert codes == [200, 200, 200]
    assert during == 3
    # the scrape itself is not in flight
    assert list(family(scraped, "http_requests_in_flight").values()) == [3]
    assert after == 0
    assert counted(registry) == {("/slow", "200", "GET"): 3}


def test_a_client_that_goes_away_ends_the_flight_of_a_handler_that_never_finishes(registry):
    """A long poll whose client left, and an upload cut off halfway: neither handler finishes,
    so Tornado never logs them; they leave the gauge when their client goes."""
    entered: list[str] = []

    class LongPoll(tornado.web.RequestHandler):
        async def get(self) -> None:
            entered.append("poll")
            await asyncio.Event().wait()  # nothing ever comes

    @tornado.web.stream_request_body
    class Upload(tornado.web.RequestHandler):
        def prepare(self) -> None:
            entered.append("upload")

        def data_received(self, chunk: bytes) -> None:
            pass

        def put(self) -> None:
            self.write("stored")

    app = instrument(
        tornado.web.Application([(r"/poll", LongPoll), (r"/upload", Upload)]), registry=registry
    )

    async def go() -> list[float]:
        server, port = listen(app)
        seen = []
        try:
            for request in (
                b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n",
                b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial",
            ):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                await writer.drain()
                await until(lambda: len(entered) == len(seen) + 1)
                seen.append(in_flight(registry))
                writer.close()
                await writer.wait_closed()
                await until(lambda: in_flight(registry) == 0)
        finally:
            server.stop()
        return seen

    assert asyncio.run(go()) == [1, 1]
    assert in_flight(registry) == 0


def test_calls_made_while_serving_are_under_the_handlers_route_and_callers_counted(
    registry, monkeypatch
):
    """Lineage over Tornado's own server: an httpx call made by a handler goes under that
    handler's route and names the app to the service it calls (here the same app), which counts
    it in http_requests_callers_total beside the callers its other requests named."""
    import httpx

    from last9 import lineage

    # httpx patched, and the program outbound calls name, for this test only.
    for transport, method in (
        (httpx.HTTPTransport, "handle_request"),
        (httpx.AsyncHTTPTransport, "handle_async_request"),
    ):
        monkeypatch.setattr(transport, method, getattr(transport, method))
    monkeypatch.setattr(lineage, "_program", [])
    last9._core.enable_lineage()
    lineage._patch_httpx()

    class Order(tornado.web.RequestHandler):
        async def get(self, order_id: str) -> None:
            async with httpx.AsyncClient() as client:
                stock = await client.get(f"http://{self.request.host}/stock/{order_id}")
            self.write(f"order {order_id}: {stock.text}")

    class Stock(tornado.web.RequestHandler):
        def get(self, item: str) -> None:
            self.write("in stock")

    app = instrument(
        tornado.web.Application(
            [(r"/orders/(?P<order_id>[0-9]+)", Order), (r"/stock/(?P<item>[0-9]+)", Stock)]
        ),
        registry=registry,
        program="shop",
    )
    responses = fetch_all(app, ["/orders/1", "/orders/2"], headers={"X-Last9-Caller": "web"})
    assert [r.body for r in responses] == [b"order 1: in stock", b"order 2: in stock"]
    calls = family(registry.render(), "http_client_requests_duration_milliseconds_count")
    assert [(dict(k)["per"], dict(k)["status"], v) for k, v in calls.items()] == [
        ("/orders/{order_id}", "200", 2)
    ]
    callers = family(registry.render(), "http_requests_callers_total")
    assert {
        (dict(k)["caller"], dict(k)["per"], dict(k)["status"]): v for k, v in callers.items()
    } == {
        ("web", "/orders/{order_id}", "2xx"): 2,
        ("shop", "/stock/{item}", "2xx"): 2,
    }
    assert in_flight(registry) == 0


def test_a_handler_that_cannot_be_made_leaves_no_request_in_flight(registry):
    class Broken(tornado.web.RequestHandler):
        def initialize(self) -> None:
            raise RuntimeError("a handler's own bug")

    app = instrument(
        tornado.web.Application([(r"/broken", Broken), (r"/a", Ok)]), registry=registry
    )

    async def go() -> int:
        server, port = listen(app)
        client = AsyncHTTPClient(force_instance=True)
        try:
            with pytest.raises(tornado.simple_httpclient.HTTPStreamClosedError):
                await client.fetch(f"http://127.0.0.1:{port}/broken")  # Tornado drops it
            return (await client.fetch(f"http://127.0.0.1:{port}/a")).code
        finally:
            client.close()
            server.stop()

    assert asyncio.run(go()) == 200
    assert in_flight(registry) == 0
    assert counted(registry) == {("/a", "200", "GET"): 1}
