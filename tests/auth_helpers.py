"""Credentials for the protected metrics path, and the check every entry point must pass."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

from conftest import METRIC

USERNAME, PASSWORD, TOKEN = "prom", "s3cret", "tok-123"
#: Keyword arguments (and Django ``LAST9`` keys) that protect the path with basic auth.
BASIC = {"metrics_username": USERNAME, "metrics_password": PASSWORD}
BEARER = {"metrics_bearer_token": TOKEN}
#: The same, as environment variables.
BASIC_ENV = {"LAST9_METRICS_USERNAME": USERNAME, "LAST9_METRICS_PASSWORD": PASSWORD}
BEARER_ENV = {"LAST9_METRICS_BEARER_TOKEN": TOKEN}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


#: (right, wrong) Authorization values for each scheme.
CREDENTIALS = {
    "Basic": (basic(USERNAME, PASSWORD), basic(USERNAME, "guess")),
    "Bearer": (f"Bearer {TOKEN}", "Bearer tok-12"),
}

#: Scrapes the path with an Authorization header (None: without one): (status, headers, body).
Scrape = Callable[[str | None], tuple[int, Mapping[str, str], bytes]]


def assert_only_the_right_credentials_scrape(scrape: Scrape, scheme: str = "Basic") -> bytes:
    """Missing and wrong credentials get 401 with a challenge and no metrics; the right ones get
    the metrics, whose body is returned for the caller to check what was counted."""
    right, wrong = CREDENTIALS[scheme]
    for authorization in (None, wrong, CREDENTIALS["Bearer" if scheme == "Basic" else "Basic"][0]):
        status, headers, body = scrape(authorization)
        assert status == 401, (authorization, status, body)
        challenge = {name.lower(): value for name, value in headers.items()}["www-authenticate"]
        assert challenge.startswith(scheme)
        assert METRIC.encode() not in body
    status, headers, body = scrape(right)
    assert status == 200, body
    assert METRIC.encode() in body
    return body


def wsgi_scraper(app: object, path: str = "/metrics") -> Scrape:
    """Scrapes a WSGI app in-process, as a server would call it."""
    from wsgi_helpers import call

    def scrape(authorization: str | None) -> tuple[int, Mapping[str, str], bytes]:
        extra = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
        status, headers, body = call(app, path, **extra)
        return int(status[:3]), dict(headers), body

    return scrape


def asgi_scraper(app: object, path: str = "/metrics") -> Scrape:
    """Scrapes an ASGI app in-process through httpx's ASGI transport."""
    import asyncio

    import httpx

    def scrape(authorization: str | None) -> tuple[int, Mapping[str, str], bytes]:
        headers = {} if authorization is None else {"Authorization": authorization}

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.get(path, headers=headers)

        response = asyncio.run(go())
        return response.status_code, response.headers, response.content

    return scrape


def http_scraper(port: int, path: str = "/metrics") -> Scrape:
    """Scrapes a real server over loopback."""
    import requests

    def scrape(authorization: str | None) -> tuple[int, Mapping[str, str], bytes]:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
        return response.status_code, response.headers, response.content

    return scrape
