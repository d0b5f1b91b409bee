"""Pyramid: route patterns, in-process and over real HTTP (gunicorn for RedMiddleware, waitress
for the tween)."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_helpers import BASIC, assert_only_the_right_credentials_scrape, wsgi_scraper
from pyramid.config import Configurator
from pyramid.response import Response

import last9
from conftest import METRIC, counts_by, free_port, gunicorn, increase, parse, scrape, serve
from last9.pyramid import TWEEN
from last9.wsgi.middleware import RedMiddleware
from tests.apps import pyramid_app
from traffic import get, waitress
from wsgi_helpers import call


def ok(request):
    return Response("ok")


def admin_routes(config):
    with config.route_prefix_context("admin"):
        config.add_route("admin_user", "users/{user:[a-z]+}/")
        config.add_view(ok, route_name="admin_user")


def make_config(settings=None) -> Configurator:
    config = Configurator(settings=settings)
    config.add_route("name", "/name/{name}")
    config.add_view(ok, route_name="name")
    config.add_route("post_only", "/post/{id:\\d+}")
    config.add_view(ok, route_name="post_only", request_method="POST")
    config.add_route("relative", "rel/{x}")
    config.add_view(ok, route_name="relative")
    config.add_route("fails", "/fails/{n}")
    config.add_view(fail, route_name="fails")
    config.include(admin_routes, route_prefix="/api")
    config.add_static_view("static", str(Path(__file__).parent / "apps"))
    return config


class Boom(Exception):
    pass


def fail(request):
    raise Boom(request.matchdict["n"])


def make_app(registry: last9.Registry, **kwargs) -> RedMiddleware:
    return RedMiddleware(make_config().make_wsgi_app(), registry=registry, **kwargs)


def test_patterns_not_paths(registry):
    app = make_app(registry)
    for n in range(5):
        assert call(app, f"/name/{n}")[0] == "200 OK"
    assert call(app, "/api/admin/users/bob/")[0] == "200 OK"
    assert call(app, "/rel/1")[0] == "200 OK"
    assert call(app, "/static/pyramid_app.py")[0] == "200 OK"
    assert call(app, "/nothing/here")[0].startswith("404")
    assert call(app, "/api/admin/users/BOB/")[0].startswith("404")  # the regex did not match
    assert counts_by(registry.render(), "per", "status", "method") == {
        ("/name/{name}", "200", "GET"): 5,
        ("/api/admin/users/{user}/", "200", "GET"): 1,
        ("/rel/{x}", "200", "GET"): 1,
        ("/static/{subpath}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 2,
    }


def test_a_view_predicate_mismatch_keeps_the_pattern_with_the_status_sent(registry):
    app = make_app(registry)
    assert call(app, "/post/3", "POST")[0] == "200 OK"
    assert call(app, "/post/3", "GET")[0] == "404 Not Found"  # Pyramid's default
    assert counts_by(registry.render(), "per", "status", "method") == {
        ("/post/{id}", "200", "POST"): 1,
        ("/post/{id}", "404", "GET"): 1,
    }


def test_an_app_exception_is_recorded_as_500_and_re_raised_unchanged(registry):
    app = make_app(registry)
    with pytest.raises(Boom) as raised:
        call(app, "/fails/7")
    assert raised.value.args == ("7",)
    assert counts_by(registry.render(), "per", "status") == {("/fails/{n}", "500"): 1}


def test_responses_are_unchanged(registry):
    plain = make_config().make_wsgi_app()
    wrapped = make_app(registry)
    for path in ("/name/x", "/post/1", "/rel/2", "/nothing", "/static/__init__.py"):
        assert call(wrapped, path) == call(plain, path)


def test_pure_traversal_apps_have_no_templates(registry):
    config = Configurator(root_factory=lambda request: {})
    config.add_view(ok)
    app = RedMiddleware(config.make_wsgi_app(), registry=registry)
    assert call(app, "/")[0] == "200 OK"
    assert counts_by(registry.render(), "per", "status") == {("/unmatched", "200"): 1}


def test_program_defaults_to_the_configuring_package(registry):
    app = RedMiddleware(pyramid_app.configure().make_wsgi_app(), registry=registry)
    assert app.recorder.program == "tests"


def test_wrapping_the_same_router_twice_captures_once(registry):
    router = make_config().make_wsgi_app()
    RedMiddleware(router, registry=last9.Registry())
    first = router.handle_request
    app = RedMiddleware(router, registry=registry)
    assert router.handle_request is first
    assert call(app, "/name/a")[0] == "200 OK"
    assert counts_by(registry.render(), "per") == {("/name/{name}",): 1}


# --- The tween: config.include("last9.pyramid") ---------------------------------


def test_the_tween_records_on_its_own():
    config = make_config({"last9.program": "tweened", "last9.tenant": "t1"})
    config.include("last9.pyramid")
    app = config.make_wsgi_app()
    before = counts_by(last9.REGISTRY.render(), "per", "status", "method", program="tweened")
    assert call(app, "/name/a")[0] == "200 OK"
    assert call(app, "/post/9")[0] == "404 Not Found"
    assert call(app, "/missing")[0] == "404 Not Found"
    with pytest.raises(Boom):
        call(app, "/fails/1")
    status, headers, body = call(app, "/metrics")
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    after = counts_by(body, "per", "status", "method", program="tweened")
    delta = increase(before, after)
    assert delta == {
        ("/name/{name}", "200", "GET"): 1,
        ("/post/{id}", "404", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
        ("/fails/{n}", "500", "GET"): 1,
    }
    tenants = {dict(k).get("tenant") for k in parse(body) if dict(k).get("program") == "tweened"}
    assert tenants == {"t1"}


def test_the_tween_in_an_explicit_tween_list():
    tweens = f"{TWEEN}\npyramid.tweens.excview_tween_factory"
    app = make_config({"pyramid.tweens": tweens, "last9.program": "listed"}).make_wsgi_app()
    assert call(app, "/name/a")[0] == "200 OK"
    with pytest.raises(Boom):
        call(app, "/fails/2")
    assert counts_by(last9.REGISTRY.render(), "per", "status", program="listed") == {
        ("/name/{name}", "200"): 1,
        ("/fails/{n}", "500"): 1,
    }


def test_the_tween_steps_aside_for_red_middleware(registry):
    config = make_config({"last9.program": "both"})
    config.include("last9.pyramid")
    router = config.make_wsgi_app()
    app = RedMiddleware(router, registry=registry, program="both")
    assert router.registry[TWEEN].recorder is None
    assert call(app, "/name/a")[0] == "200 OK"
    assert call(app, "/post/1")[0] == "404 Not Found"
    assert counts_by(registry.render(), "per", "status") == {
        ("/name/{name}", "200"): 1,
        ("/post/{id}", "404"): 1,
    }
    assert counts_by(last9.REGISTRY.render(), "per", program="both") == {}


# --- Over real HTTP -----------------------------------------------------------------------


SERVERS = {
    "red_middleware/gunicorn": lambda port: gunicorn(
        "tests.apps.pyramid_app:make_app()", port, "-w", "1", "--threads", "4"
    ),
    "tween/waitress": lambda port: waitress(
        "tests.apps.pyramid_app:make_tween_app", port, "--threads", "4", "--call"
    ),
}

PROGRAMS = {"red_middleware/gunicorn": "shop", "tween/waitress": "shop-tween"}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def served(request):
    port = free_port()
    with serve(SERVERS[request.param](port), port):
        yield port, PROGRAMS[request.param]


@pytest.fixture
def server(served):
    return served[0]


def test_real_http_traffic_is_counted_by_pattern(server):
    before = counts_by(scrape(server).text, "per", "status", "method")
    for n in range(10):
        assert get(server, f"/name/{n}").status_code == 200
    for n in (1, 22, 333):
        assert get(server, f"/item/{n}").json() == {"id": n}
    assert get(server, "/files/a/b/c.txt").text == "a/b/c.txt"
    assert get(server, "/api/v1/users/u7/orders/9").json() == {"user": "u7", "order": 9}
    assert get(server, "/item/abc").status_code == 404  # the converter's regex did not match
    assert get(server, "/no/such/route").status_code == 404
    assert get(server, "/item/5", "DELETE").status_code == 405
    assert get(server, "/boom").status_code == 500
    assert get(server, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"
    after = counts_by(scrape(server).text, "per", "status", "method")
    delta = increase(before, after)
    assert delta == {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/files/{subpath}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 2,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/boom", "500", "GET"): 1,
        ("/stream/{chunks}", "200", "GET"): 1,
    }


def test_real_http_labels(served):
    server = served[0]
    get(server, "/name/x")
    text = scrape(server).text
    labels = next(dict(k) for k in parse(text) if dict(k).get("per") == "/name/{name}")
    assert labels["program"] == served[1]
    assert (labels["tenant"], labels["cluster"], labels["domain"]) == ("acme", "test", "127.0.0.1")


def sum_of(text: str, per: str) -> float:
    return next(
        v
        for k, v in parse(text).items()
        if dict(k)["__name__"] == f"{METRIC}_sum" and dict(k)["per"] == per
    )


def test_real_http_durations_through_red_middleware_cover_streamed_bodies():
    port = free_port()
    with serve(SERVERS["red_middleware/gunicorn"](port), port):
        get(port, "/slow/120")
        get(port, "/stream/4")  # 4 chunks, 50 ms apart, after the view returned
        text = scrape(port).text
    assert sum_of(text, "/slow/{ms}") >= 120
    assert sum_of(text, "/stream/{chunks}") >= 200


def test_a_protected_metrics_path_needs_the_credentials(registry):
    wrapped = make_app(registry, **BASIC)
    call(wrapped, "/name/a")
    body = assert_only_the_right_credentials_scrape(wsgi_scraper(wrapped))
    assert counts_by(body, "per") == {("/name/{name}",): 1}
    # The tween, configured from the app's settings.
    settings = {f"last9.{key}": value for key, value in BASIC.items()}
    config = make_config(settings)
    config.include("last9.pyramid")
    assert_only_the_right_credentials_scrape(wsgi_scraper(config.make_wsgi_app()))


def test_a_pyramid_route_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    config = make_config({"last9.metrics_path": "/name/x"})
    config.include("last9.pyramid")
    with caplog.at_level("WARNING", logger="last9"):
        app = config.make_wsgi_app()
        RedMiddleware(app, registry=registry, metrics_path="/fails/2")
        RedMiddleware(app, registry=registry)
    assert ["'/name/{name}' (name)" in r.getMessage() for r in caplog.records] == [True, False]
    assert "'/fails/{n}' (fails)" in caplog.records[1].getMessage()


def test_the_tween_serves_the_live_page_when_ui_is_on_in_the_settings():
    import json

    config = make_config({"last9.ui": "true"})
    config.include("last9.pyramid")
    app = config.make_wsgi_app()
    call(app, "/name/a")
    status, _, body = call(app, "/metrics/ui/data.json")
    names = [r["per"] for p in json.loads(body)["programs"] for r in p["routes"]]
    assert status == "200 OK" and "/name/{name}" in names
    assert call(app, "/metrics/ui")[0] == "200 OK"
    off = make_config()
    off.include("last9.pyramid")
    assert call(off.make_wsgi_app(), "/metrics/ui")[0].startswith("404")
