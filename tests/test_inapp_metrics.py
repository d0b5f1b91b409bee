"""The app's own metrics path, whatever the entry point: a scrape never holds up the app's other
requests, credentials are checked before anything reaches the app, and a path that hides one of
the app's routes is reported at start-up."""

from __future__ import annotations

import sys
import threading
import time

import pytest
import requests
from auth_helpers import BEARER_ENV, assert_only_the_right_credentials_scrape, http_scraper

from conftest import counts_by, free_port, gunicorn, serve

BIG = "tests.apps.big_registry"


def ping_is_answered_while_scraping(port: int, rounds: int = 5) -> list[list[str]]:
    """Starts a scrape, then (once the scrape has reached the server) asks for /ping on another
    connection; returns, per round, the order in which the answers began."""
    base = f"http://127.0.0.1:{port}"
    orders = []
    for _ in range(rounds):
        order: list[str] = []

        def scrape(order: list[str] = order) -> None:
            headers = {"Accept-Encoding": "gzip"}
            with requests.get(f"{base}/metrics", headers=headers, stream=True, timeout=60) as r:
                order.append("scrape")
                r.raw.read()

        scraper = threading.Thread(target=scrape)
        scraper.start()
        time.sleep(0.02)  # lets the scrape reach the server first; its render takes far longer
        assert requests.get(f"{base}/ping", timeout=60).text == "pong"
        order.append("ping")
        scraper.join()
        orders.append(order)
    return orders


def assert_big_registry(port: int) -> None:
    """The scrape is slow by series count: the app really holds 10,000 series."""
    response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60)
    assert response.content.count(b"_count{") >= 10_000


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(
            lambda port: [sys.executable, "-m", "uvicorn", "--port", str(port), f"{BIG}:asgi_app"],
            id="uvicorn",
        ),
        pytest.param(lambda port: [sys.executable, "-m", BIG, str(port)], id="tornado"),
        pytest.param(
            lambda port: gunicorn(f"{BIG}:wsgi_app", port, "-k", "gthread", "--threads", "4"),
            id="gunicorn-threads",
        ),
    ],
)
def test_a_scrape_does_not_hold_up_other_requests(server):
    port = free_port()
    with serve(server(port), port):
        assert_big_registry(port)
        orders = ping_is_answered_while_scraping(port)
    assert orders == [["ping", "scrape"]] * len(orders)


def test_a_protected_metrics_path_under_uvicorn():
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "tests.apps.asgi_app:app"]
    with serve(command, port, env=BEARER_ENV):
        assert requests.get(f"http://127.0.0.1:{port}/x", timeout=10).text == "ok"
        body = assert_only_the_right_credentials_scrape(http_scraper(port), "Bearer")
    # Refused scrapes neither reached the app nor were counted as its traffic.
    assert counts_by(body, "per") == {("/x",): 1}
