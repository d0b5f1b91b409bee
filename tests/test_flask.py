"""Flask: route templates, in-process and over real HTTP through gunicorn."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from auth_helpers import (
    BASIC,
    BASIC_ENV,
    assert_only_the_right_credentials_scrape,
    http_scraper,
    wsgi_scraper,
)
from flask import Blueprint, Flask

import last9
from conftest import (
    METRIC,
    ROOT,
    counts_by,
    eventually,
    free_port,
    gunicorn,
    increase,
    parse,
    scrape,
    serve,
    wait_for_port,
)
from last9.wsgi.middleware import RedMiddleware
from traffic import get
from wsgi_helpers import call, environ_for


def make_app(registry: last9.Registry) -> Flask:
    app = Flask("inproc")
    app.wsgi_app = RedMiddleware(app, registry=registry, hostname="box")

    @app.route("/name/<name>")
    def name(name):
        return name

    @app.route("/item/<int:item_id>", methods=["GET"])
    def item(item_id):
        return str(item_id)

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.route("/users/<string:user>/")
    def user(user):
        return user

    app.register_blueprint(admin)
    return app


def test_the_seed_line_does_not_recurse(registry):
    app = make_app(registry)
    assert app.test_client().get("/name/ada").data == b"ada"
    assert counts_by(registry.render(), "per", "program") == {("/name/{name}", "inproc"): 1}


def test_templates_not_paths(registry):
    client = make_app(registry).test_client()

    def fetch(path: str, method: str = "GET") -> None:
        client.open(path, method=method).close()  # the server's close() ends the request

    for n in range(10):
        fetch(f"/name/{n}")
        fetch(f"/item/{n}")
    fetch("/admin/users/bob/")
    fetch("/nothing/here")
    fetch("/item/3", "POST")
    assert counts_by(registry.render(), "per", "status", "method") == {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 10,
        ("/admin/users/{user}/", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
        ("/item/{item_id}", "405", "POST"): 1,
    }


def test_wrapping_wsgi_app_attribute_works_too(registry):
    app = Flask("attr")
    app.wsgi_app = RedMiddleware(app.wsgi_app, registry=registry)

    @app.route("/u/<int:uid>")
    def u(uid):
        return "ok"

    app.test_client().get("/u/5").close()
    assert counts_by(registry.render(), "per", "program") == {("/u/{uid}", "attr"): 1}


def test_a_request_class_set_later_is_still_captured(registry):
    from flask import Request

    app = make_app(registry)

    class MyRequest(Request):
        pass

    app.request_class = MyRequest
    client = app.test_client()
    client.get("/name/a").close()  # this one is missed: the class was swapped behind our back
    client.get("/name/b").close()
    assert counts_by(registry.render(), "per")[("/name/{name}",)] >= 1


def test_a_view_error_flask_lets_through_keeps_its_route(registry):
    # With PROPAGATE_EXCEPTIONS no response starts, and Flask lets go of its request before
    # the exception reaches the middleware: the route must still be the view's.
    app = make_app(registry)
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/fail/<n>")
    def fail(n):
        raise KeyError(n)

    with pytest.raises(KeyError):
        app.test_client().get("/fail/1")
    assert counts_by(registry.render(), "per", "status") == {("/fail/{n}", "500"): 1}


def test_streamed_responses_keep_their_route(registry):
    # The route is read as the response starts; the request is recorded once the body ends,
    # after Flask has let go of its request.
    app = make_app(registry)

    @app.route("/stream/<n>")
    def stream(n):
        return app.response_class((part for part in ("a", "b", n)), mimetype="text/plain")

    response = app.test_client().get("/stream/7")
    assert response.data == b"ab7"
    response.close()
    assert counts_by(registry.render(), "per", "status") == {("/stream/{n}", "200"): 1}


def served_count(registry: last9.Registry) -> int:
    return sum(counts_by(registry.render(), "per").values())


def test_rendered_responses_are_recorded_at_once_and_passed_on_unwrapped(registry):
    from werkzeug.wsgi import ClosingIterator

    app = make_app(registry)
    closed = []

    @app.route("/rendered/<n>")
    def rendered(n):
        response = app.response_class(f"n={n}")
        response.call_on_close(lambda: closed.append(n))
        return response

    body = app.wsgi_app(environ_for("/rendered/4"), lambda status, headers, exc_info=None: None)
    # Werkzeug's own iterable reaches the server: nothing of ours is left to iterate or close.
    assert type(body) is ClosingIterator
    assert counts_by(registry.render(), "per", "status") == {("/rendered/{n}", "200"): 1}
    assert b"".join(body) == b"n=4"
    body.close()
    assert closed == ["4"]
    assert served_count(registry) == 1


def test_streamed_flask_bodies_are_timed_to_their_end(registry):
    from werkzeug.wsgi import ClosingIterator

    app = make_app(registry)

    @app.route("/chunks")
    def chunks():
        return app.response_class(iter([b"a", b"b"]))

    body = app.wsgi_app(environ_for("/chunks"), lambda status, headers, exc_info=None: None)
    assert type(body) is not ClosingIterator  # wrapped: the end of the body is still to come
    assert served_count(registry) == 0
    assert b"".join(body) == b"ab"
    assert counts_by(registry.render(), "per", "status") == {("/chunks", "200"): 1}
    body.close()
    assert served_count(registry) == 1


def test_an_error_in_the_middle_of_a_flask_stream_is_a_500(registry):
    app = make_app(registry)

    @app.route("/broken")
    def broken():
        def parts():
            yield b"first"
            raise OSError("source went away")

        return app.response_class(parts())

    with pytest.raises(OSError, match="source went away"):
        call(app, "/broken")
    assert counts_by(registry.render(), "per", "status") == {("/broken", "500"): 1}


def test_werkzeug_request_is_left_where_werkzeug_put_it(registry):
    seen = {}
    app = make_app(registry)
    inner = app.wsgi_app

    def outer(environ, start_response):
        body = inner(environ, start_response)
        seen.update(environ)
        return body

    app.wsgi_app = outer
    app.test_client().get("/name/a").close()
    assert "werkzeug.request" in seen  # as Flask leaves it (None, once it has popped)
    assert counts_by(registry.render(), "per") == {("/name/{name}",): 1}


def test_a_request_class_that_keeps_out_of_the_environ_is_captured(registry):
    from flask import Request

    app = make_app(registry)

    class Unpopulated(Request):
        def __init__(self, environ, populate_request=True, shallow=False):
            super().__init__(environ, populate_request=False, shallow=shallow)

    app.request_class = Unpopulated
    client = app.test_client()
    client.get("/name/a").close()  # missed: nothing in the environ to read the route from
    client.get("/name/b").close()
    client.post("/item/3").close()
    assert counts_by(registry.render(), "per", "status") == {
        ("/unmatched", "200"): 1,
        ("/name/{name}", "200"): 1,
        ("/item/{item_id}", "405"): 1,
    }


def test_flask_responses_are_unchanged(registry):
    plain = Flask("plain")
    wrapped = Flask("plain")
    wrapped.wsgi_app = RedMiddleware(wrapped, registry=registry)
    for app in (plain, wrapped):

        @app.route("/x/<int:n>")
        def x(n):
            return {"n": n}, 201, {"X-Custom": "yes"}

    for path in ("/x/1", "/x/abc", "/missing"):
        assert call(wrapped, path) == call(plain, path)


# --- Over real HTTP: the test app under gunicorn -----------------------------------------


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with serve(gunicorn("tests.apps.flask_app:app", port, "-w", "1", "--threads", "4"), port):
        yield port


def test_real_http_traffic_is_counted_by_template(server):
    before = counts_by(scrape(server).text, "per", "status", "method")
    for n in range(10):
        assert get(server, f"/name/{n}").status_code == 200
    for n in (1, 22, 333):
        assert get(server, f"/item/{n}").json() == {"id": n}
    get(server, "/files/a/b/c.txt")
    get(server, "/api/v1/users/7d3f0c1e-9b6a-4c4b-8f1e-2a2b3c4d5e6f/orders/9")
    assert get(server, "/no/such/route").status_code == 404
    assert get(server, "/item/5", "DELETE").status_code == 405
    assert get(server, "/boom").status_code == 500
    expected = {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/files/{subpath}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/boom", "500", "GET"): 1,
    }

    def delta_matches() -> None:
        after = counts_by(scrape(server).text, "per", "status", "method")
        delta = increase(before, after)
        assert delta == expected

    eventually(delta_matches)


def test_real_http_labels_and_formats(server):
    get(server, "/name/x")
    response = scrape(server)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    labels = next(dict(k) for k in parse(response.text) if dict(k).get("per") == "/name/{name}")
    assert labels["program"] == "shop"
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
    get(server, "/slow/120")
    get(server, "/stream/4")  # 4 chunks, 50 ms apart

    def sums_cover_the_work() -> None:
        samples = parse(scrape(server).text)
        sums = {
            dict(k)["per"]: v for k, v in samples.items() if dict(k)["__name__"] == f"{METRIC}_sum"
        }
        assert sums.get("/slow/{ms}", 0) >= 120
        assert sums.get("/stream/{chunks}", 0) >= 200

    eventually(sums_cover_the_work)


def test_dedicated_metrics_port_from_environment():
    port, metrics_port = free_port(), free_port()
    command = gunicorn("tests.apps.flask_app:app", port, "-w", "1")
    with serve(
        command,
        port,
        env={"LAST9_METRICS_PORT": str(metrics_port), "LAST9_METRICS_ADDR": "127.0.0.1"},
    ):
        get(port, "/name/z")

        def counted() -> None:
            assert counts_by(scrape(metrics_port).text, "per") == {("/name/{name}",): 1}

        eventually(counted)
        assert requests.get(f"http://127.0.0.1:{metrics_port}/other", timeout=5).status_code == 404


def test_a_protected_metrics_path_needs_the_credentials(registry):
    app = Flask("guarded")
    app.wsgi_app = RedMiddleware(app, registry=registry, **BASIC)
    reached = []

    @app.route("/name/<name>")
    def name(name):
        reached.append(name)
        return name

    call(app, "/name/a")
    body = assert_only_the_right_credentials_scrape(wsgi_scraper(app))
    assert reached == ["a"]
    assert counts_by(body, "per") == {("/name/{name}",): 1}


def test_a_protected_metrics_path_under_gunicorn():
    port = free_port()
    with serve(gunicorn("tests.apps.flask_app:app", port, "-w", "1"), port, env=BASIC_ENV):
        get(port, "/name/z")
        body = assert_only_the_right_credentials_scrape(http_scraper(port))
    # Refused scrapes are not the app's traffic: no series for them.
    assert counts_by(body, "per") == {("/name/{name}",): 1}


def test_a_flask_view_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    app = Flask("shadowed")

    @app.route("/metrics")
    def own_metrics():
        return "the app's own"

    with caplog.at_level("WARNING", logger="last9"):
        RedMiddleware(app, registry=registry)
        RedMiddleware(app, registry=registry, metrics_path="/_last9")
    (record,) = caplog.records
    assert "'/metrics' (own_metrics)" in record.getMessage()
    assert "LAST9_METRICS_PATH" in record.getMessage()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            lambda port: [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "tests.apps.flask_app",
                "run",
                "--debug",
                "--port",
                str(port),
            ],
            id="flask-run-debug",
        ),
        pytest.param(
            lambda port: [sys.executable, "-m", "tests.apps.flask_debug_run", str(port)],
            id="app-run-debug",
        ),
    ],
)
def test_the_debug_reloader_and_a_metrics_port(command):
    """The reloader's parent only watches files: the child that serves holds the metrics port,
    so the app answers and the port shows the child's requests."""
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LAST9_METRICS_PORT": str(metrics_port),
        "LAST9_METRICS_ADDR": "127.0.0.1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            # Its own session: the reloader's child is stopped with its parent.
            process = subprocess.Popen(
                command(port), cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
            )
        try:
            wait_for_port(port, process, log)
            assert get(port, "/name/x").status_code == 200, log.read_text()

            def counted() -> None:
                assert counts_by(scrape(metrics_port).text, "per") == {("/name/{name}",): 1}

            eventually(counted)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
