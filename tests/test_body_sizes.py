"""Body sizes (LAST9_BODY_SIZES=1) under pre-fork servers over real HTTP: known request bodies
(with a Content-Length and chunked) and response bodies (whole and streamed) give exact sums and
counts across workers, under the seed's and OpenTelemetry's names; off, the families are absent."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import last9
from conftest import free_port, parse, scrape
from last9 import config
from last9.wsgi.middleware import RedMiddleware
from test_prefork import running, settle
from wsgi_helpers import call, environ_for

SEED = ("http_request_body_size_bytes", "http_response_body_size_bytes")
OTEL = ("http_server_request_body_size_bytes", "http_server_response_body_size_bytes")
SIZED = 5000  # a request body sent with a Content-Length
CHUNKS = (b"x" * 1000, b"y" * 1500, b"z" * 500)  # one sent chunked: 3000 bytes


def gunicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2"]


def uvicorn(port: int) -> list[str]:
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
    return [*command, "--workers", "2", "--no-access-log"]


SERVERS = {
    "gunicorn": (gunicorn, "tests.apps.body_app:app"),
    "uvicorn": (uvicorn, "tests.apps.body_asgi_app:app"),
}


def send(port: int) -> set[int]:
    """10 sized uploads, 10 chunked ones and 20 streamed answers; the workers' pids."""
    url = f"http://127.0.0.1:{port}"

    def chunked() -> Iterator[bytes]:
        yield from CHUNKS  # a generator body: requests sends it chunked

    def one(i: int) -> str:
        if i % 4 == 0:
            response = requests.post(f"{url}/upload", data=b"s" * SIZED, timeout=10)
        elif i % 4 == 1:
            response = requests.post(f"{url}/upload", data=chunked(), timeout=10)
            assert "Content-Length" not in response.request.headers
        else:
            response = requests.get(f"{url}/stream", timeout=10)
        assert response.status_code == 200, response.text
        return response.headers["X-Pid"]

    with ThreadPoolExecutor(4) as pool:
        return {int(pid) for pid in pool.map(one, range(40))}


def sums_and_counts(text: str, family: str, route_label: str) -> dict[str, tuple[float, float]]:
    """(`_sum`, `_count`) of a family by route, summed over its series."""
    found: dict[str, tuple[float, float]] = {}
    for key, value in parse(text).items():
        labels = dict(key)
        name = labels.pop("__name__")
        if name not in (f"{family}_sum", f"{family}_count"):
            continue
        total, count = found.get(labels[route_label], (0.0, 0.0))
        if name.endswith("_sum"):
            found[labels[route_label]] = (total + value, count)
        else:
            found[labels[route_label]] = (total, count + value)
    return found


def families(text: str | bytes) -> set[str]:
    """The histogram families of a scrape."""
    names = {dict(key)["__name__"] for key in parse(text)}
    return {name.removesuffix("_count") for name in names if name.endswith("_count")}


@pytest.mark.parametrize("server", SERVERS)
def test_body_sizes_are_exact_across_workers(server: str):
    command, app = SERVERS[server]
    port = free_port()
    env = {"LAST9_BODY_SIZES": "1", "LAST9_SEMCONV": "dup"}
    with running([*command(port), app], port, env):
        pids: set[int] = set()
        rounds = 0
        while len(pids) < 2 and rounds < 20:  # until both workers have answered some
            pids |= send(port)
            rounds += 1
        settle(port, 40 * rounds)
        text = scrape(port).text
        openmetrics = scrape(port, Accept="application/openmetrics-text; version=1.0.0").text
    assert len(pids) == 2, f"both workers answered: {pids}"
    n = 10 * rounds  # requests of each kind
    request_sizes = {
        "/upload": (n * SIZED + n * sum(map(len, CHUNKS)), 2 * n),
        "/stream": (0, 2 * n),  # no body: counted as the 0 bytes the app read
    }
    response_sizes = {"/upload": (2 * n * 1000, 2 * n), "/stream": (2 * n * 600, 2 * n)}
    for names, route_label in ((SEED, "per"), (OTEL, "http_route")):
        request_family, response_family = names
        assert sums_and_counts(text, request_family, route_label) == request_sizes, request_family
        assert sums_and_counts(text, response_family, route_label) == response_sizes
    # The 5000-byte uploads fall in `le="16384"`, not `le="4096"`; the 3000-byte ones in 4096.
    le = {
        dict(key)["le"]: value
        for key, value in parse(text).items()
        if dict(key)["__name__"] == "http_request_body_size_bytes_bucket"
        and dict(key)["per"] == "/upload"
    }
    assert (le["1024"], le["4096"], le["16384"], le["+Inf"]) == (0, n, 2 * n, 2 * n)
    from test_exposition import promtool_findings

    # promtool: the byte families are clean (only the seed's milliseconds get its advice).
    findings = promtool_findings(text.encode())
    assert all('base unit "seconds"' in line for line in findings), findings
    for name in SEED + OTEL:
        assert f"# UNIT {name} bytes\n" in openmetrics, name


@pytest.mark.parametrize("server", SERVERS)
def test_without_the_setting_there_are_no_body_families(server: str):
    command, app = SERVERS[server]
    port = free_port()
    with running([*command(port), app], port, {"LAST9_SEMCONV": "dup"}):
        send(port)
        settle(port, 40)
        text = scrape(port).text
    assert not {name for name in families(text) if "body" in name}


# In-process: the setting, and what it costs when off -------------------------------------------


def echo_input(environ, start_response):
    """Answers with the type of `wsgi.input` the app sees, after reading the body."""
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [type(environ["wsgi.input"]).__name__.encode()]


