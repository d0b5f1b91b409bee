"""A label the app sets while serving a request (``last9.set_label``, ``request_labels``):
bounded by its allow-list or cap, in-process and under gunicorn -w 2 and uvicorn --workers 2,
in Flask, FastAPI (async and sync endpoints) and Django (WSGI and ASGI)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask

import last9
from conftest import counts_by, free_port, scrape
from last9 import config
from last9.labels import CURRENT
from last9.wsgi.middleware import RedMiddleware
from test_prefork import running, settle
from wsgi_helpers import call


def tiers(text: str | bytes, **where: str) -> dict[str, float]:
    return {tier: n for (tier,), n in counts_by(text, "tier", **where).items()}


def flask_app(registry: last9.Registry, **options: object) -> Flask:
    app = Flask("labels", static_folder=None)

    @app.route("/order/<tier>")
    def order(tier: str) -> str:
        if tier != "none":
            last9.set_label("tier", tier)
        return "ok"

    app.wsgi_app = RedMiddleware(app, registry=registry, **options)
    return app


# In-process ------------------------------------------------------------------------------------


def test_values_off_the_allow_list_count_as_overflow(registry):
    app = flask_app(registry, request_labels={"tier": ["free", "gold"]})
    for tier in ("free", "gold", "gold", "platinum", "none"):
        assert call(app, f"/order/{tier}")[0] == "200 OK"
    assert tiers(registry.render()) == {"free": 1, "gold": 2, "_other": 1, "": 1}


def test_values_past_the_cap_count_as_overflow(registry, monkeypatch):
    monkeypatch.setenv("LAST9_REQUEST_LABELS", "tier=2")
    app = flask_app(registry)
    for tier in ("a", "b", "c", "d"):
        for _ in range(5):
            call(app, f"/order/{tier}")
    counts = tiers(registry.render())
    # Admitted as header labels' values are: on their third request, while the cap has room.
    assert counts == {"a": 3, "b": 3, "_other": 2 + 2 + 5 + 5}
    assert len(counts_by(registry.render(), "tier")) == 3  # two values and the overflow


def test_the_variable_gives_an_allow_list(registry, monkeypatch):
    monkeypatch.setenv("LAST9_REQUEST_LABELS", "tier=free|gold")
    app = flask_app(registry)
    for tier in ("free", "silver"):
        call(app, f"/order/{tier}")
    assert tiers(registry.render()) == {"free": 1, "_other": 1}


def test_a_request_never_sees_the_previous_requests_label(registry):
    app = flask_app(registry, request_labels={"tier": ["free", "gold"]})
    call(app, "/order/gold")
    call(app, "/order/none")  # same thread, same context: a fresh holder
    assert tiers(registry.render()) == {"gold": 1, "": 1}


def test_set_label_outside_a_request_does_nothing():
    def outside() -> None:
        assert CURRENT.get(None) is None
        last9.set_label("tier", "gold")  # no request: nothing to label, nothing raised

    contextvars.Context().run(outside)


def test_an_undeclared_name_is_ignored_with_one_warning(registry, caplog):
    app = Flask("labels", static_folder=None)

    @app.route("/")
    def index() -> str:
        last9.set_label("region", "eu")
        last9.set_label("tier", "gold")
        return "ok"

    app.wsgi_app = RedMiddleware(app, registry=registry, request_labels={"tier": ["gold"]})
    with caplog.at_level(logging.WARNING, logger="last9"):
        for _ in range(3):
            assert call(app, "/")[0] == "200 OK"
    warnings = [r for r in caplog.records if "set_label('region'" in r.getMessage()]
    assert len(warnings) == 1
    assert tiers(registry.render()) == {"gold": 3}


def test_without_the_setting_no_label_and_no_holder(registry):
    seen = []

    def app(environ, start_response):
        seen.append((CURRENT.get(None), "last9.request_label" in environ))
        last9.set_label("tier", "gold")
        start_response("200 OK", [])
        return [b"ok"]

    # A thread whose context never held a request's holder.
    contextvars.Context().run(call, RedMiddleware(app, registry=registry), "/")
    assert seen == [(None, False)]
    assert b"tier=" not in registry.render()


def test_an_asgi_app_sets_the_label(registry):
    from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware

    async def app(scope, receive, send):
        tier = scope["path"].strip("/")
        if tier != "none":
            # From a thread with a copy of the context, as Starlette runs sync endpoints.
            await asyncio.to_thread(last9.set_label, "tier", tier)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = AsgiRedMiddleware(app, registry=registry, request_labels={"tier": ["free", "gold"]})

    async def one(tier: str) -> None:
        scope = {"type": "http", "method": "GET", "path": f"/{tier}", "headers": []}

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            pass

        await wrapped(scope, receive, send)

    for tier in ("free", "gold", "silver", "none"):
        asyncio.run(one(tier))
    assert tiers(registry.render()) == {"free": 1, "gold": 1, "_other": 1, "": 1}


def test_pyramid_views_set_the_label_through_the_tween():
    from pyramid.config import Configurator
    from pyramid.response import Response

    def order(request):
        last9.set_label("tier", request.matchdict["tier"])
        return Response("ok")

    settings = {"last9.program": "pyramid-labels", "last9.request_labels": "tier=free|gold"}
    config = Configurator(settings=settings)
    config.add_route("order", "/order/{tier}")
    config.add_view(order, route_name="order")
    config.include("last9.pyramid")
    app = config.make_wsgi_app()
    for tier in ("gold", "free", "iron"):
        assert call(app, f"/order/{tier}")[0] == "200 OK"
    counts = tiers(last9.REGISTRY.render(), program="pyramid-labels")
    assert counts == {"gold": 1, "free": 1, "_other": 1}


def test_falcon_responders_set_the_label_through_the_component(registry):
    import falcon

    from last9.falcon import Middleware

    class Order:
        def on_get(self, req, resp, tier):
            last9.set_label("tier", tier)
            resp.text = "ok"

    app = falcon.App(middleware=[Middleware(registry=registry, request_labels={"tier": 2})])
    app.add_route("/order/{tier}", Order())
    for tier in ("gold",) * 3 + ("free",) * 3 + ("iron",) * 3:
        assert call(app, f"/order/{tier}")[0] == "200 OK"
    # A cap of 2: values are admitted on their third request, as header labels' are.
    assert tiers(registry.render()) == {"gold": 1, "free": 1, "_other": 7}


def test_falcon_asgi_responders_set_the_label_through_the_component(registry):
    import falcon.asgi

    from last9.falcon import Middleware
    from traffic import requests_to

    class Order:
        async def on_get(self, req, resp, tier):
            last9.set_label("tier", tier)
            resp.text = "ok"

    options = {"request_labels": {"tier": ["gold", "free"]}}
    app = falcon.asgi.App(middleware=[Middleware(registry=registry, **options)])
    app.add_route("/order/{tier}", Order())
    assert requests_to(app, "/order/gold", "/order/free", "/order/iron") == [200, 200, 200]
    assert tiers(registry.render()) == {"gold": 1, "free": 1, "_other": 1}


def test_pyramid_and_falcon_hooks_read_a_header_label_too(registry):
    # They record through observe_environ, which reads the header label as RedMiddleware does.
    import falcon
    from pyramid.config import Configurator
    from pyramid.response import Response

    from last9.falcon import Middleware

    class Item:
        def on_get(self, req, resp):
            resp.text = "ok"

    falcon_app = falcon.App(
        middleware=[
            Middleware(
                registry=registry,
                header_label="tier=X-Tier",
                header_label_values=["gold"],
                program="f",
            )
        ]
    )
    falcon_app.add_route("/item", Item())
    settings = {
        "last9.program": "pyramid-header",
        "last9.header_label": "tier=X-Tier",
        "last9.header_label_values": "gold",
    }
    config = Configurator(settings=settings)
    config.add_route("item", "/item")
    config.add_view(lambda request: Response("ok"), route_name="item")
    config.include("last9.pyramid")
    pyramid_app = config.make_wsgi_app()
    for app in (falcon_app, pyramid_app):
        assert call(app, "/item", HTTP_X_TIER="gold")[0] == "200 OK"
        assert call(app, "/item")[0] == "200 OK"
    assert tiers(registry.render(), program="f") == {"gold": 1, "": 1}
    assert tiers(last9.REGISTRY.render(), program="pyramid-header") == {"gold": 1, "": 1}


@pytest.mark.parametrize(
    ("options", "env", "why"),
    [
        ({}, {"LAST9_REQUEST_LABELS": "tier"}, "LAST9_REQUEST_LABELS must be label=value"),
        ({}, {"LAST9_REQUEST_LABELS": "per=a|b"}, "LAST9_REQUEST_LABELS: 'per'"),
        ({}, {"LAST9_REQUEST_LABELS": "tier=0"}, "the cap of 'tier' must be 1 to 1000"),
        ({}, {"LAST9_REQUEST_LABELS": "a=x,b=y"}, "one label, not 2"),
        ({"request_labels": {"tier": "gold"}}, {}, r"request_labels .*list of values or a cap"),
        ({"request_labels": {"tier": []}}, {}, "1 to 1000 non-empty strings"),
        ({"request_labels": ["tier"]}, {}, "must be a dict"),
        (
            {"request_labels": {"tier": 5}, "labels": {"tier": "x"}},
            {},
            "'tier' is a label already set",
        ),
        (
            {"request_labels": {"tier": 5}},
            {"LAST9_HEADER_LABEL": "plan=X-Plan"},
            "cannot both be set",
        ),
    ],
)
def test_a_bad_request_label_names_the_setting(options, env, why):
    with pytest.raises(last9.MetricsError, match=why):
        config.resolve(environ=env, **options)


# Under real servers ----------------------------------------------------------------------------


def send(port: int, paths: list[str]) -> None:
    def one(path: str) -> None:
        response = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, paths))


#: Per request path template: how many requests each tier sends (None: sets no label).
TRAFFIC = {"gold": 30, "free": 20, "platinum": 10, None: 10}
EXPECTED = {"gold": 30, "free": 20, "_other": 10, "": 10}


def traffic(path: str) -> list[str]:
    return [
        path + (f"?tier={tier}" if tier is not None else "")
        for tier, n in TRAFFIC.items()
        for _ in range(n)
    ]


def prefork(kind: str, app: str, port: int) -> list[str]:
    if kind == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", app]
    return [
        *(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "2", "--no-access-log", app),
    ]


SERVERS = {
    "flask-gunicorn": ("gunicorn", "tests.apps.labels_app:app", ["/order/{i}", "/stream/{i}"]),
    "fastapi-uvicorn": (
        "uvicorn",
        "tests.apps.labels_asgi_app:app",
        ["/order/{i}", "/sync/{i}"],
    ),
    "django-gunicorn": ("gunicorn", "tests.apps.labels_django:wsgi", ["/order/{i}"]),
    "django-uvicorn": ("uvicorn", "tests.apps.labels_django:asgi", ["/order/{i}", "/async/{i}"]),
}


@pytest.mark.parametrize("case", SERVERS)
def test_views_set_the_label_under_a_prefork_server(case):
    kind, app, templates = SERVERS[case]
    port = free_port()
    env = {"LAST9_REQUEST_LABELS": "tier=free|gold"} if "django" not in case else {}
    with running(prefork(kind, app, port), port, env) as server:
        for template in templates:
            send(port, traffic(template.replace("{i}", "1")))
        total = sum(TRAFFIC.values()) * len(templates)
        settle(port, total)
        text = scrape(port).text
        for template in templates:
            per = template.replace("{i}", "{item}")
            assert tiers(text, per=per) == EXPECTED, (per, text)
        # Never more series than the configuration states: two values, overflow, unset.
        assert set(counts_by(text, "tier")) == {("gold",), ("free",), ("_other",), ("",)}
        if case == "flask-gunicorn":
            log = server.log.read_text()  # type: ignore[attr-defined]
            # One warning per worker at most for the undeclared name.
            assert 1 <= log.count("set_label('undeclared'") <= 2, log
