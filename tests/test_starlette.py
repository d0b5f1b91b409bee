"""Starlette: route templates in-process (httpx) and over real HTTP through uvicorn."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import httpx
import pytest
from auth_helpers import BEARER, asgi_scraper, assert_only_the_right_credentials_scrape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Host, Mount, Route, Router

import last9
from conftest import counts_by, free_port, parse, scrape, serve, uvicorn
from last9.asgi.middleware import RedMiddleware
from traffic import UUID, counted, counts, duration_sum, get, requests_to


async def echo(request):
    return PlainTextResponse(f"{request.url.path} {dict(request.path_params)}")


def shop() -> Starlette:
    return Starlette(
        routes=[
            Route("/name/{name}", echo),
            Route("/item/{item_id:int}", echo, methods=["GET"]),
            Mount(
                "/api/v1",
                routes=[
                    Route("/users/{user_id:uuid}", echo),
                    Mount("/orgs/{org}", routes=[Route("/members/{member_id:int}", echo)]),
                ],
            ),
        ]
    )


SHOP_TRAFFIC = (
    "/name/ada",
    "/name/bob",
    "/item/7",
    "/item/abc",
    "DELETE /item/7",
    f"/api/v1/users/{UUID}",
    "/api/v1/orgs/acme/members/3",
    "/api/v1/orgs/other/members/4",
    "/api/v1/nothing",
    "/nothing",
)
SHOP_COUNTS = {
    ("/name/{name}", "200", "GET"): 2,
    ("/item/{item_id}", "200", "GET"): 1,
    ("/item/{item_id}", "405", "DELETE"): 1,
    ("/api/v1/users/{user_id}", "200", "GET"): 1,
    ("/api/v1/orgs/{org}/members/{member_id}", "200", "GET"): 2,
    ("/unmatched", "404", "GET"): 3,
}


def test_wrapping_the_app_gives_templates_with_mount_prefixes(registry):
    app = RedMiddleware(shop(), registry=registry)
    requests_to(app, *SHOP_TRAFFIC)
    assert counts(registry) == SHOP_COUNTS


def test_add_middleware_gives_the_same_templates(registry):
    app = shop()
    app.add_middleware(RedMiddleware, registry=registry)
    requests_to(app, *SHOP_TRAFFIC)
    assert counts(registry) == SHOP_COUNTS


def test_middleware_list_and_a_bare_router_work_too(registry):
    other = last9.Registry()
    listed = Starlette(
        routes=[Route("/a/{x}", echo)], middleware=[Middleware(RedMiddleware, registry=registry)]
    )
    router = RedMiddleware(Router(routes=[Route("/b/{y:int}", echo)]), registry=other)
    requests_to(listed, "/a/1", "/a/2")
    requests_to(router, "/b/3", "/b/x")
    assert counts(registry) == {("/a/{x}", "200", "GET"): 2}
    assert counts(other) == {("/b/{y}", "200", "GET"): 1, ("/unmatched", "404", "GET"): 1}


def test_each_request_is_counted_once_and_repeats_use_the_remembered_template(registry):
    app = RedMiddleware(shop(), registry=registry)
    requests_to(app, *SHOP_TRAFFIC, *SHOP_TRAFFIC, *SHOP_TRAFFIC)
    assert counts(registry) == {key: 3 * n for key, n in SHOP_COUNTS.items()}


def test_a_remembered_template_is_read_without_calling_the_route_getter(registry, monkeypatch):
    from last9 import starlette

    asked: list[str] = []
    make_getter = starlette._route_getter

    def counting_getter(router: Any, routing: Any) -> tuple[Any, dict[int, Any]]:
        route_of, learnt = make_getter(router, routing)

        def counted_route_of(scope: dict[str, Any]) -> str | None:
            asked.append(scope["path"])
            return route_of(scope)

        return counted_route_of, learnt

    monkeypatch.setattr(starlette, "_route_getter", counting_getter)
    app = RedMiddleware(shop(), registry=registry)
    requests_to(app, "/name/ada", "/name/bob", "/name/cy", "/nothing", "/nothing")
    # Learnt once; later requests to that route are named in Rust. No route: asked each time.
    assert asked == ["/name/ada", "/nothing", "/nothing"]
    assert counts(registry) == {
        ("/name/{name}", "200", "GET"): 3,
        ("/unmatched", "404", "GET"): 2,
    }


class ForgetRoute:
    """Drops what the router left in the scope before the response goes out, as older
    Starlette versions never set it."""

    def __init__(self, app: Any, *keys: str) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope, receive, send):
        async def forgetting(message):
            for key in self.keys:
                scope.pop(key, None)
            await send(message)

        await self.app(scope, receive, forgetting)


@pytest.mark.parametrize("keys", [("route",), ("route", "endpoint")])
def test_without_scope_route_the_request_is_matched_again(registry, keys):
    app = RedMiddleware(ForgetRoute(shop(), *keys), registry=registry)
    requests_to(app, *SHOP_TRAFFIC, *SHOP_TRAFFIC)
    assert counts(registry) == {key: 2 * n for key, n in SHOP_COUNTS.items()}


def test_one_router_mounted_twice_keeps_each_prefix(registry):
    api = Router(routes=[Route("/items/{item_id:int}", echo)])
    app = Starlette(routes=[Mount("/v1", app=api), Mount("/v2", app=api)])
    wrapped = RedMiddleware(ForgetRoute(app), registry=registry)
    direct = last9.Registry()
    requests_to(wrapped, "/v1/items/1", "/v2/items/2", "/v1/items/3", "/v2/items/x")
    requests_to(RedMiddleware(app, registry=direct), "/v1/items/1", "/v2/items/2", "/v2/items/3")
    assert counts(registry) == {
        ("/v1/items/{item_id}", "200", "GET"): 2,
        ("/v2/items/{item_id}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 1,
    }
    assert counts(direct) == {
        ("/v1/items/{item_id}", "200", "GET"): 1,
        ("/v2/items/{item_id}", "200", "GET"): 2,
    }


def test_one_endpoint_on_two_routes_keeps_each_template(registry):
    app = Starlette(routes=[Route("/a/{x}", echo), Route("/b/{y}", echo)])
    requests_to(RedMiddleware(ForgetRoute(app, "route"), registry=registry), "/a/1", "/b/2", "/a/3")
    assert counts(registry) == {("/a/{x}", "200", "GET"): 2, ("/b/{y}", "200", "GET"): 1}


def test_host_routing_and_mounted_apps_without_routes(registry):
    async def health(scope, receive, send):
        await PlainTextResponse("ok")(scope, receive, send)

    app = Starlette(
        routes=[
            Host("{tenant}.example.com", app=Router(routes=[Route("/home/{page}", echo)])),
            Mount("/health", app=health),
        ]
    )
    wrapped = RedMiddleware(app, registry=registry)
    requests_to(wrapped, "/home/about", "/home/faq", Host="acme.example.com")
    requests_to(wrapped, "/health/", "/health/live", "/home/about")
    assert counts(registry) == {
        ("/home/{page}", "200", "GET"): 2,
        ("/health/{path}", "200", "GET"): 2,
        ("/unmatched", "404", "GET"): 1,
    }


def test_an_instrumented_sub_app_reports_its_mount_prefix(registry):
    inner = Starlette(routes=[Route("/items/{item_id:int}", echo)])
    outer = Starlette(routes=[Mount("/shop/{region}", app=RedMiddleware(inner, registry=registry))])
    requests_to(outer, "/shop/eu/items/1", "/shop/us/items/2")
    assert counts(registry) == {("/shop/{region}/items/{item_id}", "200", "GET"): 2}


def test_server_root_path_is_not_part_of_the_template(registry):
    app = RedMiddleware(shop(), registry=registry)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app, root_path="/prefix")
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for path in ("/prefix/name/x", "/prefix/api/v1/orgs/o/members/1"):
                assert (await client.get(path)).status_code == 200

    asyncio.run(go())
    assert counts(registry) == {
        ("/name/{name}", "200", "GET"): 1,
        ("/api/v1/orgs/{org}/members/{member_id}", "200", "GET"): 1,
    }


def test_responses_are_unchanged(registry):
    plain, wrapped = shop(), RedMiddleware(shop(), registry=registry)

    async def fetch(app: Any, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(path)
            return response.status_code, response.headers.multi_items(), response.content

    for path in ("/name/x", "/item/abc", "/api/v1/orgs/o/members/2", "/missing"):
        assert asyncio.run(fetch(wrapped, path)) == asyncio.run(fetch(plain, path))


# --- Over real HTTP: the test app under uvicorn ----------------------------------------------


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with serve(uvicorn("tests.apps.starlette_app:app", port), port):
        yield port


def test_real_http_traffic_is_counted_by_template(server):
    def traffic() -> None:
        for n in range(10):
            assert get(server, f"/name/{n}").status_code == 200
        for n in (1, 22, 333):
            assert get(server, f"/item/{n}").json() == {"id": n}
        assert get(server, "/item/abc").status_code == 404  # the int converter did not match
        assert get(server, "/item/5", "DELETE").status_code == 405
        assert get(server, "/files/a/b/c.txt").text == "a/b/c.txt"
        assert get(server, f"/api/v1/users/{UUID}/orders/9").json()["order"] == 9
        assert get(server, "/api/v1/orgs/acme/members/3").status_code == 200
        assert get(server, "/api/v1/orgs/acme/nothing").status_code == 404
        assert get(server, "/health/live").text == "ok"
        assert get(server, "/no/such/route").status_code == 404
        assert get(server, "/boom").status_code == 500
        assert get(server, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"

    assert counted(server, traffic) == {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/files/{file_path}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/api/v1/orgs/{org}/members/{member_id}", "200", "GET"): 1,
        ("/health/{path}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 3,
        ("/boom", "500", "GET"): 1,
        ("/stream/{chunks}", "200", "GET"): 1,
    }


def test_real_http_streamed_response_is_timed_to_its_last_chunk(server):
    before = duration_sum(server, "/stream/{chunks}")
    get(server, "/stream/4")  # 4 chunks, 50 ms apart
    assert duration_sum(server, "/stream/{chunks}") - before >= 200


def hang_up(port: int, request: bytes, after: int) -> None:
    """Sends a raw request, reads `after` bytes of the answer (0: none), and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if after:
            sock.recv(after)


