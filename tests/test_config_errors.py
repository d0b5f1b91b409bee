"""A setting that cannot work fails when the middleware is made, and the error names it."""

from __future__ import annotations

import re

import pytest

import last9
from last9.asgi.middleware import RedMiddleware as AsgiRedMiddleware
from last9.wsgi.middleware import RedMiddleware
from wsgi_helpers import call


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("5,3", "strictly increasing"),
        ("5,5", "strictly increasing"),
        ("nan", "not finite"),
        ("inf", "finite bucket bound is needed"),
        (",".join(str(n) for n in range(1, 300)), "at most 256"),
        ("1,x", "comma-separated milliseconds"),
        ("5,,10", "comma-separated milliseconds"),
    ],
)
def test_a_bad_LAST9_BUCKETS_names_LAST9_BUCKETS(registry, monkeypatch, value, reason):
    monkeypatch.setenv("LAST9_BUCKETS", value)
    for make in (RedMiddleware, AsgiRedMiddleware):
        app = wsgi_app if make is RedMiddleware else asgi_app
        with pytest.raises(last9.MetricsError) as raised:
            make(app, registry=registry)
        message = str(raised.value)
        assert message.startswith("LAST9_BUCKETS"), message
        assert reason in message
        assert value[:20] in message  # what the user wrote, so they can find it


@pytest.mark.parametrize(
    ("buckets", "reason"),
    [
        ([5, 1], "strictly increasing"),
        ([], "finite bucket bound is needed"),
        (["fast"], "could not convert"),
        ([1, None], "must be a string or a real number"),
        ([float("nan")], "not finite"),
    ],
)
def test_bad_buckets_keyword_names_buckets(registry, buckets, reason):
    with pytest.raises(last9.MetricsError) as raised:
        RedMiddleware(wsgi_app, registry=registry, buckets=buckets)
    message = str(raised.value)
    assert message.startswith("buckets="), message
    assert reason in message


def test_the_keyword_wins_over_a_bad_LAST9_BUCKETS(registry, monkeypatch):
    monkeypatch.setenv("LAST9_BUCKETS", "oops")
    call(RedMiddleware(wsgi_app, registry=registry, buckets=[1, 10]), "/")
    assert 'le="10"' in registry.render().decode()


@pytest.mark.parametrize("name", ["max_routes", "max_domains"])
@pytest.mark.parametrize("value", [0, -1, 2**40, "500", 1.5, True])
def test_bad_caps_name_the_keyword(registry, name, value):
    with pytest.raises(last9.MetricsError, match=rf"^{name} must be"):
        RedMiddleware(wsgi_app, registry=registry, **{name: value})


@pytest.mark.parametrize("name", ["LAST9_MAX_ROUTES", "LAST9_MAX_DOMAINS"])
@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
def test_bad_caps_in_the_environment_name_the_variable(registry, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(last9.MetricsError, match=rf"^{name} must be"):
        RedMiddleware(wsgi_app, registry=registry)


def test_a_bad_metrics_path_names_where_it_came_from(registry, monkeypatch):
    with pytest.raises(last9.MetricsError, match=r"^metrics_path must start with '/'"):
        RedMiddleware(wsgi_app, registry=registry, metrics_path="metrics")
    monkeypatch.setenv("LAST9_METRICS_PATH", "metrics")
    with pytest.raises(last9.MetricsError, match=r"^LAST9_METRICS_PATH must start with '/'"):
        RedMiddleware(wsgi_app, registry=registry)


@pytest.mark.parametrize("value", ["http", "70000", "-1"])
def test_a_bad_LAST9_METRICS_PORT_names_it(registry, monkeypatch, value):
    monkeypatch.setenv("LAST9_METRICS_PORT", value)
    with pytest.raises(last9.MetricsError, match=r"^LAST9_METRICS_PORT must be"):
        RedMiddleware(wsgi_app, registry=registry)


def test_good_settings_still_work(registry, monkeypatch):
    monkeypatch.setenv("LAST9_BUCKETS", "5,10,25")
    monkeypatch.setenv("LAST9_MAX_ROUTES", "7")
    call(RedMiddleware(wsgi_app, registry=registry, max_domains=3), "/")
    les = re.findall(r'le="([^"]+)"', registry.render().decode())
    assert les == ["5", "10", "25", "+Inf"]
