"""daphne, a single-process ASGI server (Django Channels'), serving an instrumented Starlette
app over loopback: exact counts, /metrics, and an app with a lifespan that daphne never runs
(it has no lifespan protocol), beside uvicorn, which runs it through the middleware."""

from __future__ import annotations

import sys

import pytest

from conftest import free_port, scrape, serve, uvicorn
from traffic import counted, duration_sum, get

APP = "tests.apps.lifespan_app:app"


def daphne(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]


SERVERS = {"daphne": daphne, "uvicorn": uvicorn}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest):
    port = free_port()
    with serve(SERVERS[request.param](APP, port), port):
        yield request.param, port


def test_requests_are_counted_exactly_and_scrapes_not_at_all(server):
    _, port = server

    def traffic() -> None:
        for n in range(7):
            assert get(port, f"/item/{n}").json() == {"id": n}
        assert get(port, "/item/abc").status_code == 404
        assert get(port, "/boom").status_code == 500
        assert get(port, "/upload", "POST").text == "0"
        assert get(port, "/upload").status_code == 405
        assert get(port, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"

    assert counted(port, traffic) == {
        ("/item/{item_id}", "200", "GET"): 7,
        ("/unmatched", "404", "GET"): 1,
        ("/boom", "500", "GET"): 1,
        ("/upload", "200", "POST"): 1,
        ("/upload", "405", "GET"): 1,
        ("/stream/{chunks}", "200", "GET"): 1,
    }
    assert duration_sum(port, "/stream/{chunks}") >= 150  # timed to the last chunk


def test_metrics_are_served_in_every_format(server):
    _, port = server
    text = scrape(port)
    assert text.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'program="single"' in text.text
    openmetrics = scrape(port, Accept="application/openmetrics-text; version=1.0.0")
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")


def test_the_lifespan_is_the_servers_business(server):
    """uvicorn runs the app's lifespan through the middleware; daphne has no lifespan protocol,
    and the instrumented app serves all the same. Neither adds a series for it."""
    name, port = server
    assert get(port, "/lifespan").json() == ([] if name == "daphne" else ["startup"])
    assert "lifespan" not in scrape(port).text.replace('per="/lifespan"', "")
