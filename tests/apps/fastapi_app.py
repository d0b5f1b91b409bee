"""A FastAPI app with routers, prefixes and a mounted sub-application, instrumented with
`app.add_middleware(RedMiddleware)`."""

import asyncio
import uuid

from fastapi import APIRouter, FastAPI
from fastapi.responses import StreamingResponse

from last9.asgi.middleware import RedMiddleware

app = FastAPI()
app.add_middleware(RedMiddleware, program="shop-api", tenant="acme", cluster="test")


@app.get("/name/{name}")
async def name(name: str):
    return f"Hello, {name}!"


@app.get("/item/{item_id}")
async def item(item_id: int):
    return {"id": item_id}


@app.get("/files/{file_path:path}")
async def files(file_path: str):
    return file_path


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")


@app.get("/stream/{chunks}")
async def stream(chunks: int):
    async def generate():
        for i in range(chunks):
            await asyncio.sleep(0.05)
            yield f"chunk {i}\n"

    return StreamingResponse(generate(), media_type="text/plain")


orders = APIRouter(prefix="/orders")


@orders.get("/{order_id}")
async def order(user_id: uuid.UUID, order_id: int):
    return {"user": str(user_id), "order": order_id}


users = APIRouter(prefix="/users/{user_id}")
users.include_router(orders)


@users.get("")
async def user(user_id: uuid.UUID):
    return {"user": str(user_id)}


app.include_router(users, prefix="/api/v1")

admin = FastAPI()


@admin.get("/reports/{year}")
async def report(year: int):
    return {"year": year}


app.mount("/admin", admin)
