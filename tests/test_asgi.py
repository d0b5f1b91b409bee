"""The ASGI middleware on plain ASGI apps: in-process and under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import socket
import sys
import types
import warnings
from typing import Any

import pytest
import requests

import last9
from conftest import METRIC, counts_by, eventually, free_port, parse, scrape, serve
from last9.asgi.middleware import RedMiddleware


def http_scope(
    path: str = "/", method: str = "GET", host: bytes | None = b"example.com"
) -> dict[str, Any]:
    headers = [(b"host", host)] if host is not None else []
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("10.0.0.1", 8000),
    }


def run(
    app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Drives one ASGI call; returns what the app sent."""
    sent: list[dict[str, Any]] = []
    queue = list(incoming or [{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


async def hello(scope, receive, send):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


def middleware(app: Any, registry: last9.Registry, **kwargs: Any) -> RedMiddleware:
    return RedMiddleware(app, registry=registry, program="asgi-test", hostname="box", **kwargs)


def test_plain_asgi_app_is_recorded_by_normalised_path(registry):
    app = middleware(hello, registry)
    for n in range(3):
        sent = run(app, http_scope(f"/user/{n}"))
        assert sent[-1]["body"] == b"hello"
    run(app, http_scope("/x", host=None))
    assert counts_by(registry.render(), "per", "status", "domain", "method") == {
        ("/user/{id}", "200", "example.com", "GET"): 3,
        ("/x", "200", "10.0.0.1", "GET"): 1,
    }


def test_messages_are_passed_through_unchanged(registry):
    assert run(middleware(hello, registry), http_scope()) == run(hello, http_scope())


def test_lifespan_and_websocket_scopes_pass_through(registry):
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    wrapped = middleware(app, registry)
    run(wrapped, {"type": "lifespan"})
    run(wrapped, {"type": "websocket", "path": "/ws", "headers": []})
    assert seen == ["lifespan", "websocket"]
    assert registry.series_count() == 0


def test_exception_is_recorded_as_500_and_reraised(registry):
    error = KeyError("boom")

    async def app(scope, receive, send):
        raise error

    with pytest.raises(KeyError) as raised:
        run(middleware(app, registry), http_scope("/e"))
    assert raised.value is error
    assert counts_by(registry.render(), "per", "status") == {("/e", "500"): 1}


def test_exception_after_the_response_keeps_its_status(registry):
    async def app(scope, receive, send):
        await hello(scope, receive, send)
        raise RuntimeError("after")

    with pytest.raises(RuntimeError):
        run(middleware(app, registry), http_scope("/late"))
    assert counts_by(registry.render(), "status") == {("200",): 1}


def test_client_disconnect_is_recorded_as_499(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        message = await receive()
        assert message["type"] == "http.disconnect"

    run(middleware(app, registry), http_scope("/gone"), [{"type": "http.disconnect"}])
    assert counts_by(registry.render(), "per", "status") == {("/gone", "499"): 1}


def test_streamed_body_duration_runs_to_the_last_chunk(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await asyncio.sleep(0.02)
            await send({"type": "http.response.body", "body": b".", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    run(middleware(app, registry), http_scope("/stream"))
    sums = [
        v for k, v in parse(registry.render()).items() if dict(k)["__name__"] == f"{METRIC}_sum"
    ]
    assert sums[0] >= 60


def test_metrics_path_is_served(registry):
    app = middleware(hello, registry)
    run(app, http_scope("/a"))
    scope = http_scope("/metrics")
    scope["headers"].append((b"accept", b"application/openmetrics-text"))
    sent = run(app, scope)
    assert sent[0]["status"] == 200
    assert dict(sent[0]["headers"])[b"content-type"].startswith(b"application/openmetrics-text")
    assert sent[1]["body"].endswith(b"# EOF\n")
    assert counts_by(registry.render(), "per") == {("/a",): 1}


def test_plain_asgi_app_under_uvicorn():
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "tests.apps.asgi_app:app"]
    with serve(command, port):
        for n in range(5):
            assert requests.get(f"http://127.0.0.1:{port}/thing/{n}", timeout=5).text == "ok"
        counts = counts_by(scrape(port).text, "per", "status")
        assert counts == {("/thing/{id}", "200"): 5}


# --- The Rust proxy: what a coroutine frame would do, done without one -----------------------


def test_servers_see_a_coroutine_function_for_asgi3_detection(registry):
    app = middleware(hello, registry)
    assert inspect.iscoroutinefunction(app.__call__)
    assert asyncio.iscoroutinefunction(app.__call__)
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app.__call__(http_scope("/direct"), None, send))
    assert sent[-1]["body"] == b"hello"
    assert counts_by(registry.render(), "per") == {("/direct",): 1}


def test_cancellation_reaches_the_app_and_is_recorded(registry):
    seen = []

    async def app(scope, receive, send):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = asyncio.ensure_future(middleware(app, registry)(http_scope("/c"), None, None))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]
    assert counts_by(registry.render(), "per", "status") == {("/c", "500"): 1}


def test_an_app_that_handles_a_thrown_exception_carries_on(registry):
    async def app(scope, receive, send):
        with contextlib.suppress(asyncio.CancelledError):  # swallowed, then answered
            await asyncio.sleep(3600)
        await hello(scope, receive, send)

    async def main() -> None:
        task = asyncio.ensure_future(middleware(app, registry)(http_scope("/t"), None, _noop))
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    asyncio.run(main())
    assert counts_by(registry.render(), "per", "status") == {("/t", "200"): 1}


async def _noop(message):
    return None


@types.coroutine
def ask() -> Any:
    """Suspends the coroutine with a value, as an event loop's future would."""
    return (yield "question")


def test_closing_an_unfinished_request_closes_the_app_and_records_it(registry):
    closed = []

    async def app(scope, receive, send):
        try:
            await ask()
        finally:
            closed.append(True)

    awaiting = middleware(app, registry)(http_scope("/closed"), None, None)
    iterator = awaiting.__await__()
    next(iterator)  # the app is now suspended in sleep()
    iterator.close()
    assert closed == [True]
    assert counts_by(registry.render(), "per", "status") == {("/closed", "500"): 1}


def test_values_sent_into_the_proxy_reach_the_app(registry):
    answers = []

    async def app(scope, receive, send):
        answers.append(await ask())
        await hello(scope, receive, send)

    iterator = middleware(app, registry)(http_scope("/q"), None, _noop).__await__()
    assert next(iterator) == "question"
    with pytest.raises(StopIteration):
        iterator.send("answer")
    assert answers == ["answer"]
    assert counts_by(registry.render(), "per", "status") == {("/q", "200"): 1}


def test_apps_returning_other_awaitables_are_awaited(registry):
    class Deferred:
        def __init__(self, scope, receive, send):
            self.args = (scope, receive, send)

        def __await__(self):
            return hello(*self.args).__await__()

    run(middleware(Deferred, registry), http_scope("/deferred"))
    assert counts_by(registry.render(), "per", "status") == {("/deferred", "200"): 1}


def test_an_error_from_receive_reaches_the_app(registry):
    async def receive():
        raise OSError("socket gone")

    async def app(scope, receive_, send):
        try:
            await receive_()
        except OSError:
            await hello(scope, receive_, send)

    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(app, registry)(http_scope("/r"), receive, send))
    assert sent[-1]["body"] == b"hello"
    assert counts_by(registry.render(), "per", "status") == {("/r", "200"): 1}


def test_a_path_send_ends_the_response(registry):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})
        raise RuntimeError("after the response")

    with pytest.raises(RuntimeError):
        run(middleware(app, registry), http_scope("/file"))
    assert counts_by(registry.render(), "per", "status") == {("/file", "200"): 1}


def test_an_app_returning_without_a_response_is_499(registry):
    async def app(scope, receive, send):
        return None

    run(middleware(app, registry), http_scope("/nothing"))
    assert counts_by(registry.render(), "per", "status") == {("/nothing", "499"): 1}


def test_a_response_sent_after_the_client_left_is_499(registry):
    async def app(scope, receive, send):
        message = await receive()
        assert message["type"] == "http.disconnect"
        # An error handler answering a request whose body never came, to nobody.
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})

    run(middleware(app, registry), http_scope("/upload", "POST"), [{"type": "http.disconnect"}])
    assert counts_by(registry.render(), "per", "status") == {("/upload", "499"): 1}


