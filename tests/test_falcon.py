"""Falcon, WSGI and ASGI: in-process, then over real HTTP (gunicorn, waitress, uvicorn)."""

from __future__ import annotations

import falcon
import falcon.asgi
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
from conftest import counts_by, free_port, gunicorn, parse, scrape, serve, uvicorn
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.falcon import Middleware
from last9.wsgi.middleware import RedMiddleware
from traffic import UUID, counted, counts, duration_sum, family, get, requests_to, waitress
from wsgi_helpers import call


class Item:
    def on_get(self, req, resp, item_id):
        resp.media = {"id": item_id}

    def on_get_detail(self, req, resp, item_id):
        resp.media = {"id": item_id, "detail": True}


class Boom:
    def on_get(self, req, resp):
        raise RuntimeError("boom")


def sink(req, resp, **params):
    resp.text = f"sunk {params}"


def shop(app: falcon.App, static_dir) -> falcon.App:
    app.add_route("/item/{item_id:int}", Item())
    app.add_route("/item/{item_id:int}/detail", Item(), suffix="detail")
    app.add_route("/boom", Boom())
    app.add_sink(sink, "/proxy")
    app.add_sink(sink, r"/search/(?P<engine>ddg|bing)\Z")
    app.add_static_route("/static", str(static_dir))
    return app


WSGI_TRAFFIC = (
    "/item/1",
    "/item/2",
    "/item/abc",
    "DELETE /item/1",
    "/item/3/detail",
    "POST /item/3/detail",
    "/proxy/a/b",
    "/search/ddg",
    "/search/other",
    "/static/app.js",
    "/static/missing.js",
    "/boom",
    "HEAD /item/4",
)
WSGI_COUNTS = {
    ("/item/{item_id}", "200", "GET"): 2,
    ("/item/{item_id}", "405", "DELETE"): 1,
    ("/item/{item_id}", "405", "HEAD"): 1,  # Falcon has no implicit HEAD
    ("/item/{item_id}/detail", "200", "GET"): 1,
    ("/item/{item_id}/detail", "405", "POST"): 1,
    ("/proxy/{path}", "200", "GET"): 1,
    ("/search/{engine}", "200", "GET"): 1,
    ("/static/{path}", "200", "GET"): 1,
    ("/static/{path}", "404", "GET"): 1,
    ("/unmatched", "404", "GET"): 2,
    ("/boom", "500", "GET"): 1,
}


def wsgi_requests(app, *calls: str) -> list[str]:
    statuses = []
    for request in calls:
        method, _, path = request.rpartition(" ")
        statuses.append(call(app, path, method or "GET")[0])
    return statuses


@pytest.fixture
def static_dir(tmp_path):
    (tmp_path / "app.js").write_text("1")
    return tmp_path


def test_wsgi_app_templates_suffixes_sinks_and_static_routes(registry, static_dir):
    app = RedMiddleware(shop(falcon.App(), static_dir), registry=registry)
    statuses = wsgi_requests(app, *WSGI_TRAFFIC, *WSGI_TRAFFIC)
    assert statuses.count("500 Internal Server Error") == 2
    assert counts(registry) == {key: 2 * n for key, n in WSGI_COUNTS.items()}


def test_asgi_app_gives_the_same_templates(registry, static_dir):
    class AsyncItem:
        async def on_get(self, req, resp, item_id):
            resp.media = {"id": item_id}

        async def on_get_detail(self, req, resp, item_id):
            resp.media = {"id": item_id, "detail": True}

    class AsyncBoom:
        async def on_get(self, req, resp):
            raise RuntimeError("boom")

    async def async_sink(req, resp, **params):
        resp.text = "sunk"

    app = falcon.asgi.App()
    app.add_route("/item/{item_id:int}", AsyncItem())
    app.add_route("/item/{item_id:int}/detail", AsyncItem(), suffix="detail")
    app.add_route("/boom", AsyncBoom())
    app.add_sink(async_sink, "/proxy")
    app.add_sink(async_sink, r"/search/(?P<engine>ddg|bing)\Z")
    app.add_static_route("/static", str(static_dir))
    requests_to(AsgiRedMiddleware(app, registry=registry), *WSGI_TRAFFIC)
    assert counts(registry) == WSGI_COUNTS


