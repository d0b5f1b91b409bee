"""A Starlette app with a lifespan, wrapped as `RedMiddleware(app)`: for single-process ASGI
servers with and without the lifespan protocol (daphne has none, uvicorn has it)."""

import contextlib

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from last9.asgi.middleware import RedMiddleware
from tests.apps.starlette_app import boom, item, stream, upload

#: What the lifespan saw: "startup" once the server ran it.
events: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app):
    events.append("startup")
    yield
    events.append("shutdown")


async def lifespan_events(request):
    return JSONResponse(events)


app = RedMiddleware(
    Starlette(
        routes=[
            Route("/lifespan", lifespan_events),
            Route("/item/{item_id:int}", item),
            Route("/boom", boom),
            Route("/stream/{chunks:int}", stream),
            Route("/upload", upload, methods=["POST"]),
        ],
        lifespan=lifespan,
    ),
    program="single",
)
