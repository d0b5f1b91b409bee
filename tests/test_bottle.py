"""Bottle: route rules, in-process and over real HTTP (gunicorn for RedMiddleware, waitress for
the plugin)."""

from __future__ import annotations

import bottle
import pytest
from auth_helpers import BEARER, assert_only_the_right_credentials_scrape, wsgi_scraper

import last9
from conftest import METRIC, counts_by, free_port, gunicorn, increase, parse, scrape, serve
from last9.bottle import Plugin
from last9.wsgi.middleware import RedMiddleware
from traffic import get, waitress
from wsgi_helpers import call


class Boom(Exception):
    pass


def make_bottle() -> bottle.Bottle:
    app = bottle.Bottle()

    @app.route("/object/:oid")
    def legacy(oid):
        return oid

    @app.route("/anon/<:re:[0-9]+>/<>")
    def anonymous(*args):
        return "anon"

    @app.route("/price/<p:float>", method="PUT")
    def price(p):
        return str(p)

    @app.route("/private/<doc>")
    def private(doc):
        return doc

    @app.route("/fails/<n:int>")
    def fails(n):
        raise Boom(n)

    @app.hook("before_request")
    def guard():
        if bottle.request.path.startswith("/private/"):
            bottle.abort(401, "who are you?")

    return app


