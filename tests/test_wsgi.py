"""The WSGI middleware in-process: PEP 3333 behaviour, exactness, and bounded labels."""

from __future__ import annotations

import random
import threading
from typing import Any
from wsgiref.validate import validator

import pytest
from auth_helpers import BASIC, assert_only_the_right_credentials_scrape

import last9
from conftest import METRIC, counts_by, parse
from last9.wsgi.middleware import RedMiddleware
from wsgi_helpers import call, environ_for


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", "1")])
    return [b"hello ", environ["PATH_INFO"].encode("latin-1")]


def middleware(app: Any, registry: last9.Registry, **kwargs: Any) -> RedMiddleware:
    return RedMiddleware(app, registry=registry, program="test", hostname="box", **kwargs)


def test_plain_app_gets_normalised_paths(registry):
    app = middleware(hello_app, registry)
    for user in range(5):
        call(app, f"/user/{user}")
    call(app, "/user/7d3f0c1e-9b6a-4c4b-8f1e-2a2b3c4d5e6f/orders")
    call(app, "/")
    counts = counts_by(registry.render(), "per", "status", "method", "domain")
    assert counts == {
        ("/user/{id}", "200", "GET", "example.com"): 5,
        ("/user/{uuid}/orders", "200", "GET", "example.com"): 1,
        ("/", "200", "GET", "example.com"): 1,
    }


def test_constant_labels_come_from_arguments(registry):
    app = RedMiddleware(
        hello_app, registry=registry, program="shop", hostname="h1", tenant="t", cluster="c"
    )
    call(app, "/")
    (labels,) = [
        dict(k) for k in parse(registry.render()) if dict(k)["__name__"] == f"{METRIC}_count"
    ]
    assert labels == {
        "__name__": f"{METRIC}_count",
        "per": "/",
        "hostname": "h1",
        "domain": "example.com",
        "method": "GET",
        "program": "shop",
        "status": "200",
        "tenant": "t",
        "cluster": "c",
    }


def test_environment_variables_configure_constant_labels(registry, monkeypatch):
    monkeypatch.setenv("LAST9_PROGRAM", "from-env")
    monkeypatch.setenv("LAST9_HOSTNAME", "env-host")
    monkeypatch.setenv("LAST9_TENANT", "env-tenant")
    monkeypatch.setenv("LAST9_CLUSTER", "env-cluster")
    call(RedMiddleware(hello_app, registry=registry), "/")
    call(RedMiddleware(hello_app, registry=registry, program="kwarg-wins"), "/")
    text = registry.render().decode()
    assert 'program="from-env"' in text and 'hostname="env-host"' in text
    assert 'tenant="env-tenant"' in text and 'cluster="env-cluster"' in text
    assert 'program="kwarg-wins"' in text