def test_wrapping_twice_does_not_wrap_the_router_twice(registry):
    app = falcon.App()
    app.add_route("/x/{item_id}", Item())
    RedMiddleware(app, registry=last9.Registry())
    search = app._router_search
    wrapped = RedMiddleware(app, registry=registry)
    assert app._router_search is search
    wsgi_requests(wrapped, "/x/1")
    assert counts(registry) == {("/x/{item_id}", "200", "GET"): 1}


def test_a_request_answered_before_routing_is_unmatched(registry):
    class Refuse:
        def process_request(self, req, resp):
            if req.path.startswith("/private"):
                raise falcon.HTTPUnauthorized()

    app = falcon.App(middleware=[Refuse()])
    app.add_route("/private/{doc}", Item())
    wsgi_requests(RedMiddleware(app, registry=registry), "/private/1")
    assert counts(registry) == {("/unmatched", "401", "GET"): 1}


def test_responses_are_unchanged(registry, static_dir):
    plain = shop(falcon.App(), static_dir)
    wrapped = RedMiddleware(shop(falcon.App(), static_dir), registry=registry)
    for path in ("/item/1", "/item/x", "/proxy/z", "/static/app.js", "/missing"):
        assert call(wrapped, path) == call(plain, path)


def test_falcon_middleware_component_on_wsgi_and_asgi(registry, static_dir):
    app = shop(falcon.App(middleware=[Middleware(registry=registry)]), static_dir)
    wsgi_requests(app, "/item/1", "DELETE /item/1", "/item/2/detail", "/nope", "/boom", "/proxy/x")
    assert counts(registry) == {
        ("/item/{item_id}", "200", "GET"): 1,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/item/{item_id}/detail", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
        ("/boom", "500", "GET"): 1,
        ("/unmatched", "200", "GET"): 1,  # the sink: the component cannot see the app
    }
    status, headers, body = call(app, "/metrics")
    assert status == "200 OK"
    content_type = {name.lower(): value for name, value in headers}["content-type"]
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b'per="/item/{item_id}"' in body

    other = last9.Registry()

    class AsyncItem:
        async def on_get(self, req, resp, item_id):
            resp.media = {"id": item_id}

    asgi_app = falcon.asgi.App(middleware=[Middleware(registry=other)])
    asgi_app.add_route("/item/{item_id:int}", AsyncItem())
    assert requests_to(asgi_app, "/item/1", "/item/x", "/metrics") == [200, 404, 200]
    assert counts_by(other.render(), "per", "status", "domain") == {
        ("/item/{item_id}", "200", "testserver"): 1,
        ("/unmatched", "404", "testserver"): 1,
    }


def test_falcon_middleware_component_sees_what_comes_after_it(registry):
    class Refuse:
        def process_request(self, req, resp):
            raise falcon.HTTPUnauthorized()

    first = falcon.App(middleware=[Middleware(registry=registry), Refuse()])
    first.add_route("/doc/{item_id}", Item())
    other = last9.Registry()
    last = falcon.App(middleware=[Refuse(), Middleware(registry=other)])
    last.add_route("/doc/{item_id}", Item())
    wsgi_requests(first, "/doc/1")
    wsgi_requests(last, "/doc/1")  # refused before last9's component ran: not counted
    assert counts(registry) == {("/unmatched", "401", "GET"): 1}
    assert other.series_count() == 0


# --- Over real HTTP ---------------------------------------------------------------------------

REAL_COUNTS = {
    ("/name/{name}", "200", "GET"): 10,
    ("/item/{item_id}", "200", "GET"): 3,
    ("/item/{item_id}", "405", "DELETE"): 1,
    ("/item/{item_id}/detail", "200", "GET"): 1,
    ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
    ("/proxy/{path}", "200", "GET"): 1,
    ("/unmatched", "404", "GET"): 2,
    ("/boom", "500", "GET"): 1,
    ("/stream/{chunks}", "200", "GET"): 1,
}


