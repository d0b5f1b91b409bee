"""Django: route templates from resolver_match.route, wrapping the WSGI/ASGI handler (one line)
or as a MIDDLEWARE entry; in-process, and over real HTTP through gunicorn and uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from auth_helpers import (
    BASIC,
    BEARER,
    asgi_scraper,
    assert_only_the_right_credentials_scrape,
    wsgi_scraper,
)

import last9
from conftest import METRIC, ROOT, counts_by, free_port, gunicorn, increase, parse, scrape, serve
from wsgi_helpers import call, environ_for

# The test project lives in tests/apps/mysite, imported as `mysite` like a project's package.
APPS = str(ROOT / "tests" / "apps")
if APPS not in sys.path:
    sys.path.insert(0, APPS)
os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"

import django  # noqa: E402

django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest  # noqa: E402
from django.core.signals import request_finished  # noqa: E402
from django.http import HttpResponseBase, JsonResponse  # noqa: E402
from django.test import override_settings  # noqa: E402

from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware  # noqa: E402
from last9.django import RedMiddleware as DjangoRedMiddleware  # noqa: E402
from last9.wsgi.middleware import RedMiddleware  # noqa: E402

USER = "7d3f0c1e-9b6a-4c4b-8f1e-2a2b3c4d5e6f"
LAST9_ENTRY = "last9.django.RedMiddleware"

#: (method, path) → (per, status): one request of each shape the project has.
TRAFFIC = {
    ("GET", "/"): ("/", "200"),
    ("GET", "/name/ada/"): ("/name/{name}/", "200"),
    ("GET", "/item/3"): ("/item/{item_id}", "200"),
    ("GET", "/reports/2024/"): ("/reports/{year}/", "200"),
    ("GET", "/files/a/b/c.txt"): ("/files/{subpath}", "200"),
    ("GET", f"/api/v1/users/{USER}/orders/9/"): (
        "/api/v1/users/{user_id}/orders/{order_id}/",
        "200",
    ),
    ("GET", "/api/v1/archive/2024/7/"): ("/api/v1/archive/{year}/{arg0}/", "200"),
    ("GET", "/articles/2024/hello-world/"): ("/articles/{year}/{slug}/", "200"),
    ("POST", "/only-get/5/"): ("/only-get/{pk}/", "405"),
    ("GET", "/missing/1/"): ("/missing/{pk}/", "404"),
    ("GET", "/no/such/route"): ("/unmatched", "404"),
    ("GET", "/boom/"): ("/boom/", "500"),
    ("GET", "/stream/2/"): ("/stream/{chunks}/", "200"),
}


def expected(traffic: dict[tuple[str, str], tuple[str, str]]) -> dict[tuple[str, ...], float]:
    counts: dict[tuple[str, ...], float] = {}
    for (method, _), (per, status) in traffic.items():
        counts[(per, status, method)] = counts.get((per, status, method), 0) + 1
    return counts


def wsgi_handler(*middleware: str, **overrides: Any) -> WSGIHandler:
    """A WSGI handler built with the project's MIDDLEWARE plus `middleware` in front."""
    with override_settings(MIDDLEWARE=[*middleware, *django_middleware()], **overrides):
        return WSGIHandler()


def asgi_handler(*middleware: str, **overrides: Any) -> ASGIHandler:
    with override_settings(MIDDLEWARE=[*middleware, *django_middleware()], **overrides):
        return ASGIHandler()


def django_middleware() -> list[str]:
    from mysite.settings import MIDDLEWARE

    return MIDDLEWARE


