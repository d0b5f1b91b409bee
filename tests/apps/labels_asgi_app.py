"""A FastAPI app whose endpoints (async, and sync in the thread pool) set a request label,
for uvicorn --workers 2."""

from fastapi import FastAPI

import last9
from last9.asgi.middleware import RedMiddleware

api = FastAPI()


@api.get("/order/{item}")
async def order(item: str, tier: str | None = None) -> str:
    if tier is not None:
        last9.set_label("tier", tier)
    return f"ordered {item}"


@api.get("/sync/{item}")
def order_sync(item: str, tier: str | None = None) -> str:
    # Runs in a worker thread with a copy of the request's context.
    if tier is not None:
        last9.set_label("tier", tier)
    return f"ordered {item}"


app = RedMiddleware(api)