def in_flight(registry: last9.Registry) -> float:
    return sum(
        value
        for key, value in parse(registry.render()).items()
        if dict(key)["__name__"] == "http_requests_in_flight"
    )


def test_in_flight_is_given_back_however_a_request_ends(registry):
    async def fails(scope, receive, send):
        raise RuntimeError("boom")

    async def gives_up(scope, receive, send):
        return None

    with pytest.raises(RuntimeError):
        run(middleware(fails, registry), http_scope("/a"))
    run(middleware(gives_up, registry), http_scope("/b"))
    run(middleware(hello, registry), http_scope("/c"))
    never_awaited = middleware(hello, registry)(http_scope("/d"), None, _noop)
    assert in_flight(registry) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # hello() was never awaited
        del never_awaited
        gc.collect()
    assert in_flight(registry) == 0
    assert counts_by(registry.render(), "per", "status") == {
        ("/a", "500"): 1,
        ("/b", "499"): 1,
        ("/c", "200"): 1,
    }


def test_under_uvicorn_a_client_that_left_is_499_only_if_the_app_heard_of_it():
    """uvicorn tells an app that its client went away only through ``receive()``; ``send()``
    after that returns quietly (uvicorn reverted raising ``ClientDisconnected``, ASGI 2.4).
    So an app that never reads ``receive()`` is recorded with the status it sent."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--port",
        str(port),
        "tests.apps.asgi_disconnect_app:app",
    ]
    with serve(command, port):
        for path in ("/listens", "/ignores"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

        def both_recorded() -> dict[tuple[str, ...], float]:
            counts = counts_by(scrape(port).text, "per", "status")
            assert len(counts) == 2
            return counts

        assert eventually(both_recorded) == {("/listens", "499"): 1, ("/ignores", "200"): 1}


def test_headers_are_read_in_one_pass_whatever_their_order_and_case(registry):
    # Host, traceparent and the header label are picked up in a single walk over the headers;
    # the label's header may even be one of the others.
    app = middleware(
        hello, registry, header_label=("site", "Host"), header_label_values=["shop.example"]
    )
    scope = http_scope(host=None)
    scope["headers"] = [
        (b"accept", b"*/*"),
        (b"HOST", b"shop.example"),
        (b"host", b"second.example"),  # only the first of a repeated header counts
        (b"x-other", b"1"),
    ]
    run(app, scope)
    run(app, http_scope(host=None))  # no Host: the server's address, and an empty label
    assert counts_by(registry.render(), "domain", "site") == {
        ("shop.example", "shop.example"): 1,
        ("10.0.0.1", ""): 1,
    }