def chunked_environ(body: bytes) -> dict:
    return environ_for(
        "/in", "POST", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body)}
    )


def test_off_the_app_sees_the_servers_own_input_and_no_family(registry):
    app = RedMiddleware(echo_input, registry=registry)
    assert call(app, environ=chunked_environ(b"12345"))[2] == b"BytesIO"
    assert families(registry.render()) == {"http_requests_duration_milliseconds"}


def test_on_a_chunked_body_counts_what_the_app_reads(registry):
    app = RedMiddleware(echo_input, registry=registry, body_sizes=True)
    assert call(app, environ=chunked_environ(b"12345"))[2] == b"CountingInput"
    # Without a Content-Length nor a Transfer-Encoding there is no body: nothing is wrapped.
    assert call(app, "/in")[2] == b"BytesIO"
    sizes = sums_and_counts(registry.render().decode(), SEED[0], "per")
    assert sizes == {"/in": (5, 2)}
    assert sums_and_counts(registry.render().decode(), SEED[1], "per") == {
        "/in": (len("CountingInput") + len("BytesIO"), 2)
    }


def test_rendered_flask_responses_pass_unwrapped_and_count_what_werkzeug_sends(registry):
    """Werkzeug's rendered responses are recorded as the app returns them: their size is that of
    the response's own list (strings as UTF-8), none for HEAD or a 204, and the server still
    gets every byte of Werkzeug's own iterable."""
    from flask import Flask, Response
    from werkzeug.wsgi import ClosingIterator

    app = Flask("rendered", static_folder=None)
    app.wsgi_app = RedMiddleware(app, registry=registry, body_sizes=True)
    app.add_url_rule("/text", "text", lambda: "caf\u00e9")  # 5 bytes as UTF-8
    app.add_url_rule("/parts", "parts", lambda: Response(["ab", b"cde"]))
    app.add_url_rule("/none", "none", lambda: ("", 204))

    def start_response(status: str, headers: list, exc_info=None) -> None:
        pass

    sent = {}
    for path, method in (("/text", "GET"), ("/parts", "GET"), ("/text", "HEAD"), ("/none", "GET")):
        body = app.wsgi_app(environ_for(path, method), start_response)
        assert type(body) is ClosingIterator, path  # not wrapped, and not used up by us
        sent[path, method] = b"".join(body)
        body.close()
    assert sent == {
        ("/text", "GET"): "caf\u00e9".encode(),
        ("/parts", "GET"): b"abcde",
        ("/text", "HEAD"): b"",
        ("/none", "GET"): b"",
    }
    text = registry.render().decode()
    responses = {"/text": (5, 2), "/parts": (5, 1), "/none": (0, 1)}
    assert sums_and_counts(text, SEED[1], "per") == responses
    requests_read = {"/text": (0, 2), "/parts": (0, 1), "/none": (0, 1)}
    assert sums_and_counts(text, SEED[0], "per") == requests_read


@pytest.mark.parametrize(
    ("keyword", "variable", "named"),
    [(None, "maybe", "LAST9_BODY_SIZES"), (1, "", "body_sizes"), ("sometimes", "", "body_sizes")],
)
def test_a_bad_value_names_the_setting(registry, monkeypatch, keyword, variable, named):
    monkeypatch.setenv("LAST9_BODY_SIZES", variable)
    with pytest.raises(last9.MetricsError, match=named):
        RedMiddleware(echo_input, registry=registry, body_sizes=keyword)


def test_the_variable_and_pyramids_string_turn_it_on(monkeypatch):
    monkeypatch.setenv("LAST9_BODY_SIZES", "1")
    assert config.resolve().body_sizes
    monkeypatch.delenv("LAST9_BODY_SIZES")
    assert not config.resolve().body_sizes
    assert config.resolve(body_sizes="true").body_sizes  # `last9.body_sizes = true` in an .ini


def test_django_last9_setting_records_rendered_bodies(registry):
    from django.test import override_settings
    from test_django import LAST9_ENTRY, wsgi_handler

    with override_settings(LAST9={"registry": registry, "body_sizes": True}):
        app = wsgi_handler(LAST9_ENTRY)
    status, _, body = call(app, "/name/ada/")
    assert status.startswith("200"), status
    text = registry.render().decode()
    assert sums_and_counts(text, SEED[0], "per") == {"/name/{name}/": (0, 1)}
    assert sums_and_counts(text, SEED[1], "per") == {"/name/{name}/": (len(body), 1)}


def test_pyramid_setting_records_declared_sizes():
    from pyramid.config import Configurator
    from pyramid.response import Response

    config = Configurator(settings={"last9.program": "pyramid-bodies", "last9.body_sizes": "true"})
    config.add_route("up", "/up")
    config.add_view(lambda request: Response(b"o" * 300), route_name="up")
    config.include("last9.pyramid")
    app = config.make_wsgi_app()
    body = {"CONTENT_LENGTH": "7", "wsgi.input": io.BytesIO(b"7 bytes")}
    environ = environ_for("/up", "POST", **body)
    assert call(app, environ=environ)[0] == "200 OK"
    text = last9.REGISTRY.render().decode()
    rows = {
        dict(key)["__name__"]: value
        for key, value in parse(text).items()
        if dict(key).get("program") == "pyramid-bodies" and "body" in dict(key)["__name__"]
    }
    assert rows["http_request_body_size_bytes_sum"] == 7
    assert rows["http_response_body_size_bytes_sum"] == 300
    assert rows["http_response_body_size_bytes_count"] == 1
