"""Control what is measured: the kill switch and exclusions, in-process and under pre-fork
servers (gunicorn -w 2, uvicorn --workers 2) over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask

import conftest
import last9
from conftest import ROOT, counts_by, free_port, parse, scrape
from last9 import config
from last9.wsgi.middleware import RedMiddleware
from test_prefork import running, settle
from wsgi_helpers import call

EXCLUDE = "/healthz,/static/{path},^/internal/.*,OPTIONS"


# The kill switch ------------------------------------------------------------------------------


def test_disabled_every_entry_point_returns_the_app_and_starts_nothing(tmp_path):
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "LAST9_DISABLED": "1",
        "LAST9_METRICS_PORT": str(free_port()),
        "LAST9_METRICS_ADDR": "127.0.0.1",
        "LAST9_MULTIPROC_DIR": str(tmp_path / "store"),
        "LAST9_REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",
        "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
    }
    done = subprocess.run(
        [sys.executable, "tests/apps/disabled_check.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unchanged"


def test_enabled_false_returns_the_app_itself(registry):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    assert RedMiddleware(app, enabled=False, registry=registry) is app
    flask_app = Flask("off")
    wsgi_app = flask_app.wsgi_app
    flask_app.wsgi_app = RedMiddleware(flask_app, enabled=False, registry=registry)
    assert flask_app.wsgi_app == wsgi_app
    assert registry.render() == last9.Registry().render()


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_the_variable_switches_off(value):
    assert not config.enabled(environ={"LAST9_DISABLED": value})


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_the_variable_leaves_on(value):
    assert config.enabled(environ={"LAST9_DISABLED": value})


def test_the_keyword_wins_over_the_variable():
    assert config.enabled(True, environ={"LAST9_DISABLED": "1"})
    assert not config.enabled(False, environ={})


def test_a_bad_switch_names_the_setting():
    with pytest.raises(last9.MetricsError, match="LAST9_DISABLED"):
        config.enabled(environ={"LAST9_DISABLED": "maybe"})
    with pytest.raises(last9.MetricsError, match="enabled"):
        config.enabled(3, environ={})  # type: ignore[arg-type]
    # Pyramid's .ini settings are strings: read as the variable is.
    assert not config.enabled("false", environ={})  # type: ignore[arg-type]
    with pytest.raises(last9.MetricsError, match="enabled"):
        config.enabled("maybe", environ={})  # type: ignore[arg-type]


# Exclusions, in-process -----------------------------------------------------------------------


def flask_app(registry: last9.Registry, **options: object) -> Flask:
    app = Flask("control", static_folder=None)
    app.add_url_rule("/name/<name>", "hello", lambda name: name)
    app.add_url_rule("/healthz", "healthz", lambda: "ok")
    app.add_url_rule("/static/<path:filename>", "asset", lambda filename: filename)
    app.add_url_rule("/internal/<what>", "internal", lambda what: what)

    @last9.exclude
    def ping() -> str:
        return "pong"

    app.add_url_rule("/ping", "ping", ping)
    app.wsgi_app = RedMiddleware(app, registry=registry, **options)
    return app


def only_the_recorded_routes(text: bytes) -> set[tuple[str, str]]:
    """(family, per) of every sample."""
    return {(dict(key)["__name__"], dict(key).get("per", "")) for key in parse(text)}


def test_excluded_requests_leave_no_trace(registry):
    app = flask_app(registry, exclude=EXCLUDE.split(","))
    for path in ("/healthz", "/static/css/site.css", "/internal/x", "/ping", "/name/a"):
        assert call(app, path)[0] == "200 OK"
    assert call(app, "/name/a", method="OPTIONS")[0] == "200 OK"
    text = registry.render()
    assert counts_by(text, "per", "method") == {("/name/{name}", "GET"): 1}
    pers = {per for _, per in only_the_recorded_routes(text)}
    assert pers <= {"/name/{name}", "/_all", ""}, pers
    assert b'method="OPTIONS"' not in text


def test_requests_excluded_on_entry_are_never_in_flight(registry):
    seen: list[bytes] = []

    def app(environ, start_response):
        seen.append(registry.render())
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = RedMiddleware(app, registry=registry, exclude=["/healthz", "^/internal/"])
    call(wrapped, "/healthz")
    call(wrapped, "/internal/x")
    assert all(b"http_requests_in_flight{" not in text for text in seen), seen
    call(wrapped, "/other")
    assert b"http_requests_in_flight{" in seen[-1]


def test_the_variable_excludes(registry, monkeypatch):
    monkeypatch.setenv("LAST9_EXCLUDE", "/healthz, OPTIONS")
    app = flask_app(registry)
    call(app, "/healthz")
    call(app, "/name/a", method="OPTIONS")
    call(app, "/name/a")
    assert counts_by(registry.render(), "per", "method") == {("/name/{name}", "GET"): 1}


def test_opentelemetry_excluded_urls_are_honoured(registry, monkeypatch):
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "internal")
    monkeypatch.setenv("OTEL_PYTHON_FLASK_EXCLUDED_URLS", "healthz,static/.*")
    app = flask_app(registry)
    for path in ("/healthz", "/static/a.css", "/internal/x", "/name/a"):
        call(app, path)
    # The framework's own variable wins over the general one, as in OpenTelemetry.
    assert counts_by(registry.render(), "per") == {("/name/{name}",): 1, ("/internal/{what}",): 1}


@pytest.mark.parametrize(
    ("value", "why"),
    [("healthz", "neither"), ("^(", "regular expression"), ("PROPFIND", "method")],
)
def test_a_bad_exclusion_names_the_setting(registry, monkeypatch, value, why):
    monkeypatch.setenv("LAST9_EXCLUDE", value)
    with pytest.raises(last9.MetricsError, match=f"LAST9_EXCLUDE.*{why}"):
        flask_app(registry)


# Exclusions under pre-fork servers --------------------------------------------------------------


def send(port: int, path: str, n: int, method: str = "GET") -> None:
    def one(_: int) -> None:
        response = requests.request(
            method, f"http://127.0.0.1:{port}{path}", timeout=10, headers={"x-last9-caller": "web"}
        )
        assert response.status_code in (200, 405), response.status_code

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(n)))


def uvicorn(port: int) -> list[str]:
    return conftest.uvicorn("tests.apps.control_asgi_app:app", port, "--workers", "2")


def gunicorn(port: int) -> list[str]:
    return conftest.gunicorn("tests.apps.control_app:app", port, "-w", "2")


@pytest.mark.parametrize("server", [gunicorn, uvicorn], ids=["gunicorn", "uvicorn"])
def test_excluded_routes_never_appear_under_a_prefork_server(server: Callable[[int], list[str]]):
    port = free_port()
    env = {"LAST9_EXCLUDE": EXCLUDE, "LAST9_INSTRUMENT_HTTP_CLIENTS": "1"}
    with running(server(port), port, env):
        for path in ("/healthz", "/static/css/site.css", "/internal/x", "/ping"):
            send(port, path, 40)
        send(port, "/name/x", 40, method="OPTIONS")
        send(port, "/name/x", 100)
        settle(port, 100)
        text = scrape(port).text
        assert counts_by(text, "per", "method") == {("/name/{name}", "GET"): 100}
        pers = {per for _, per in only_the_recorded_routes(text.encode())}
        assert pers <= {"/name/{name}", "/_all", ""}, pers
        assert 'method="OPTIONS"' not in text
        callers = {
            key for key in parse(text) if dict(key)["__name__"] == "http_requests_callers_total"
        }
        assert {dict(key)["per"] for key in callers} == {"/name/{name}"}


# Constant labels ------------------------------------------------------------------------------


def families_and_labels(text: str | bytes) -> dict[str, set[tuple[str, str]]]:
    """The label pairs every sample of each family has in common."""
    common: dict[str, set[tuple[str, str]]] = {}
    for key in parse(text):
        pairs = dict(key)
        name = pairs.pop("__name__")
        if name.startswith("last9_"):
            continue  # last9's own health, process-wide: no app's labels
        common.setdefault(name, set(pairs.items()))
        common[name] &= set(pairs.items())
    return common


def test_constant_labels_are_on_every_family_after_the_seeds(registry):
    app = flask_app(registry, labels={"env": "prod", "version": "1.4.2"})
    call(app, "/name/a")
    text = registry.render()
    assert 'cluster="",env="prod",version="1.4.2"}' in text.decode()
    for openmetrics in (False, True):
        families = families_and_labels(registry.render(openmetrics=openmetrics))
        assert {"http_requests_duration_milliseconds_count", "http_requests_in_flight"} <= set(
            families
        )
        for name, labels in families.items():
            assert {("env", "prod"), ("version", "1.4.2")} <= labels, name


def test_the_variable_gives_constant_labels(registry, monkeypatch):
    monkeypatch.setenv("LAST9_LABELS", "env=prod, version=1.4.2")
    call(flask_app(registry), "/name/a")
    (labels,) = [
        dict(k) for k in parse(registry.render()) if dict(k)["__name__"].endswith("_count")
    ]
    assert (labels["env"], labels["version"]) == ("prod", "1.4.2")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("env", "name=value"),
        ("per=x", "sets itself"),
        ("9x=1", "not a Prometheus label name"),
        ("__x=1", "not a Prometheus label name"),
        ("a=1,a=2", "twice"),
    ],
)
def test_bad_labels_name_the_setting(registry, monkeypatch, value, why):
    monkeypatch.setenv("LAST9_LABELS", value)
    with pytest.raises(last9.MetricsError, match=f"LAST9_LABELS.*{why}"):
        flask_app(registry)


def test_opentelemetry_resource_settings_are_fallbacks():
    env = {
        "OTEL_SERVICE_NAME": "checkout",
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=acme,k8s.cluster.name=prod%2Deu,bad",
    }
    settings = config.resolve(environ=env)
    assert (settings.program, settings.tenant, settings.cluster) == ("checkout", "acme", "prod-eu")
    env["LAST9_PROGRAM"], env["LAST9_CLUSTER"] = "shop", "eu"
    settings = config.resolve(environ=env)
    assert (settings.program, settings.cluster) == ("shop", "eu")


#: Families of the process rather than of the app (runtime metrics): an app's constant labels are
#: not theirs, as prometheus_client's process collector takes none.
PROCESS_FAMILIES = ("process_", "python_", "last9_info", "last9_worker_")


def test_constant_labels_reach_prefork_scrapes_and_pushes(tmp_path):
    from test_prometheus import free_ports, prometheus, pushed_samples

    app_port, prom_port = free_ports(2)
    with prometheus(tmp_path, prom_port) as prom:
        env = {
            "LAST9_LABELS": "env=prod,version=1.4.2",
            "LAST9_REMOTE_WRITE_URL": prom.write_url,
            "LAST9_REMOTE_WRITE_INTERVAL": "1",
            "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
        }
        with running(gunicorn(app_port), app_port, env):
            send(app_port, "/name/x", 20)
            settle(app_port, 20)
            for accept in ("text/plain", "application/openmetrics-text"):
                text = scrape(app_port, Accept=accept).text
                families = families_and_labels(text)
                assert "http_requests_callers_total" in families
                for name, labels in families.items():
                    if name.startswith(PROCESS_FAMILIES):
                        continue  # the process's own families: labelled by worker slot only
                    assert {("env", "prod"), ("version", "1.4.2")} <= labels, (name, accept)

            # Scrapes are requests too (per="/metrics"): compare the load's series only, without
            # the empty labels (tenant, cluster) that Prometheus does not store.
            def of_the_load(samples: dict) -> dict:
                return {
                    tuple(pair for pair in key if pair[1]): value
                    for key, value in samples.items()
                    if dict(key)["__name__"].startswith("http_requests_duration_milliseconds_")
                    and dict(key)["per"] == "/name/{name}"
                }

            exposed = of_the_load(parse(scrape(app_port).text))
            pushed = lambda: of_the_load(pushed_samples(prom, "control"))  # noqa: E731
            deadline = time.monotonic() + 30
            while pushed() != exposed and time.monotonic() < deadline:
                time.sleep(0.2)
            assert pushed() == exposed
            assert all(("env", "prod") in key for key in exposed)


# A label from a request header ----------------------------------------------------------------


def tiers(text: bytes) -> dict[str, float]:
    return {tier: n for (tier,), n in counts_by(text, "tier").items()}


def test_a_header_label_past_its_cap_counts_under_overflow(registry):
    app = flask_app(registry, header_label="tier=X-Customer-Tier", header_label_max=2)
    call(app, "/name/a")
    for tier in ("free", "pro", "gold"):
        for _ in range(5):
            call(app, "/name/a", HTTP_X_CUSTOMER_TIER=tier)
    counts = tiers(registry.render())
    # No header: the empty value. Values from requests are admitted as `domain`'s are (see the
    # caps): on their third request, while the cap has room; "gold" comes after two took it.
    assert counts == {"": 1, "free": 3, "pro": 3, "_other": 2 + 2 + 5}


def test_a_header_label_allow_list_admits_only_its_values(registry, monkeypatch):
    monkeypatch.setenv("LAST9_HEADER_LABEL", "tier=X-Customer-Tier")
    monkeypatch.setenv("LAST9_HEADER_LABEL_VALUES", "free,pro")
    app = flask_app(registry)
    for tier in ("free", "gold", "gold", "gold", "pro"):
        call(app, "/name/a", HTTP_X_CUSTOMER_TIER=tier)
    assert tiers(registry.render()) == {"free": 1, "pro": 1, "_other": 3}


def test_a_header_label_under_asgi(registry):
    import asyncio

    from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = AsgiRedMiddleware(
        app, registry=registry, header_label=("tier", "X-Tier"), header_label_values=["free", "pro"]
    )

    async def one(tier: bytes | None) -> None:
        headers = [(b"x-tier", tier)] if tier is not None else []
        scope = {"type": "http", "method": "GET", "path": "/", "headers": headers}

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            pass

        await wrapped(scope, receive, send)

    for tier in (b"free", b"pro", None):
        asyncio.run(one(tier))
    assert tiers(registry.render()) == {"free": 1, "pro": 1, "": 1}


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"LAST9_HEADER_LABEL": "tier"}, "LAST9_HEADER_LABEL must be label=Header-Name"),
        ({"LAST9_HEADER_LABEL": "per=X-Per"}, "LAST9_HEADER_LABEL: 'per'"),
        ({"LAST9_HEADER_LABEL": "tier=X Tier"}, "not an HTTP header name"),
        ({"LAST9_HEADER_LABEL_VALUES": "a"}, "needs LAST9_HEADER_LABEL"),
        ({"LAST9_HEADER_LABEL": "t=X", "LAST9_HEADER_LABEL_MAX": "0"}, "LAST9_HEADER_LABEL_MAX"),
    ],
)
def test_a_bad_header_label_names_the_setting(env, why):
    with pytest.raises(last9.MetricsError, match=why):
        config.resolve(environ=env)


# Status classes -------------------------------------------------------------------------------


def test_status_can_be_grouped_in_classes(registry, monkeypatch):
    monkeypatch.setenv("LAST9_GROUP_STATUS", "1")
    app = flask_app(registry)
    call(app, "/name/a")
    call(app, "/name/a")
    call(app, "/nowhere")
    call(app, "/name/a", method="POST")  # 405
    assert counts_by(registry.render(), "per", "status") == {
        ("/name/{name}", "2xx"): 2,
        ("/unmatched", "4xx"): 1,
        ("/name/{name}", "4xx"): 1,
    }


def test_a_bad_grouping_names_the_setting():
    with pytest.raises(last9.MetricsError, match="LAST9_GROUP_STATUS"):
        config.resolve(environ={"LAST9_GROUP_STATUS": "sometimes"})


# Exclusions and @last9.exclude in every framework's own hook ----------------------------------

#: Requests each app gets: only the first is recorded.
PATHS = ("/name/a", "/healthz", "/static/css/site.css", "/internal/x", "/ping")


def assert_only_name_recorded(text: bytes, per: str = "/name/{name}") -> None:
    assert counts_by(text, "per", "method") == {(per, "GET"): 1}, counts_by(text, "per", "method")


def test_pyramid_tween_excludes(monkeypatch):
    from pyramid.config import Configurator
    from pyramid.response import Response

    monkeypatch.setenv("LAST9_EXCLUDE", EXCLUDE)

    @last9.exclude
    def ping(request):
        return Response("pong")

    config = Configurator(settings={"last9.program": "pyramid-control"})
    for name, pattern in (
        ("name", "/name/{name}"),
        ("healthz", "/healthz"),
        ("static", "/static/{path:.*}"),
        ("internal", "/internal/{what}"),
        ("ping", "/ping"),
    ):
        config.add_route(name, pattern)
        config.add_view(ping if name == "ping" else lambda r: Response("ok"), route_name=name)
    config.include("last9.pyramid")
    app = config.make_wsgi_app()
    for path in PATHS:
        assert call(app, path)[0] == "200 OK", path
    call(app, "/name/a", method="OPTIONS")
    text = last9.REGISTRY.render()
    counts = counts_by(text, "per", "method", program="pyramid-control")
    assert counts == {("/name/{name}", "GET"): 1}, counts


def test_pyramid_settings_switch_the_tween_off():
    from pyramid.config import Configurator
    from pyramid.interfaces import ITweens

    config = Configurator(settings={"last9.enabled": "false"})
    config.include("last9.pyramid")
    config.commit()
    tweens = config.registry.queryUtility(ITweens)
    assert not any("last9" in name for name, _ in tweens.implicit())


def test_bottle_plugin_excludes(registry):
    import bottle

    import last9.bottle

    app = bottle.Bottle()
    app.route("/name/<name>", callback=lambda name: name)
    app.route("/healthz", callback=lambda: "ok")
    app.route("/static/<path:path>", callback=lambda path: path)
    app.route("/internal/<what>", callback=lambda what: what)
    app.route("/ping", callback=last9.exclude(lambda: "pong"))
    app.install(last9.bottle.Plugin(registry=registry, exclude=EXCLUDE))
    for path in PATHS:
        assert call(app, path)[0] == "200 OK", path
    assert_only_name_recorded(registry.render())


@pytest.mark.parametrize("hook", ["component", "RedMiddleware"])
def test_falcon_excludes(registry, hook):
    import falcon

    import last9.falcon

    class Text:
        def on_get(self, req, resp, **params):
            resp.text = "ok"

    @last9.exclude
    class Ping(Text):
        pass

    middleware = [last9.falcon.Middleware(registry=registry, exclude=EXCLUDE)]
    app = falcon.App(middleware=middleware if hook == "component" else [])
    app.add_route("/name/{name}", Text())
    app.add_route("/healthz", Text())
    app.add_route("/static/{path}", Text())  # one segment: Falcon has no catch-all field
    app.add_route("/internal/{what}", Text())
    app.add_route("/ping", Ping())
    if hook == "RedMiddleware":
        app = RedMiddleware(app, registry=registry, exclude=EXCLUDE)
    paths = [*PATHS[:2], "/static/site.css", *PATHS[3:]]
    if hook == "component":
        paths.remove("/ping")  # a component cannot see the app's router: no per-view marker
    for path in paths:
        assert call(app, path)[0] == "200 OK", path
    assert_only_name_recorded(registry.render())


def test_starlette_excludes(registry):
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware

    async def text(request):
        return PlainTextResponse("ok")

    routes = [
        Route("/name/{name}", text),
        Route("/healthz", text),
        Route("/static/{path:path}", text),
        Route("/internal/{what}", text),
        Route("/ping", _marked_copy(text)),
    ]
    app = AsgiRedMiddleware(Starlette(routes=routes), registry=registry, exclude=EXCLUDE)

    async def get(path: str) -> int:
        sent: list[dict] = []
        scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"example.com")],
        }

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)
        return sent[0]["status"]

    for path in PATHS:
        assert asyncio.run(get(path)) == 200, path
    assert_only_name_recorded(registry.render())


def _marked_copy(view):
    """A distinct endpoint carrying the marker (the shared `text` must stay unmarked)."""

    async def ping(request):
        return await view(request)

    return last9.exclude(ping)


def test_tornado_instrument_excludes(registry):
    import tornado.web
    from test_tornado import fetch_all

    import last9.tornado

    class Text(tornado.web.RequestHandler):
        def get(self, *args: str, **kwargs: str) -> None:
            self.write("ok")

    @last9.exclude
    class Ping(Text):
        pass

    app = tornado.web.Application(
        [
            (r"/name/(?P<name>[^/]+)", Text),
            (r"/healthz", Text),
            (r"/static/(?P<path>.*)", Text),
            (r"/internal/(?P<what>[^/]+)", Text),
            (r"/ping", Ping),
        ]
    )
    last9.tornado.instrument(app, registry=registry, exclude=EXCLUDE)
    assert [r.code for r in fetch_all(app, PATHS)] == [200] * len(PATHS)
    assert_only_name_recorded(registry.render())


# OpenTelemetry's names: LAST9_SEMCONV ---------------------------------------------------------

OTEL_LE = ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1"]
OTEL_LE += ["2.5", "5", "7.5", "10", "+Inf"]


def semconv_registry(mode: str) -> last9.Registry:
    registry = last9.Registry()
    app = flask_app(registry, semconv=mode, labels={"env": "prod"})
    for path in ("/name/a", "/name/b", "/nowhere"):
        call(app, path)
    recorder = app.wsgi_app.recorder
    recorder.enter("PUT")  # one request in flight
    recorder.observe_client("/name/{name}", "api:8080", "GET", "503", 40_000_000)
    recorder.observe_client("/name/{name}", "api:8080", "GET", "timeout", 2_000_000_000)
    return registry


def test_dup_gives_equal_counts_in_both_namings():
    from test_exposition import promtool_findings

    try:
        text = semconv_registry("dup").render()
        openmetrics = semconv_registry("dup").render(openmetrics=True)
    finally:
        config_default = last9.Registry()
        flask_app(config_default)  # back to the seed's names for the tests after this one
    samples = parse(text)
    seed = counts_by(text, "per", "status")
    otel: dict[tuple[str, str], float] = {}
    for key, value in samples.items():
        pairs = dict(key)
        if pairs["__name__"] == "http_server_request_duration_seconds_count":
            otel[(pairs["http_route"], pairs["http_response_status_code"])] = value
            assert pairs["env"] == "prod" and "server_address" in pairs
    assert otel == seed == {("/name/{name}", "200"): 2, ("/unmatched", "404"): 1}
    les = [
        dict(key)["le"]
        for key in samples
        if dict(key)["__name__"] == "http_server_request_duration_seconds_bucket"
        and dict(key)["http_route"] == "/unmatched"
    ]
    assert les == OTEL_LE
    active = {
        (dict(k)["http_request_method"], "per" in dict(k)): v
        for k, v in samples.items()
        if dict(k)["__name__"] == "http_server_active_requests"
    }
    assert active == {("GET", False): 0, ("PUT", False): 1}
    client = {
        (dict(k).get("http_response_status_code"), dict(k).get("error_type")): v
        for k, v in samples.items()
        if dict(k)["__name__"] == "http_client_request_duration_seconds_count"
    }
    assert client == {("503", "503"): 1, (None, "timeout"): 1}
    # promtool: the seconds families pass clean; only the seed's milliseconds get its advice.
    findings = promtool_findings(text)
    assert all('base unit "seconds"' in line for line in findings), findings
    assert not any("_seconds" in line.split()[0] or "http_server" in line for line in findings)
    assert b"# UNIT http_server_request_duration_seconds seconds" in openmetrics
    assert b'http_server_request_duration_seconds_bucket{http_route="/unmatched"' in openmetrics


def test_otel_alone_gives_only_opentelemetry_families():
    from test_exposition import promtool_findings

    try:
        text = semconv_registry("otel").render()
    finally:
        flask_app(last9.Registry())
    names = {dict(key)["__name__"] for key in parse(text)}
    assert not any(name.startswith("http_requests_duration") for name in names), names
    assert "http_server_request_duration_seconds_count" in names
    assert promtool_findings(text) == []


def test_a_bad_semconv_names_the_setting():
    with pytest.raises(last9.MetricsError, match="LAST9_SEMCONV"):
        config.resolve(environ={"LAST9_SEMCONV": "both"})
