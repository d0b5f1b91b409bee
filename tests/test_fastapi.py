"""FastAPI: routers, prefixes and sub-applications, in-process (httpx) and through uvicorn."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from conftest import free_port, parse, scrape, serve, uvicorn
from last9.asgi.middleware import RedMiddleware
from traffic import UUID, counted, counts, duration_sum, get, requests_to


def shop() -> FastAPI:
    app = FastAPI()

    @app.get("/item/{item_id}")
    def item(item_id: int):
        return {"id": item_id}

    orders = APIRouter(prefix="/orders")

    @orders.get("/{order_id}")
    def order(order_id: int):
        return {"order": order_id}

    @orders.post("/{order_id}/cancel")
    def cancel(order_id: int):
        return {"cancelled": order_id}

    users = APIRouter(prefix="/users/{user_id}")
    users.include_router(orders)
    app.include_router(users, prefix="/v1")
    app.include_router(users, prefix="/v2")  # one router, included twice
    return app


SHOP_TRAFFIC = (
    "/item/1",
    "/item/2",
    "/item/abc",
    "PUT /item/3",
    f"/v1/users/{UUID}/orders/1",
    "/v1/users/u/orders/2",
    "/v2/users/u/orders/3",
    "POST /v2/users/u/orders/3/cancel",
    "/v2/users/u/orders/3/cancel",
    "/v3/users/u/orders/3",
)
SHOP_COUNTS = {
    ("/item/{item_id}", "200", "GET"): 2,
    ("/item/{item_id}", "422", "GET"): 1,  # matched, then the int validation failed
    ("/item/{item_id}", "405", "PUT"): 1,
    ("/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 2,
    ("/v2/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
    ("/v2/users/{user_id}/orders/{order_id}/cancel", "200", "POST"): 1,
    ("/v2/users/{user_id}/orders/{order_id}/cancel", "405", "GET"): 1,
    ("/unmatched", "404", "GET"): 1,
}


@pytest.mark.parametrize("way", ["wrap", "add_middleware"])
def test_include_router_prefixes_are_joined(registry, way):
    app = shop()
    if way == "wrap":
        requests_to(RedMiddleware(app, registry=registry), *SHOP_TRAFFIC, *SHOP_TRAFFIC)
    else:
        app.add_middleware(RedMiddleware, registry=registry)
        requests_to(app, *SHOP_TRAFFIC, *SHOP_TRAFFIC)
    assert counts(registry) == {key: 2 * n for key, n in SHOP_COUNTS.items()}


def test_sub_applications_static_files_and_plain_routes(registry, tmp_path):
    (tmp_path / "app.js").write_text("1")
    app = FastAPI()
    admin = FastAPI()

    @admin.get("/reports/{year}")
    def report(year: int):
        return year

    app.mount("/admin", admin)
    app.mount("/static", StaticFiles(directory=tmp_path))
    requests_to(
        RedMiddleware(app, registry=registry),
        "/admin/reports/2024",
        "/admin/reports/2025",
        "/admin/nothing",
        "/static/app.js",
        "/static/missing.js",
        "/docs",
        "/openapi.json",
    )
    assert counts(registry) == {
        ("/admin/reports/{year}", "200", "GET"): 2,
        ("/unmatched", "404", "GET"): 1,
        ("/static/{path}", "200", "GET"): 1,
        ("/static/{path}", "404", "GET"): 1,
        ("/docs", "200", "GET"): 1,
        ("/openapi.json", "200", "GET"): 1,
    }


def test_a_fastapi_app_mounted_in_starlette(registry):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = FastAPI()

    @inner.get("/items/{item_id}")
    def item(item_id: int):
        return item_id

    outer = Starlette(routes=[Mount("/api", app=inner)])
    traffic = ("/api/docs", "/api/openapi.json", "/api/items/1", "/api/nothing", "/nothing")
    requests_to(RedMiddleware(outer, registry=registry), *traffic, *traffic)
    assert counts(registry) == {
        ("/api/docs", "200", "GET"): 2,
        ("/api/openapi.json", "200", "GET"): 2,
        ("/api/items/{item_id}", "200", "GET"): 2,
        ("/unmatched", "404", "GET"): 4,
    }


def test_routes_added_after_wrapping_are_found(registry):
    app = FastAPI()
    wrapped = RedMiddleware(app, registry=registry)

    @app.get("/late/{n}")
    def late(n: int):
        return n

    requests_to(wrapped, "/late/1", "/late/2")
    assert counts(registry) == {("/late/{n}", "200", "GET"): 2}


# --- Over real HTTP: the test app under uvicorn, instrumented with add_middleware ------------


@pytest.fixture(scope="module")
def server():
    port = free_port()
    with serve(uvicorn("tests.apps.fastapi_app:app", port), port):
        yield port


def test_real_http_traffic_is_counted_by_template(server):
    def traffic() -> None:
        for n in range(10):
            assert get(server, f"/name/{n}").status_code == 200
        for n in (1, 22, 333):
            assert get(server, f"/item/{n}").json() == {"id": n}
        assert get(server, "/item/abc").status_code == 422
        assert get(server, "/item/5", "DELETE").status_code == 405
        assert get(server, "/files/a/b/c.txt").json() == "a/b/c.txt"
        assert get(server, f"/api/v1/users/{UUID}/orders/9").json()["order"] == 9
        assert get(server, f"/api/v1/users/{UUID}").json() == {"user": UUID}
        assert get(server, "/admin/reports/2024").json() == {"year": 2024}
        assert get(server, "/admin/nothing").status_code == 404
        assert get(server, "/no/such/route").status_code == 404
        assert get(server, "/boom").status_code == 500
        assert get(server, "/stream/3").text == "chunk 0\nchunk 1\nchunk 2\n"

    assert counted(server, traffic) == {
        ("/name/{name}", "200", "GET"): 10,
        ("/item/{item_id}", "200", "GET"): 3,
        ("/item/{item_id}", "422", "GET"): 1,
        ("/item/{item_id}", "405", "DELETE"): 1,
        ("/files/{file_path}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}/orders/{order_id}", "200", "GET"): 1,
        ("/api/v1/users/{user_id}", "200", "GET"): 1,
        ("/admin/reports/{year}", "200", "GET"): 1,
        ("/unmatched", "404", "GET"): 2,
        ("/boom", "500", "GET"): 1,
        ("/stream/{chunks}", "200", "GET"): 1,
    }


def test_real_http_streamed_response_is_timed_to_its_last_chunk(server):
    before = duration_sum(server, "/stream/{chunks}")
    get(server, "/stream/4")  # 4 chunks, 50 ms apart
    assert duration_sum(server, "/stream/{chunks}") - before >= 200


def test_real_http_program_and_labels(server):
    get(server, "/name/x")
    labels = next(
        dict(k) for k in parse(scrape(server).text) if dict(k).get("per") == "/name/{name}"
    )
    assert (labels["program"], labels["tenant"], labels["cluster"]) == ("shop-api", "acme", "test")


def test_the_metrics_path_is_answered_inside_the_middleware_stack(server):
    response = scrape(server)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE http_requests_duration_milliseconds histogram" in response.text
