"""The called side of the lineage test: a FastAPI app under uvicorn."""

from fastapi import FastAPI

from last9.asgi.middleware import RedMiddleware

api = FastAPI()


@api.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


app = RedMiddleware(api, program="inventory")