def test_rules_in_every_syntax(registry):
    app = RedMiddleware(make_bottle(), registry=registry)
    assert call(app, "/object/7")[0] == "200 OK"
    assert call(app, "/anon/12/x")[0] == "200 OK"
    assert call(app, "/price/1.5", "PUT")[0] == "200 OK"
    assert call(app, "/price/1.2.3", "PUT")[0] == "400 Bad Request"  # the filter failed
    assert call(app, "/price/1.5")[0] == "405 Method Not Allowed"
    assert call(app, "/private/x")[0] == "401 Unauthorized"  # aborted before routing
    assert call(app, "/nope")[0] == "404 Not Found"
    assert counts_by(registry.render(), "per", "status", "method") == {
        ("/object/{oid}", "200", "GET"): 1,
        ("/anon/{arg0}/{arg1}", "200", "GET"): 1,
        ("/price/{p}", "200", "PUT"): 1,
        ("/price/{p}", "400", "PUT"): 1,
        ("/price/{p}", "405", "GET"): 1,
        ("/private/{doc}", "401", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
    }


def test_an_exception_bottle_does_not_catch_is_recorded_and_re_raised(registry):
    inner = make_bottle()
    inner.catchall = False
    app = RedMiddleware(inner, registry=registry)
    with pytest.raises(Boom) as raised:
        call(app, "/fails/3")
    assert raised.value.args == (3,)
    assert call(RedMiddleware(make_bottle(), registry=registry), "/fails/4")[0].startswith("500")
    assert counts_by(registry.render(), "per", "status") == {("/fails/{n}", "500"): 2}


def test_apps_mounted_after_wrapping_get_their_prefix(registry):
    root = make_bottle()
    app = RedMiddleware(root, registry=registry)
    call(app, "/object/1")  # the mount prefixes are known from here on
    child = bottle.Bottle()
    child.route("/<slug>", callback=lambda slug: slug)
    grandchild = bottle.Bottle()
    grandchild.route("/<n:int>", method="POST", callback=lambda n: "n")
    child.mount("/g", grandchild)
    root.mount("/late", child)
    assert call(app, "/late/abc")[0] == "200 OK"
    assert call(app, "/late/g/5", "POST")[0] == "200 OK"
    assert call(app, "/late/g/5")[0] == "405 Method Not Allowed"
    assert call(app, "/late/g/x", "POST")[0] == "404 Not Found"
    assert counts_by(registry.render(), "per", "status", "method") == {
        ("/object/{oid}", "200", "GET"): 1,
        ("/late/{slug}", "200", "GET"): 1,
        ("/late/g/{n}", "200", "POST"): 1,
        ("/late/g/{n}", "405", "GET"): 1,
        ("/unmatched", "404", "POST"): 1,
    }


def test_a_mounted_wsgi_app_is_counted_under_its_mount_point(registry):
    def other(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    root = make_bottle()
    root.mount("/ext", other)
    app = RedMiddleware(root, registry=registry)
    status, _, body = call(app, "/ext/any/thing")
    assert (status, body) == ("200 OK", b"/any/thing")
    assert counts_by(registry.render(), "per", "status") == {("/ext/{arg0}", "200"): 1}


def test_responses_are_unchanged(registry):
    plain, wrapped = make_bottle(), RedMiddleware(make_bottle(), registry=registry)
    for path, method in (("/object/x", "GET"), ("/price/2", "GET"), ("/nope", "HEAD")):
        assert call(wrapped, path, method) == call(plain, path, method)


def test_the_plugin_is_red_middleware_installed_the_bottle_way(registry):
    app = make_bottle()
    plugin = app.install(Plugin(registry=registry, program="plugged"))
    assert isinstance(app.wsgi, RedMiddleware)
    assert call(app, "/object/1")[0] == "200 OK"
    assert call(app, "/metrics")[0] == "200 OK"
    assert counts_by(registry.render(), "per", "program") == {("/object/{oid}", "plugged"): 1}
    app.uninstall(plugin)
    assert not isinstance(app.wsgi, RedMiddleware)
    call(app, "/object/2")
    assert counts_by(registry.render(), "per") == {("/object/{oid}",): 1}


def test_red_middleware_over_the_plugin_counts_once(registry):
    app = make_bottle()
    app.install(Plugin(registry=last9.Registry()))
    wrapped = RedMiddleware(app, registry=registry)
    call(wrapped, "/object/1")
    assert counts_by(registry.render(), "per") == {("/object/{oid}",): 1}
    assert app.wsgi.registry.series_count() == 0


# --- Over real HTTP -----------------------------------------------------------------------


SERVERS = {
    "red_middleware/gunicorn": lambda port: gunicorn(
        "tests.apps.bottle_app:application", port, "-w", "1", "--threads", "4"
    ),
    "plugin/waitress": lambda port: waitress(
        "tests.apps.bottle_app:make_plugin_app", port, "--call"
    ),
}

PROGRAMS = {"red_middleware/gunicorn": "shop", "plugin/waitress": "shop-plugin"}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def served(request):
    port = free_port()
    with serve(SERVERS[request.param](port), port):
        yield port, PROGRAMS[request.param]


@pytest.fixture
def server(served):
    return served[0]


def test_real_http_traffic_is_counted_by_rule(server):
    before = counts_by(scrape(server).text, "per", "status", "method")
    for n in range(10):
        assert get(server, f"/name/{n}").status_code == 200
    for n in (1, 22, 333):
        assert get(server, f"/item/{n}").json() == {"id": n}
    assert get(server, "/files/a/b/c.txt").text == "a/b/c.txt"
    assert get(server, "/api/v1/users/u7/orders/9").json() == {"user": "u7", "order": 9}
    assert get(server, "/legacy/items/4").json() == {"legacy": "4"}
    assert get(server, "/legacy/deep/1/ab").text == "1-ab"
    assert get(server, "/item/abc").status_code == 404  # the int filter did not match
    assert get(server, "/no/such/route").status_code == 404
    assert get(server, "/legacy/deep/1/12").status_code == 404
    assert get(server, "/item/5", "DELETE").status_code == 405
    assert get(server, "/legacy/items/4", "POST").status_code == 405
    assert get(server, "/boom").status_code == 500
    assert get(server, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"
    after = counts_by(scrape(server).text, "per", "status", "method")
    delta = increase(before, after)
    assert delta == {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/files/{subpath}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/legacy/items/{item_id}", "200", "GET"): 1,
        ("/legacy/deep/{a}/{b}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 3,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/legacy/items/{item_id}", "405", "POST"): 1,
        ("/boom", "500", "GET"): 1,
        ("/stream/{chunks}", "200", "GET"): 1,
    }


def test_real_http_labels_and_streamed_durations(served):
    server = served[0]
    get(server, "/slow/120")
    get(server, "/stream/4")  # 4 chunks, 50 ms apart: the first before the response starts
    samples = parse(scrape(server).text)
    labels = next(dict(k) for k in samples if dict(k).get("per") == "/slow/{ms}")
    assert labels["program"] == served[1]
    assert (labels["tenant"], labels["cluster"], labels["domain"]) == ("acme", "test", "127.0.0.1")

    def sum_of(per: str) -> float:
        return sum(
            v
            for k, v in samples.items()
            if dict(k)["__name__"] == f"{METRIC}_sum" and dict(k)["per"] == per
        )

    assert sum_of("/slow/{ms}") >= 120
    assert sum_of("/stream/{chunks}") >= 200


def test_a_protected_metrics_path_needs_the_credentials(registry):
    app = make_bottle()
    app.install(Plugin(registry=registry, **BEARER))
    call(app, "/object/1")
    body = assert_only_the_right_credentials_scrape(wsgi_scraper(app), "Bearer")
    assert counts_by(body, "per") == {("/object/{oid}",): 1}


def test_a_bottle_route_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    app = make_bottle()
    with caplog.at_level("WARNING", logger="last9"):
        RedMiddleware(app, registry=registry)
        RedMiddleware(app, registry=registry, metrics_path="/object/7")
    (record,) = caplog.records
    assert "'/object/:oid'" in record.getMessage()
