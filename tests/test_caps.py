"""Caps on labels taken from requests, against real servers: junk Host headers cannot keep real
domains out, what went to `_other` is counted exactly (`last9_label_overflow_total`), an
allow-list keeps every other host out, the router's templates are registered at start-up, and
huge Host headers and paths cost a worker no memory.
"""

from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flask
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import last9
from conftest import counts_by, free_port, gunicorn, parse, scrape, serve
from last9 import config
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.wsgi.middleware import RedMiddleware
from test_prefork import children
from traffic import requests_to

FLASK_APP = "tests.apps.flask_app:app"
PLAIN_APP = "tests.apps.plain_wsgi_app:app"
#: Requests a new value needs once the first-come slots are taken (see docs/security.md).
ADMIT_AFTER = 3
#: First-come slots of the default domain cap (100): one tenth.
FIRST_COME_DOMAINS = 10


def get(port: int, path: str, host: str) -> None:
    """One request with a Host header of our choosing, over a connection of its own."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def overflow(text: str) -> dict[str, float]:
    return {
        dict(key)["label"]: value
        for key, value in parse(text).items()
        if dict(key)["__name__"] == "last9_label_overflow_total"
    }


def promtool_findings(text: str) -> list[str]:
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False
    )
    lines = (result.stdout + result.stderr).decode().splitlines()
    return [line for line in lines if line.strip() and "base unit" not in line]


def test_junk_hosts_do_not_keep_real_domains_out():
    port = free_port()
    junk = 1000
    with serve(gunicorn(FLASK_APP, port, "-w", "1"), port):
        for i in range(junk):
            if i % 20 == 0:
                get(port, "/name/ada", "shop.example")
            get(port, "/name/ada", f"junk-{i}.example")
        for _ in range(50):
            get(port, "/name/ada", "api.example")
        text = scrape(port).text
        om = scrape(port, Accept="application/openmetrics-text").text

    by_domain = counts_by(text, "domain")
    # shop.example came first and took a first-come slot; nine junk hosts took the rest of them.
    assert by_domain[("shop.example",)] == 50
    junk_series = [d for (d,) in by_domain if d.startswith("junk-")]
    assert len(junk_series) == FIRST_COME_DOMAINS - 1
    # api.example came after the flood: its own series from its third request on.
    assert by_domain[("api.example",)] == 50 - (ADMIT_AFTER - 1)
    went_to_other = junk - len(junk_series) + (ADMIT_AFTER - 1)
    assert by_domain[("_other",)] == went_to_other
    assert sum(by_domain.values()) == junk + 100, "nothing is lost, only labelled _other"
    assert overflow(text) == {"per": 0, "domain": went_to_other}
    assert promtool_findings(text) == []
    families = {f.name: f for f in text_string_to_metric_families(om)}
    samples = {s.labels["label"]: s.value for s in families["last9_label_overflow"].samples}
    assert families["last9_label_overflow"].type == "counter"
    assert samples == {"per": 0, "domain": went_to_other}


def test_scanned_paths_do_not_keep_real_routes_out_of_an_app_without_a_router():
    port = free_port()
    scanned = 300
    with serve(gunicorn(PLAIN_APP, port, "-w", "1"), port):
        for i in range(scanned):
            if i % 10 == 0:
                get(port, "/orders", "shop.example")
            get(port, f"/scan-{i}.php", "shop.example")
        for _ in range(10):
            get(port, "/cart", "shop.example")
        text = scrape(port).text
    by_route = counts_by(text, "per")
    # /orders came first; with /unmatched (always known) that leaves 48 first-come slots of
    # the 50 (a tenth of 500) for scanned paths. /cart came after them.
    assert by_route[("/orders",)] == 30
    assert sum(1 for (per,) in by_route if per.startswith("/scan-")) == 48
    assert by_route[("/cart",)] == 10 - (ADMIT_AFTER - 1)
    went_to_other = scanned - 48 + (ADMIT_AFTER - 1)
    assert by_route[("/_other",)] == went_to_other
    assert sum(by_route.values()) == scanned + 40
    assert overflow(text) == {"per": went_to_other, "domain": 0}


def test_an_allow_list_of_domains_keeps_every_other_host_out():
    port = free_port()
    env = {"LAST9_DOMAINS": "shop.example, API.example:8443"}
    with serve(gunicorn(FLASK_APP, port, "-w", "1"), port, env):
        for host in ("shop.example", "api.example", "first.example", "localhost"):
            for _ in range(5):
                get(port, "/name/ada", host)
        text = scrape(port).text
    assert counts_by(text, "domain") == {
        ("shop.example",): 5,
        ("api.example",): 5,
        ("_other",): 10,
    }
    assert overflow(text)["domain"] == 10


def plain(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]


def test_an_allow_list_that_names_no_host_is_refused():
    with pytest.raises(last9.MetricsError, match=r"LAST9_DOMAINS.*bad host"):
        RedMiddleware(plain, registry=last9.Registry(), domains=["shop.example", "bad host"])
    with pytest.raises(last9.MetricsError, match="LAST9_DOMAINS"):
        config.resolve(environ={"LAST9_DOMAINS": " , "})
    with pytest.raises(last9.MetricsError, match="LAST9_MAX_DOMAINS"):
        RedMiddleware(
            plain, registry=last9.Registry(), domains=["a.example", "b.example"], max_domains=1
        )


async def echo(request):
    return PlainTextResponse("ok")


def test_starlette_routes_are_registered_at_start_up():
    # Three route slots: /unmatched and the first two templates of the router, registered
    # before any request, so a request to the last route cannot take one.
    app = Starlette(
        routes=[
            Route("/a/{x}", echo),
            Mount("/m", routes=[Route("/b/{y:int}", echo)]),
            Route("/c", echo),
        ]
    )
    registry = last9.Registry()
    app.add_middleware(AsgiRedMiddleware, registry=registry, max_routes=3)
    assert requests_to(app, "/c", "/c", "/c", "/m/b/1", "/a/1") == [200] * 5
    assert counts_by(registry.render(), "per") == {
        ("/_other",): 3,
        ("/m/b/{y}",): 1,
        ("/a/{x}",): 1,
    }


def test_fastapi_routes_of_included_routers_are_registered_at_start_up():
    app = FastAPI()
    users = APIRouter(prefix="/users/{user_id}")

    @users.get("/orders/{order_id}")
    def order(user_id: int, order_id: int) -> str:
        return "ok"

    app.include_router(users, prefix="/v1")

    @app.get("/late")
    def late() -> str:
        return "ok"

    registry = last9.Registry()
    # /unmatched, FastAPI's own /openapi.json, /docs, /docs/oauth2-redirect, /redoc, the order.
    app.add_middleware(AsgiRedMiddleware, registry=registry, max_routes=6)
    assert requests_to(app, "/late", "/v1/users/1/orders/2") == [200, 200]
    assert counts_by(registry.render(), "per") == {
        ("/_other",): 1,
        ("/v1/users/{user_id}/orders/{order_id}",): 1,
    }


def test_flask_routes_defined_before_wrapping_are_registered():
    app = flask.Flask("registered")
    for rule in ("/a/<x>", "/b/<int:y>", "/c"):
        app.add_url_rule(rule, rule, lambda **_: "ok")
    registry = last9.Registry()
    # /unmatched, /static/<path:filename> (Flask's own), /a/{x} and /b/{y}.
    app.wsgi_app = RedMiddleware(app, registry=registry, max_routes=4)
    client = app.test_client()
    for path in ("/c", "/c", "/b/1", "/a/1"):
        response = client.get(path)
        response.close()  # the server's close() ends the request
        assert response.status_code == 200
    assert counts_by(registry.render(), "per") == {("/_other",): 2, ("/b/{y}",): 1, ("/a/{x}",): 1}


def worker_rss_kib(master: subprocess.Popen[bytes]) -> int:
    (worker,) = children(master.pid)
    for line in Path(f"/proc/{worker}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_huge_distinct_hosts_and_paths_cost_a_worker_no_memory():
    port = free_port()
    size = 60_000
    command = gunicorn(
        PLAIN_APP,
        port,
        "-w",
        "1",
        "--limit-request-line",
        "0",
        "--limit-request-field_size",
        str(size + 100),
    )

    def huge(i: int) -> None:
        tail = f"{i:08d}"
        get(port, "/" + "p" * (size - 9) + tail, "h" * (size - 8) + tail)

    with serve(command, port) as master:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(huge, range(500)))  # warm-up: the server's own buffers
            before = worker_rss_kib(master)
            list(pool.map(huge, range(500, 5500)))
            after = worker_rss_kib(master)
        text = scrape(port).text
    assert counts_by(text, "domain") == {("_other",): 5500}
    assert sum(counts_by(text, "per").values()) == 5500
    # Before byte bounds, each cache kept up to 4,096 keys of 60 KB: 240 MB per cache.
    assert after - before < 4096, f"the worker grew by {after - before} KiB"


def test_a_scrape_holds_the_caps_whatever_the_number_of_workers(tmp_path: Path) -> None:
    """gunicorn -w 4 recycling its workers every 25 requests, each worker admitting the first
    scanned paths it sees (a tenth of the cap is first come): every scrape holds at most
    `max_routes` routes (plus `/_other`), the archive's and the oldest workers' first, and still
    counts every request."""
    port, cap, sent = free_port(), 40, 600
    env = {"LAST9_MAX_ROUTES": str(cap), "XDG_RUNTIME_DIR": str(tmp_path)}
    recycling = ("-w", "4", "--max-requests", "25", "--max-requests-jitter", "0")
    with serve(gunicorn(PLAIN_APP, port, *recycling), port, env):
        for i in range(sent):
            get(port, f"/scan-{i}", "shop.example")
        for _ in range(5):
            by_route = counts_by(scrape(port).text, "per")
            assert sum(by_route.values()) == sent
            routes = [per for (per,) in by_route if per != "/_other"]
            assert len(routes) <= cap, routes
