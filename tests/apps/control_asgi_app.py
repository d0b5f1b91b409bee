"""A FastAPI app with routes an operator leaves out of the metrics, for `uvicorn --workers`."""

import os

from fastapi import FastAPI, Response

import last9
from last9.asgi.middleware import RedMiddleware

api = FastAPI()


def _answer(text: str) -> Response:
    return Response(text, headers={"X-Pid": str(os.getpid())})


@api.get("/name/{name}")
async def hello(name: str) -> Response:
    return _answer(f"Hello, {name}!")


@api.get("/healthz")
async def healthz() -> Response:
    return _answer("ok")


@api.get("/static/{filename:path}")
async def asset(filename: str) -> Response:
    return _answer(filename)


@api.get("/internal/{what}")
async def internal(what: str) -> Response:
    return _answer(what)


@api.get("/ping")
@last9.exclude
async def ping() -> Response:
    return _answer("pong")


app = RedMiddleware(api)