def real_traffic(port: int) -> None:
    for n in range(10):
        assert get(port, f"/name/{n}").status_code == 200
    for n in (1, 22, 333):
        assert get(port, f"/item/{n}").json() == {"id": n}
    assert get(port, "/item/abc").status_code == 404  # the int converter did not match
    assert get(port, "/item/5", "DELETE").status_code == 405
    assert get(port, "/item/5/detail").json() == {"id": 5, "detail": True}
    assert get(port, f"/api/v1/users/{UUID}/orders/9").json()["order"] == 9
    assert get(port, "/proxy/a/b").text == "proxied /proxy/a/b"
    assert get(port, "/no/such/route").status_code == 404
    assert get(port, "/boom").status_code == 500
    assert get(port, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"


SERVERS = {
    "wsgi-gunicorn": lambda port: gunicorn("tests.apps.falcon_app:app", port, "--threads", "4"),
    "asgi-uvicorn": lambda port: uvicorn("tests.apps.falcon_asgi_app:app", port),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request):
    port = free_port()
    with serve(SERVERS[request.param](port), port):
        yield port


def test_real_http_traffic_is_counted_by_template(server):
    assert counted(server, lambda: real_traffic(server)) == REAL_COUNTS


def test_real_http_streamed_response_is_timed_to_its_last_chunk(server):
    before = duration_sum(server, "/stream/{chunks}")
    get(server, "/stream/4")  # 4 chunks, 50 ms apart
    assert duration_sum(server, "/stream/{chunks}") - before >= 200


def test_real_http_labels(server):
    get(server, "/name/x")
    labels = next(
        dict(k) for k in parse(scrape(server).text) if dict(k).get("per") == "/name/{name}"
    )
    assert (labels["program"], labels["tenant"], labels["cluster"]) == ("shop", "acme", "test")
    assert labels["domain"] == "127.0.0.1"


def test_real_http_falcon_middleware_component_under_waitress():
    port = free_port()
    with serve(waitress("tests.apps.falcon_app:component_app", port), port):
        expected = {
            **REAL_COUNTS,
            ("/unmatched", "200", "GET"): 1,  # the sink
        }
        del expected[("/proxy/{path}", "200", "GET")]
        assert counted(port, lambda: real_traffic(port)) == expected
        labels = next(
            dict(k) for k in parse(scrape(port).text) if dict(k).get("per") == "/name/{name}"
        )
        assert labels["program"] == "shop-mw"


def test_a_protected_metrics_path_needs_the_credentials(registry, static_dir):
    component = shop(falcon.App(middleware=[Middleware(registry=registry, **BASIC)]), static_dir)
    call(component, "/item/1")
    body = assert_only_the_right_credentials_scrape(wsgi_scraper(component))
    assert counts_by(body, "per") == {("/item/{item_id}",): 1}

    other = last9.Registry()
    asgi_component = falcon.asgi.App(middleware=[Middleware(registry=other, **BEARER)])
    assert_only_the_right_credentials_scrape(asgi_scraper(asgi_component), "Bearer")
    assert counts_by(other.render(), "per") == {}

    wrapped = RedMiddleware(shop(falcon.App(), static_dir), registry=last9.Registry(), **BASIC)
    assert_only_the_right_credentials_scrape(wsgi_scraper(wrapped))


def test_a_falcon_resource_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    class OwnMetrics:
        def on_get(self, req, resp):
            resp.text = "the app's own"

    app = falcon.App()
    app.add_route("/metrics", OwnMetrics())
    with caplog.at_level("WARNING", logger="last9"):
        RedMiddleware(app, registry=registry)
    assert "'/metrics'" in caplog.records[0].getMessage()


def test_the_middleware_serves_the_live_page_when_ui_is_on(registry, static_dir):
    import json

    component = shop(falcon.App(middleware=[Middleware(registry=registry, ui=True)]), static_dir)
    call(component, "/item/1")
    status, _, body = call(component, "/metrics/ui")
    assert status == "200 OK" and b"<script>" in body
    status, _, body = call(component, "/metrics/ui/data.json")
    routes = [r["per"] for p in json.loads(body)["programs"] for r in p["routes"]]
    assert status == "200 OK" and routes == ["/item/{item_id}"]
    asgi_component = falcon.asgi.App(middleware=[Middleware(registry=last9.Registry(), ui=True)])
    status, _, body = asgi_scraper(asgi_component, "/metrics/ui/data.json")(None)
    assert status == 200 and json.loads(body)["frames"] == 1
    off = shop(falcon.App(middleware=[Middleware(registry=last9.Registry())]), static_dir)
    assert call(off, "/metrics/ui")[0].startswith("404")


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_the_component_keeps_in_flight_and_lineage(kind, registry, monkeypatch):
    import contextlib

    from falcon import testing
    from urllib3.connectionpool import HTTPConnectionPool

    from last9 import lineage

    # urllib3 patched for this test only: later tests expect an unpatched client here.
    monkeypatch.setattr(HTTPConnectionPool, "urlopen", HTTPConnectionPool.urlopen)
    last9._core.enable_lineage()
    lineage._patch_urllib3()
    seen: list[float] = []

    def in_flight() -> float:
        return sum(family(registry.render(), "http_requests_in_flight").values())

    def work() -> None:
        seen.append(in_flight())
        with contextlib.suppress(requests.RequestException):
            requests.get("http://127.0.0.1:9/stock", timeout=5)

    class Item:
        def on_get(self, req, resp, item_id):
            work()
            resp.text = "ok"

    class AsyncItem:
        async def on_get(self, req, resp, item_id):
            work()
            resp.text = "ok"

    component = Middleware(registry=registry, program="shop", metrics_path=None)
    app = (falcon.App if kind == "wsgi" else falcon.asgi.App)(middleware=[component])
    app.add_route("/items/{item_id}", Item() if kind == "wsgi" else AsyncItem())
    client = testing.TestClient(app)
    client.simulate_get("/items/1", headers={"X-Last9-Caller": "web"})
    client.simulate_get("/items/2")
    assert seen == [1, 1]
    assert in_flight() == 0
    calls = family(registry.render(), "http_client_requests_duration_milliseconds_count")
    assert [(dict(k)["per"], dict(k)["upstream"], v) for k, v in calls.items()] == [
        ("/items/{item_id}", "127.0.0.1:9", 2)
    ]
    callers = family(registry.render(), "http_requests_callers_total")
    assert {dict(k)["caller"]: v for k, v in callers.items()} == {"web": 1, "unknown": 1}


@pytest.mark.parametrize(
    "command",
    [
        lambda port: waitress("tests.apps.falcon_lineage_app:wsgi_app", port),
        lambda port: uvicorn("tests.apps.falcon_lineage_app:asgi_app", port, "--lifespan", "off"),
    ],
    ids=["waitress", "uvicorn"],
)
def test_real_http_component_keeps_lineage(command):
    """Under waitress and uvicorn: a call the resource makes goes under the resource's route,
    and the called resource counts the app as its caller, as the WSGI and ASGI wrappers do."""
    port = free_port()
    with serve(command(port), port, env={"LAST9_INSTRUMENT_HTTP_CLIENTS": "1"}):
        for n in range(3):
            response = requests.get(
                f"http://127.0.0.1:{port}/relay/{n}", headers={"X-Last9-Caller": "web"}, timeout=10
            )
            assert response.text == "relayed 200"
        text = scrape(port).text

    calls = family(text, "http_client_requests_duration_milliseconds_count")
    assert {
        (dict(k)["per"], dict(k)["upstream"], dict(k)["status"]): v for k, v in calls.items()
    } == {("/relay/{n}", f"127.0.0.1:{port}", "200"): 3}
    callers = family(text, "http_requests_callers_total")
    assert {
        (dict(k)["caller"], dict(k)["per"], dict(k)["status"]): v for k, v in callers.items()
    } == {
        ("web", "/relay/{n}", "2xx"): 3,
        ("shop-mw", "/name/{name}", "2xx"): 3,
    }
    assert sum(family(text, "http_requests_in_flight").values()) == 0