def test_real_http_clients_that_hang_up_are_499(server):
    gone = {("/stream/{chunks}", "499"), ("/upload", "499")}

    def traffic() -> None:
        hang_up(server, b"GET /stream/40 HTTP/1.1\r\nHost: x\r\n\r\n", after=100)
        hang_up(server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\nab", 0)
        deadline = time.monotonic() + 10  # until the server has noticed both
        while (
            time.monotonic() < deadline
            and not gone <= counts_by(scrape(server).text, "per", "status").keys()
        ):
            time.sleep(0.05)

    assert counted(server, traffic) == {
        ("/stream/{chunks}", "499", "GET"): 1,
        ("/upload", "499", "POST"): 1,
    }


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
    assert om.text.endswith("# EOF\n")


def test_a_protected_metrics_path_needs_the_credentials(registry):
    app = RedMiddleware(shop(), registry=registry, **BEARER)
    requests_to(app, "/name/a")
    body = assert_only_the_right_credentials_scrape(asgi_scraper(app), "Bearer")
    assert counts_by(body, "per") == {("/name/{name}",): 1}


def test_a_starlette_route_at_the_metrics_path_is_reported_at_start_up(registry, caplog):
    own = Starlette(routes=[Route("/metrics", lambda request: PlainTextResponse("own"))])
    with caplog.at_level("WARNING", logger="last9"):
        RedMiddleware(own, registry=registry)
        RedMiddleware(shop(), registry=registry)
    (record,) = caplog.records
    assert "'/metrics'" in record.getMessage()