@pytest.mark.parametrize(
    ("name", "value"),
    [("LAST9_METRICS_PORT", "http"), ("LAST9_MAX_ROUTES", "0"), ("LAST9_BUCKETS", "1,x")],
)
def test_bad_environment_values_are_clear_errors(registry, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(last9.MetricsError, match=name):
        middleware(hello_app, registry)


def test_bad_buckets_are_rejected(registry):
    with pytest.raises(last9.MetricsError, match="increasing"):
        middleware(hello_app, registry, buckets=[5, 1])


def test_custom_buckets(registry):
    call(middleware(hello_app, registry, buckets=[1, 10]), "/")
    text = registry.render().decode()
    assert 'le="1"' in text and 'le="10"' in text and 'le="+Inf"' in text
    assert text.count("_bucket{") == 3


def test_default_buckets_are_the_last9_convention(registry):
    call(middleware(hello_app, registry), "/")
    les = [
        dict(k)["le"] for k in parse(registry.render()) if dict(k)["__name__"] == f"{METRIC}_bucket"
    ]
    assert [float(le) for le in les[:-1]] == [0.25 * 1.5**k for k in range(31)]
    assert les[-1] == "+Inf"


def test_exceptions_are_recorded_as_500_and_reraised_unchanged(registry):
    error = ValueError("app failed")

    def failing_app(environ, start_response):
        raise error

    with pytest.raises(ValueError) as raised:
        call(middleware(failing_app, registry), "/x")
    assert raised.value is error
    assert counts_by(registry.render(), "per", "status") == {("/x", "500"): 1}


def test_errors_while_streaming_are_recorded_as_500(registry):
    def failing_stream(environ, start_response):
        start_response("200 OK", [])
        yield b"partial"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        call(middleware(failing_stream, registry), "/s")
    assert counts_by(registry.render(), "status") == {("500",): 1}


def test_status_is_the_one_sent(registry):
    def app(environ, start_response):
        code = environ["PATH_INFO"].strip("/")
        start_response(f"{code} Whatever", [])
        return [b""]

    wrapped = middleware(app, registry)
    for code in ("200", "201", "204", "301", "404", "418", "503"):
        call(wrapped, f"/{code}")
    statuses = {s for (s,) in counts_by(registry.render(), "status")}
    assert statuses == {"200", "201", "204", "301", "404", "418", "503"}


class CountingBody:
    """An iterable body that counts how often it is closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = 0

    def __iter__(self):
        return iter(self.chunks)

    def close(self) -> None:
        self.closed += 1


def test_body_is_closed_exactly_once_and_recorded_once(registry):
    body = CountingBody([b"a", b"b"])

    def app(environ, start_response):
        start_response("200 OK", [])
        return body

    status, _, data = call(middleware(app, registry), "/")
    assert (status, data, body.closed) == ("200 OK", b"ab", 1)
    assert counts_by(registry.render(), "per") == {("/",): 1}


def test_closing_an_unfinished_stream_records_it(registry):
    def app(environ, start_response):
        start_response("200 OK", [])
        yield from (b"x" for _ in range(100))

    wrapped = middleware(app, registry)
    body = wrapped(environ_for("/"), lambda s, h, e=None: None)
    next(iter(body))
    assert counts_by(registry.render(), "per") == {}
    body.close()
    body.close()
    assert counts_by(registry.render(), "per") == {("/",): 1}


def test_streamed_duration_covers_the_whole_body(registry):
    import time

    def app(environ, start_response):
        start_response("200 OK", [])
        for _ in range(3):
            time.sleep(0.02)
            yield b"."

    call(middleware(app, registry, buckets=[50, 1000]), "/")
    samples = parse(registry.render())
    sums = [v for k, v in samples.items() if dict(k)["__name__"] == f"{METRIC}_sum"]
    assert sums and sums[0] >= 60


def test_write_callable_and_exc_info_still_work(registry):
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"returned"]

    assert call(middleware(app, registry), "/")[2] == b"written returned"

    def recovering_app(environ, start_response):
        start_response("200 OK", [])
        try:
            raise KeyError("late")
        except KeyError:
            import sys

            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"sorry"]

    status, _, body = call(middleware(recovering_app, registry), "/r")
    assert (status, body) == ("500 Internal Server Error", b"sorry")
    assert counts_by(registry.render(), "per", "status")[("/r", "500")] == 1


def streaming_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one "
    yield b"two"


def test_pep3333_validator_is_satisfied_on_both_sides(registry):
    for inner in (hello_app, streaming_app):
        wrapped = validator(middleware(validator(inner), registry))
        status, _, body = call(wrapped, "/v")
        assert status == "200 OK" and body


@pytest.mark.parametrize("app", [hello_app, streaming_app])
def test_responses_are_unchanged_by_the_middleware(registry, app):
    for path in ("/", "/a/b", "/caf\xc3\xa9"):
        assert call(middleware(app, registry), path) == call(app, path)


def test_file_wrapper_bodies_are_passed_through(registry):
    import io
    from wsgiref.util import FileWrapper

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file data"))

    environ = environ_for("/f", **{"wsgi.file_wrapper": FileWrapper})
    body = middleware(app, registry)(environ, lambda s, h, e=None: None)
    assert isinstance(body, FileWrapper)
    assert counts_by(registry.render(), "per") == {("/f",): 1}


def test_metrics_path_serves_metrics_and_is_not_counted(registry):
    app = middleware(hello_app, registry)
    call(app, "/page")
    status, headers, body = call(app, "/metrics")
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(dict(headers)["Content-Length"]) == len(body)
    assert body == registry.render()
    assert counts_by(body, "per") == {("/page",): 1}
    # A POST to /metrics is the app's business.
    assert call(app, "/metrics", method="POST")[2] == b"hello /metrics"


def test_metrics_negotiates_openmetrics_and_gzip(registry):
    import gzip

    app = middleware(hello_app, registry)
    call(app, "/page")
    _, headers, body = call(
        app, "/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert dict(headers)["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n") and b'le="0.25"' in body
    _, headers, body = call(app, "/metrics", HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert dict(headers)["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == registry.render()
    _, headers, body = call(app, "/metrics", method="HEAD")
    assert body == b"" and int(dict(headers)["Content-Length"]) > 0


def test_metrics_path_can_be_moved_or_turned_off(registry):
    moved = middleware(hello_app, registry, metrics_path="/internal/metrics")
    assert call(moved, "/internal/metrics")[2].startswith(b"# HELP")
    off = middleware(hello_app, registry, metrics_path=None)
    assert call(off, "/metrics")[2] == b"hello /metrics"


def test_eight_threads_give_exact_counts(registry):
    app = middleware(hello_app, registry)
    environ = environ_for("/t/1")

    def work():
        for _ in range(10_000):
            for _ in app(dict(environ), lambda s, h, e=None: None):
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts_by(registry.render(), "per") == {("/t/{id}",): 80_000}


def test_hostile_input_gives_valid_exposition_and_bounded_series(registry):
    rng = random.Random(7)
    app = middleware(hello_app, registry, max_routes=50, max_domains=10)
    alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789-_.~%"\\\n\t\x00\x7f\xe9\xff/'
    hosts = [
        "",
        "a..b",
        "[::1]:80",
        "UPPER.example.COM:443",
        "bad host",
        "x" * 300,
        "\u2603.com",
        "h:port",
    ]
    methods = ["GET", "get", "BREW", "", "POST", "X" * 100, "GET\n"]
    for i in range(3000):
        path = "/" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        if i % 100 == 0:
            path = "/" + "a" * 10_000
        host = rng.choice(hosts) if i % 3 else f"h{i}.example.com"
        environ = environ_for(path, rng.choice(methods), host=host)
        call(app, environ=environ)
    text = registry.render()
    parsed = parse(text)  # the reference parser accepts it
    series = {k for k in parsed if dict(k)["__name__"] == f"{METRIC}_count"}
    pers = {dict(k)["per"] for k in series}
    domains = {dict(k)["domain"] for k in series}
    methods_seen = {dict(k)["method"] for k in series}
    assert len(pers) <= 52  # 50 + /unmatched + the overflow value
    assert len(domains) <= 11
    assert methods_seen <= {"GET", "POST", "_OTHER"}
    assert sum(counts_by(text, "per").values()) == 3000
    assert all(len(p) <= 256 for p in pers)


def test_a_broken_route_getter_never_breaks_the_app(registry, caplog):
    from last9._core import Recorder, WsgiMiddleware

    def broken_getter(environ):
        raise RuntimeError("getter bug")

    recorder = Recorder(registry, hostname="h", program="p", route_syntax="angle")
    app = WsgiMiddleware(hello_app, recorder, registry, broken_getter)
    assert call(app, "/a")[2] == b"hello /a"
    assert call(app, "/b")[2] == b"hello /b"
    assert counts_by(registry.render(), "per") == {("/unmatched",): 2}
    assert sum("getter bug" in r.getMessage() for r in caplog.records) == 1


def test_non_dict_environ_is_passed_through(registry):
    seen = []

    def app(environ, start_response):
        seen.append(environ)
        return []

    middleware(app, registry)(["not", "a", "dict"], None)
    assert seen == [["not", "a", "dict"]]


def test_a_protected_metrics_path_needs_the_credentials(registry):
    reached = []

    def app(environ, start_response):
        reached.append(environ["PATH_INFO"])
        return hello_app(environ, start_response)

    wrapped = middleware(app, registry, **BASIC)
    call(wrapped, "/hello")

    def scrape(authorization):
        extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
        status, headers, body = call(wrapped, "/metrics", **extra)
        return int(status[:3]), dict(headers), body

    body = assert_only_the_right_credentials_scrape(scrape)
    # The refused scrapes never reached the app, nor were counted.
    assert reached == ["/hello"]
    assert counts_by(body, "per") == {("/hello",): 1}
    status, headers, body = call(wrapped, "/metrics", "HEAD")
    assert status == "401 Unauthorized" and body == b""
    assert dict(headers)["Content-Length"] == str(len(b"Unauthorized\n"))
    with pytest.raises(last9.MetricsError, match="LAST9_METRICS_USERNAME"):
        middleware(app, registry, metrics_username="prom")
