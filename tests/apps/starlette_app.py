"""A Starlette app with the route shapes people write, instrumented as `RedMiddleware(app)`."""

import asyncio

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, Router

from last9.asgi.middleware import RedMiddleware


async def name(request):
    return PlainTextResponse(f"Hello, {request.path_params['name']}!")


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"]})


async def order(request):
    params = request.path_params
    return JSONResponse({"user": str(params["user_id"]), "order": params["order_id"]})


async def member(request):
    return JSONResponse(request.path_params)


async def files(request):
    return PlainTextResponse(request.path_params["file_path"])


async def boom(request):
    raise RuntimeError("boom")


async def stream(request):
    async def chunks():
        for i in range(request.path_params["chunks"]):
            await asyncio.sleep(0.05)
            yield f"chunk {i}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def upload(request):
    return PlainTextResponse(str(len(await request.body())))


async def health(scope, receive, send):
    """A mounted plain ASGI app, with no routes of its own."""
    await PlainTextResponse("ok")(scope, receive, send)


api = Router(
    routes=[
        Route("/users/{user_id:uuid}/orders/{order_id:int}", order),
        Mount("/orgs/{org}", routes=[Route("/members/{member_id:int}", member)]),
    ]
)

starlette_app = Starlette(
    routes=[
        Route("/name/{name}", name),
        Route("/item/{item_id:int}", item, methods=["GET"]),
        Route("/files/{file_path:path}", files),
        Route("/boom", boom),
        Route("/stream/{chunks:int}", stream),
        Route("/upload", upload, methods=["POST"]),
        Mount("/api/v1", app=api),
        Mount("/health", app=health),
    ]
)

app = RedMiddleware(starlette_app, program="shop", tenant="acme", cluster="test")
