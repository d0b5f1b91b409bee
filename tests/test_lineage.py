"""Requests in flight (WSGI and ASGI) and lineage between two real services over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

import last9
from conftest import eventually, free_port, gunicorn, parse, scrape, serve
from last9.asgi.middleware import RedMiddleware as AsgiMiddleware
from last9.wsgi.middleware import RedMiddleware

IN_FLIGHT = "http_requests_in_flight"


def in_flight(registry: last9.Registry, method: str = "GET") -> float:
    total = 0.0
    for key, value in parse(registry.render()).items():
        labels = dict(key)
        if labels["__name__"] == IN_FLIGHT and labels["method"] == method:
            assert labels["per"] == "/_all"
            total += value
    return total


def call(app: Any, path: str = "/", method: str = "GET") -> list[bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "x", "wsgi.input": None}
    body = app(environ, lambda status, headers, exc_info=None: None)
    try:
        return list(body)
    finally:
        if hasattr(body, "close"):
            body.close()


def test_wsgi_in_flight_is_exact_under_threads(registry: last9.Registry) -> None:
    inside = threading.Barrier(9)
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        inside.wait(5)
        release.wait(5)
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = RedMiddleware(app, program="t", registry=registry, metrics_path=None)
    threads = [threading.Thread(target=call, args=(wrapped,)) for _ in range(8)]
    for t in threads:
        t.start()
    inside.wait(5)
    assert in_flight(registry) == 8
    release.set()
    for t in threads:
        t.join()
    assert in_flight(registry) == 0


def test_wsgi_in_flight_drops_on_exceptions_streams_and_dropped_bodies(
    registry: last9.Registry,
) -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    def streaming(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"a"
        assert in_flight(registry, environ["REQUEST_METHOD"]) == 1
        yield b"b"

    with pytest.raises(RuntimeError):
        call(RedMiddleware(failing, program="t", registry=registry), method="POST")
    assert in_flight(registry, "POST") == 0
    stream = RedMiddleware(streaming, program="t", registry=registry)
    assert call(stream, method="PUT") == [b"a", b"b"]
    assert in_flight(registry, "PUT") == 0
    # Closed after one chunk, and dropped without close: neither stays in flight.
    environ = {"REQUEST_METHOD": "PATCH", "PATH_INFO": "/", "SERVER_NAME": "x"}
    body = stream(environ, lambda *a: None)
    next(iter(body))
    body.close()
    body = stream(dict(environ), lambda *a: None)
    next(iter(body))
    assert in_flight(registry, "PATCH") == 1
    del body
    assert in_flight(registry, "PATCH") == 0


def test_asgi_in_flight_is_exact_under_asyncio(registry: last9.Registry) -> None:
    async def main() -> None:
        release = asyncio.Event()
        entered = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            nonlocal entered
            entered += 1
            await release.wait()
            if scope["path"] == "/fail":
                raise RuntimeError("boom")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        wrapped = AsgiMiddleware(app, program="t", registry=registry)

        async def request(path: str) -> None:
            scope = {"type": "http", "method": "GET", "path": path, "headers": []}

            async def receive() -> dict[str, Any]:
                return {"type": "http.request"}

            async def send(message: Any) -> None:
                pass

            with contextlib.suppress(RuntimeError):
                await wrapped(scope, receive, send)

        tasks = [asyncio.create_task(request("/fail" if i % 2 else "/")) for i in range(10)]
        while entered < 10:
            await asyncio.sleep(0.001)
        assert in_flight(registry) == 10
        release.set()
        await asyncio.gather(*tasks)
        assert in_flight(registry) == 0

    asyncio.run(main())


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for key, value in parse(text).items():
        labels = dict(key)
        if labels.pop("__name__") == name:
            out.append((labels, value))
    return out


def test_two_services_show_the_edge_from_both_sides() -> None:
    api_port, web_port = free_port(), free_port()
    env = {"LAST9_INSTRUMENT_HTTP_CLIENTS": "1", "LAST9_TEST_API": f"http://127.0.0.1:{api_port}"}
    api = [sys.executable, "-m", "uvicorn", "--port", str(api_port), "tests.apps.lineage_api:app"]
    with (
        serve(api, api_port, env),
        serve(gunicorn("tests.apps.lineage_web:app", web_port, "-w", "1"), web_port, env),
    ):
        base = f"http://127.0.0.1:{web_port}"
        for n in range(3):
            assert requests.get(f"{base}/buy/{n}", timeout=10).json() == {"id": n}
        for n in range(2):
            assert httpx.get(f"{base}/look/{n}", timeout=10).json() == {"id": n}
        assert requests.get(f"{base}/down", timeout=10).text == "down"
        web = scrape(web_port).text
        api_text = scrape(api_port).text

    calls = {
        (s["per"], s["upstream"], s["method"], s["status"]): v
        for s, v in samples(web, "http_client_requests_duration_milliseconds_count")
    }
    upstream = f"127.0.0.1:{api_port}"
    assert calls[("/buy/{n}", upstream, "GET", "200")] == 3
    assert calls[("/look/{n}", upstream, "GET", "200")] == 2
    assert calls[("/down", "127.0.0.1:9", "GET", "connection_error")] == 1
    assert all(
        s["program"] == "storefront"
        for s, _ in samples(web, "http_client_requests_duration_milliseconds_count")
    )

    callers = {
        (s["caller"], s["program"]): v for s, v in samples(api_text, "http_requests_callers_total")
    }
    assert callers[("storefront", "inventory")] == 5
    # Our own scrapes name no caller.
    web_callers = {s["caller"] for s, _ in samples(web, "http_requests_callers_total")}
    assert web_callers == {"unknown"}
    assert "# TYPE http_requests_in_flight gauge" in web


def test_lineage_is_exact_over_every_worker_and_restart(tmp_path: Path) -> None:
    """gunicorn -w 4 recycling its workers every 5 requests: every scrape, whichever worker
    serves it, shows the outbound calls and the callers of all workers, live and gone."""
    api_port, web_port = free_port(), free_port()
    env = {
        "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
        "LAST9_TEST_API": f"http://127.0.0.1:{api_port}",
        "XDG_RUNTIME_DIR": str(tmp_path),  # where the instance directory goes
    }
    api = [sys.executable, "-m", "uvicorn", "--port", str(api_port), "tests.apps.lineage_api:app"]
    recycling = ("-w", "4", "--max-requests", "5", "--max-requests-jitter", "0")
    web = gunicorn("tests.apps.lineage_web:app", web_port, *recycling)
    with serve(api, api_port, env), serve(web, web_port, env):
        base = f"http://127.0.0.1:{web_port}"
        mobile = {"x-last9-caller": "mobile"}
        for n in range(30):
            assert requests.get(f"{base}/buy/{n}", headers=mobile, timeout=10).json() == {"id": n}
        for _ in range(10):
            assert requests.get(f"{base}/fail", headers=mobile, timeout=10).status_code == 503
        for n in range(6):
            assert httpx.get(f"{base}/look/{n}", timeout=10).json() == {"id": n}
        upstream = f"127.0.0.1:{api_port}"

        def exact() -> None:
            text = scrape(web_port).text
            calls = {
                (s["per"], s["upstream"], s["status"]): v
                for s, v in samples(text, "http_client_requests_duration_milliseconds_count")
            }
            assert calls == {("/buy/{n}", upstream, "200"): 30, ("/look/{n}", upstream, "200"): 6}
            callers = {
                (s["caller"], s["per"], s["status"]): v
                for s, v in samples(text, "http_requests_callers_total")
                if s["caller"] != "unknown"  # the scrapes themselves
            }
            assert callers == {("mobile", "/buy/{n}", "2xx"): 30, ("mobile", "/fail", "5xx"): 10}
            looks = {
                s["status"]: v
                for s, v in samples(text, "http_requests_callers_total")
                if s["per"] == "/look/{n}"
            }
            assert looks == {"2xx": 6}

        # The last request is recorded as its worker closes it; then every scrape is exact.
        eventually(exact)
        for _ in range(12):
            exact()
        instance = next((tmp_path / f"last9-{os.getuid()}").iterdir())
        assert (instance / "archive.db").exists(), "workers were recycled into the archive"


def test_patching_is_idempotent_and_callers_come_from_headers(registry: last9.Registry) -> None:
    assert last9.instrument_http_clients() == last9.instrument_http_clients()
    assert "urllib3" in last9.instrument_http_clients()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = RedMiddleware(app, program="t", registry=registry, metrics_path=None)
    for headers in (
        {"HTTP_X_LAST9_CALLER": "web"},
        {"HTTP_X_ENVOY_DOWNSTREAM_SERVICE_CLUSTER": "mesh-svc"},
        {},
    ):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "SERVER_NAME": "x", **headers}
        list(wrapped(environ, lambda *a: None))
    callers = {
        s["caller"]: v
        for s, v in samples(registry.render().decode(), "http_requests_callers_total")
    }
    assert callers == {"web": 1, "mesh-svc": 1, "unknown": 1}


def test_aiohttp_calls_are_recorded_under_the_running_request(registry: last9.Registry) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    last9.instrument_http_clients()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async with aiohttp.ClientSession() as session:
            with contextlib.suppress(aiohttp.ClientError):
                await session.get("http://127.0.0.1:9/x")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = AsgiMiddleware(app, program="t", registry=registry)

    async def main() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request"}

        async def send(message: Any) -> None:
            pass

        await wrapped({"type": "http", "method": "GET", "path": "/p", "headers": []}, receive, send)

    asyncio.run(main())
    calls = samples(registry.render().decode(), "http_client_requests_duration_milliseconds_count")
    assert [(s["upstream"], s["status"], v) for s, v in calls] == [
        ("127.0.0.1:9", "connection_error", 1)
    ]