def asgi_call(app: Any, path: str, method: str = "GET") -> tuple[int, bytes]:
    """Drives one ASGI HTTP request the way a server does: (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def drive() -> None:
        incoming = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if incoming:
                return incoming.pop()
            await asyncio.sleep(3600)  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(drive())
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def counted(registry: last9.Registry) -> dict[tuple[str, ...], float]:
    return counts_by(registry.render(), "per", "status", "method")


# --- In-process: the route syntax -----------------------------------------------------------


def test_django_routes_become_templates_with_a_leading_slash():
    def t(route: str) -> str:
        return last9.route_template(route, "django")

    assert t("") == "/"
    assert t("item/<int:item_id>") == "/item/{item_id}"
    assert t(r"^articles/(?P<year>[0-9]{4})/(?P<slug>[-\w]+)/$") == "/articles/{year}/{slug}/"
    # include(): a path() prefix joined to a re_path() leaf, and the other way round.
    assert t(r"api/v1/archive/(?P<year>[0-9]{4})/(\d+)/$") == "/api/v1/archive/{year}/{arg0}/"
    assert t(r"^v(?P<version>[12])/items/<int:pk>/") == "/v{version}/items/{pk}/"


# --- In-process: RedMiddleware around the handler (the one-line way) -------------------------


def test_wsgi_handler_is_detected_and_records_templates(registry):
    app = RedMiddleware(wsgi_handler(), registry=registry, hostname="box")
    for (method, path), (_, status) in TRAFFIC.items():
        assert call(app, path, method)[0].startswith(status)
    assert counted(registry) == expected(TRAFFIC)


def test_wsgi_responses_are_unchanged(registry):
    plain, wrapped = wsgi_handler(), RedMiddleware(wsgi_handler(), registry=registry)
    for method, path in TRAFFIC:
        assert call(wrapped, path, method) == call(plain, path, method)


def test_program_is_the_project_package(registry):
    assert RedMiddleware(wsgi_handler(), registry=registry).recorder.program == "mysite"
    assert AsgiRedMiddleware(asgi_handler(), registry=registry).recorder.program == "mysite"


def test_an_append_slash_redirect_is_unmatched(registry):
    app = RedMiddleware(wsgi_handler(), registry=registry)
    assert call(app, "/name/ada")[0] == "301 Moved Permanently"
    assert counted(registry) == {("/unmatched", "301", "GET"): 1}


def test_a_propagated_exception_is_recorded_as_500_and_reraised(registry):
    app = RedMiddleware(wsgi_handler(), registry=registry)
    propagate = override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True)
    with propagate, pytest.raises(RuntimeError, match="boom"):
        call(app, "/boom/")
    assert counted(registry) == {("/boom/", "500", "GET"): 1}


def test_the_project_request_class_is_kept(registry):
    class ProjectRequest(WSGIRequest):
        pass

    class ProjectHandler(WSGIHandler):
        request_class = ProjectRequest

    with override_settings(MIDDLEWARE=[]):
        handler = ProjectHandler()
    app = RedMiddleware(handler, registry=registry)
    assert issubclass(handler.request_class, ProjectRequest)
    assert handler.request_class.__name__ == "ProjectRequest"
    RedMiddleware(handler, registry=registry)  # wrapping twice does not stack subclasses
    assert handler.request_class.__bases__ == (ProjectRequest,)
    call(app, "/item/1")
    assert counted(registry) == {("/item/{item_id}", "200", "GET"): 1}


def test_resolver_match_still_works_for_the_app(registry):
    app = RedMiddleware(wsgi_handler(), registry=registry)
    environ = environ_for("/articles/2024/x/")
    request = app.app.request_class(environ)
    assert request.resolver_match is None
    assert "last9.django.route" not in environ  # nothing resolved, nothing to read
    request.resolver_match = "not a ResolverMatch"
    assert request.resolver_match == "not a ResolverMatch"
    assert call(app, environ=environ)[0] == "200 OK"
    assert "last9.django.route" not in environ  # read, then removed by the middleware
    assert counted(registry) == {("/articles/{year}/{slug}/", "200", "GET"): 1}


def test_rendered_responses_reach_the_server_unwrapped(registry):
    app = RedMiddleware(wsgi_handler(), registry=registry)
    closed: list[object] = []

    def on_finished(sender: object, **kwargs: object) -> None:
        closed.append(sender)

    request_finished.connect(on_finished)
    try:
        body = app(environ_for("/item/1"), lambda status, headers: None)
        assert type(body) is JsonResponse  # the app's own object: no wrapper to iterate
        assert counted(registry) == {("/item/{item_id}", "200", "GET"): 1}
        body.close()
        assert len(closed) == 1
        stream = app(environ_for("/stream/1/"), lambda status, headers: None)
        assert not isinstance(stream, HttpResponseBase)  # wrapped, to time it to the end
        assert b"".join(stream) == b"chunk 0\n"
        stream.close()
        assert len(closed) == 2
    finally:
        request_finished.disconnect(on_finished)
    assert counted(registry) == {
        ("/item/{item_id}", "200", "GET"): 1,
        ("/stream/{chunks}/", "200", "GET"): 1,
    }


def test_asgi_handler_is_detected_and_records_templates(registry):
    app = AsgiRedMiddleware(asgi_handler(), registry=registry, hostname="box")
    for (method, path), (_, status) in TRAFFIC.items():
        assert asgi_call(app, path, method)[0] == int(status)
    assert asgi_call(app, "/stream/3/") == (200, b"chunk 0\nchunk 1\nchunk 2\n")
    assert counted(registry) == {
        **expected(TRAFFIC),
        ("/stream/{chunks}/", "200", "GET"): 2,
    }


def test_asgi_responses_are_unchanged(registry):
    plain, wrapped = asgi_handler(), AsgiRedMiddleware(asgi_handler(), registry=registry)
    for method, path in TRAFFIC:
        assert asgi_call(wrapped, path, method) == asgi_call(plain, path, method)


# --- In-process: the MIDDLEWARE entry (the Django way) --------------------------------------


def test_middleware_entry_records_under_wsgi(registry):
    with override_settings(LAST9={"registry": registry, "hostname": "box"}):
        app = wsgi_handler(LAST9_ENTRY)
    for (method, path), (_, status) in TRAFFIC.items():
        assert call(app, path, method)[0].startswith(status)
    assert counted(registry) == expected(TRAFFIC)
    labels = dict(next(k for k in parse(registry.render()) if dict(k).get("per") == "/"))
    assert labels["program"] == "mysite"
    assert (labels["hostname"], labels["domain"]) == ("box", "example.com")


def test_middleware_entry_records_under_asgi(registry):
    with override_settings(LAST9={"registry": registry}):
        app = asgi_handler(LAST9_ENTRY)
    for (method, path), (_, status) in TRAFFIC.items():
        assert asgi_call(app, path, method)[0] == int(status)
    assert counted(registry) == expected(TRAFFIC)


def test_middleware_entry_is_sync_and_async_capable(registry):
    assert DjangoRedMiddleware.sync_capable and DjangoRedMiddleware.async_capable

    async def async_view(request):
        raise AssertionError("not called")

    with override_settings(LAST9={"registry": registry}):
        sync_instance = DjangoRedMiddleware(lambda request: None)
        async_instance = DjangoRedMiddleware(async_view)
    from asgiref.sync import iscoroutinefunction

    assert not iscoroutinefunction(sync_instance)
    assert iscoroutinefunction(async_instance)


def test_middleware_entry_serves_metrics(registry):
    with override_settings(LAST9={"registry": registry, "metrics_path": "/_metrics"}):
        wsgi_app = wsgi_handler(LAST9_ENTRY)
        asgi_app = asgi_handler(LAST9_ENTRY)
    call(wsgi_app, "/item/1")
    status, headers, body = call(wsgi_app, "/_metrics")
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert counts_by(body, "per") == {("/item/{item_id}",): 1}
    status, body = asgi_call(asgi_app, "/_metrics")
    assert status == 200 and counts_by(body, "per") == {("/item/{item_id}",): 1}
    assert call(wsgi_app, "/_metrics", "HEAD")[2] == b""


def test_middleware_entry_serves_the_live_page_when_ui_is_on(registry):
    with override_settings(LAST9={"registry": registry, "ui": True}):
        wsgi_app = wsgi_handler(LAST9_ENTRY)
        asgi_app = asgi_handler(LAST9_ENTRY)
    call(wsgi_app, "/item/1")
    status, headers, body = call(wsgi_app, "/metrics/ui")
    assert status == "200 OK" and dict(headers)["Content-Type"] == "text/html; charset=utf-8"
    status, _, body = call(wsgi_app, "/metrics/ui/data.json")
    routes = [r["per"] for p in json.loads(body)["programs"] for r in p["routes"]]
    assert status == "200 OK" and routes == ["/item/{item_id}"]
    status, body = asgi_call(asgi_app, "/metrics/ui/data.json")
    assert status == 200 and json.loads(body)["frames"] >= 1
    # Off (the default): the path is the app's.
    with override_settings(LAST9={"registry": last9.Registry()}):
        assert call(wsgi_handler(LAST9_ENTRY), "/metrics/ui")[0].startswith("404")


def test_middleware_entry_times_a_stream_until_it_is_closed(registry):
    with override_settings(LAST9={"registry": registry}):
        app = wsgi_handler(LAST9_ENTRY)
    call(app, "/stream/3/")  # 3 chunks, 50 ms apart
    total = sum(
        v for k, v in parse(registry.render()).items() if dict(k)["__name__"] == f"{METRIC}_sum"
    )
    assert total >= 150


def test_middleware_entry_records_a_propagated_exception_once(registry):
    with override_settings(LAST9={"registry": registry}):
        app = wsgi_handler(LAST9_ENTRY)
    propagate = override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True)
    with propagate, pytest.raises(RuntimeError, match="boom"):
        call(app, "/boom/")
    assert counted(registry) == {("/boom/", "500", "GET"): 1}


def test_observe_environ_reads_host_method_and_path(registry):
    routed = last9.Recorder(registry, hostname="box", program="a", route_syntax="django")
    routed.observe_environ("item/<int:pk>", {"HTTP_HOST": "Shop.Example:8000"}, 200, 1_000)
    unrouted = last9.Recorder(registry, hostname="box", program="b")
    meta = {"SERVER_NAME": "example.com", "REQUEST_METHOD": "PUT", "PATH_INFO": "/user/42"}
    unrouted.observe_environ(None, meta, 204, 1_000)
    assert counts_by(registry.render(), "program", "per", "domain", "method", "status") == {
        ("a", "/item/{pk}", "shop.example", "_OTHER", "200"): 1,  # no method: _OTHER
        ("b", "/user/{id}", "example.com", "PUT", "204"): 1,
    }


def test_middleware_entry_rejects_unknown_settings():
    with override_settings(LAST9={"tennant": "typo"}), pytest.raises(ImproperlyConfigured):
        wsgi_handler(LAST9_ENTRY)


def test_both_ways_together_count_each_request_once(registry):
    with override_settings(LAST9={"registry": registry}):
        wsgi_app = RedMiddleware(wsgi_handler(LAST9_ENTRY), registry=registry)
        asgi_app = AsgiRedMiddleware(asgi_handler(LAST9_ENTRY), registry=registry)
    for (method, path), (_, status) in TRAFFIC.items():
        assert call(wsgi_app, path, method)[0].startswith(status)
        assert asgi_call(asgi_app, path, method)[0] == int(status)
    call(wsgi_app, "/name/ada")  # answered by CommonMiddleware before any route resolved
    assert counted(registry) == {
        **{k: 2 * v for k, v in expected(TRAFFIC).items()},
        ("/unmatched", "301", "GET"): 1,
    }


def test_detection_never_imports_django():
    code = (
        "import sys\n"
        "from last9.wsgi.middleware import RedMiddleware\n"
        "from last9.asgi.middleware import RedMiddleware as A\n"
        "RedMiddleware(lambda e, s: [])\n"
        "async def app(scope, receive, send): pass\n"
        "A(app)\n"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- Over real HTTP: the project under gunicorn and uvicorn, both ways ----------------------

SERVERS = {
    # name: (server, entry point, settings module)
    "wsgi-wrapper": ("gunicorn", "mysite.wsgi:application", "mysite.settings"),
    "asgi-wrapper": ("uvicorn", "mysite.asgi:application", "mysite.settings"),
    "wsgi-middleware": ("gunicorn", "mysite.plain_wsgi:application", "mysite.settings_middleware"),
    "asgi-middleware": ("uvicorn", "mysite.plain_asgi:application", "mysite.settings_middleware"),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    kind, entry, settings_module = SERVERS[request.param]
    port = free_port()
    if kind == "gunicorn":
        command = gunicorn(entry, port, "-w", "1", "--threads", "4")
    else:
        command = [
            sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log", entry,
        ]  # fmt: skip
    env = {
        "PYTHONPATH": os.pathsep.join([APPS, str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": settings_module,
    }
    with serve(command, port, env=env):
        yield port


def send(port: int, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=10)


def test_real_http_traffic_is_counted_by_template(server):
    before = counts_by(scrape(server).text, "per", "status", "method")
    for (method, path), (_, status) in TRAFFIC.items():
        assert send(server, path, method).status_code == int(status)
    for n in range(5):
        assert send(server, f"/name/user{n}/").text == f"<p>Hello, user{n}!</p>"
    after = counts_by(scrape(server).text, "per", "status", "method")
    delta = increase(before, after)
    assert delta == {**expected(TRAFFIC), ("/name/{name}/", "200", "GET"): 6}


def test_real_http_labels(server):
    send(server, "/item/42")
    response = scrape(server)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    labels = next(dict(k) for k in parse(response.text) if dict(k).get("per") == "/item/{item_id}")
    assert labels["program"] == "mysite"
    assert (labels["tenant"], labels["cluster"]) == ("acme", "test")
    assert labels["domain"] == "127.0.0.1"
    assert labels["hostname"] == os.uname().nodename


def test_real_http_durations_cover_slow_views_and_streams(server):
    send(server, "/slow/120/")
    assert send(server, "/stream/4/").text == "".join(f"chunk {i}\n" for i in range(4))
    samples = parse(scrape(server).text)

    def sum_of(per: str) -> float:
        return sum(
            v
            for k, v in samples.items()
            if dict(k)["__name__"] == f"{METRIC}_sum" and dict(k)["per"] == per
        )

    assert sum_of("/slow/{ms}/") >= 120
    assert sum_of("/stream/{chunks}/") >= 200  # 4 chunks, 50 ms apart


@pytest.mark.parametrize("way", ["wsgi-wrapper", "wsgi-middleware"])
def test_real_http_several_workers_are_summed(way):
    _, entry, settings_module = SERVERS[way]
    port = free_port()
    env = {
        "PYTHONPATH": os.pathsep.join([APPS, str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": settings_module,
    }
    with serve(gunicorn(entry, port, "-w", "3"), port, env=env):
        for n in range(30):
            assert send(port, f"/item/{n}").status_code == 200
        send(port, "/no/such/route")
        assert counts_by(scrape(port).text, "per", "status") == {
            ("/item/{item_id}", "200"): 30,
            ("/unmatched", "404"): 1,
        }


def test_a_protected_metrics_path_needs_the_credentials(registry):
    with override_settings(LAST9={"registry": registry, **BASIC}):
        wsgi_app = wsgi_handler(LAST9_ENTRY)
        asgi_app = asgi_handler(LAST9_ENTRY)
    call(wsgi_app, "/item/1")
    body = assert_only_the_right_credentials_scrape(wsgi_scraper(wsgi_app))
    assert counts_by(body, "per") == {("/item/{item_id}",): 1}
    body = assert_only_the_right_credentials_scrape(asgi_scraper(asgi_app))
    assert counts_by(body, "per") == {("/item/{item_id}",): 1}
    # Wrapping the handler instead.
    other = last9.Registry()
    wrapped = RedMiddleware(wsgi_handler(), registry=other, **BEARER)
    assert_only_the_right_credentials_scrape(wsgi_scraper(wrapped), "Bearer")


def test_a_django_url_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    with caplog.at_level("WARNING", logger="last9"):
        with override_settings(LAST9={"registry": registry, "metrics_path": "/item/7"}):
            wsgi_handler(LAST9_ENTRY)
        RedMiddleware(wsgi_handler(), registry=registry)
    (record,) = caplog.records
    assert "'item/<int:item_id>'" in record.getMessage()


@pytest.mark.parametrize("wrapping", ["entry", "handler"])
def test_excluded_requests_leave_no_trace(registry, wrapping):
    exclude = ["/files/{path}", "^/boom", "OPTIONS"]
    if wrapping == "entry":
        with override_settings(LAST9={"registry": registry, "exclude": exclude}):
            app = wsgi_handler(LAST9_ENTRY)
    else:
        app = RedMiddleware(wsgi_handler(), registry=registry, exclude=exclude)
    for path in ("/ping/", "/files/a/b.txt", "/boom/", "/name/ada/"):
        call(app, path)
    call(app, "/name/ada/", "OPTIONS")
    # The view marked @last9.exclude, a template, a regular expression and a method: none left.
    assert counts_by(registry.render(), "per", "method") == {("/name/{name}/", "GET"): 1}


def test_the_switch_takes_the_entry_out_of_the_chain(registry, monkeypatch):
    monkeypatch.setenv("LAST9_DISABLED", "1")
    with override_settings(LAST9={"registry": registry}):
        app = wsgi_handler(LAST9_ENTRY)
    call(app, "/name/ada/")
    assert counts_by(registry.render(), "per") == {}


def in_flight_now(registry: last9.Registry) -> float:
    return sum(
        value
        for key, value in parse(registry.render()).items()
        if dict(key)["__name__"] == "http_requests_in_flight"
    )


def test_middleware_entry_keeps_in_flight_and_counts_callers(registry):
    last9._core.enable_lineage()  # callers are counted once lineage is on
    with override_settings(LAST9={"registry": registry}):
        app = wsgi_handler(LAST9_ENTRY)
    body = app(environ_for("/stream/2/", HTTP_X_LAST9_CALLER="web"), lambda *args: None)
    assert in_flight_now(registry) == 1  # the stream is still open
    list(body)
    body.close()
    assert in_flight_now(registry) == 0
    call(app, "/name/ada/")
    callers = {
        (dict(key)["caller"], dict(key)["per"]): value
        for key, value in parse(registry.render()).items()
        if dict(key)["__name__"] == "http_requests_callers_total"
    }
    assert callers == {("web", "/stream/{chunks}/"): 1, ("unknown", "/name/{name}/"): 1}


@pytest.mark.parametrize("kind", ["wsgi-middleware", "asgi-middleware"])
def test_real_http_middleware_entry_keeps_lineage(kind):
    """Under gunicorn and uvicorn: a call the view makes goes under the view's route, and the
    called view counts the project as its caller, as the WSGI and ASGI wrappers do."""
    server, entry, _ = SERVERS[kind]
    port = free_port()
    if server == "gunicorn":
        command = gunicorn(entry, port, "-w", "1", "--threads", "4")
    else:
        command = [sys.executable, "-m", "uvicorn", "--port", str(port), "--lifespan", "off", entry]
    env = {
        "PYTHONPATH": os.pathsep.join([APPS, str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "mysite.settings_lineage",
        "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
        "LAST9_PROGRAM": "mysite",
    }
    with serve(command, port, env=env):
        for n in range(3):
            response = requests.get(
                f"http://127.0.0.1:{port}/relay/{n}/", headers={"X-Last9-Caller": "web"}, timeout=10
            )
            assert response.text == "relayed 200"
        samples = parse(scrape(port).text)

    def family(name: str) -> dict[tuple[str, ...], float]:
        return {
            tuple(v for k, v in key if k in ("caller", "per", "status", "upstream")): value
            for key, value in samples.items()
            if dict(key)["__name__"] == name
        }

    assert family("http_client_requests_duration_milliseconds_count") == {
        ("/relay/{n}/", "200", f"127.0.0.1:{port}"): 3
    }
    assert family("http_requests_callers_total") == {
        ("web", "/relay/{n}/", "2xx"): 3,
        ("mysite", "/name/{name}/", "2xx"): 3,
    }
    in_flight = [v for k, v in samples.items() if dict(k)["__name__"] == "http_requests_in_flight"]
    assert in_flight and sum(in_flight) == 0
