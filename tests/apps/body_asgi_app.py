"""A FastAPI app with known body sizes (LAST9_BODY_SIZES), for uvicorn --workers 2."""

import os

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

from last9.asgi.middleware import RedMiddleware

api = FastAPI()

#: What each route answers: 1000 bytes whole, or 100 + 200 + 300 bytes streamed.
UPLOAD_ANSWER = b"r" * 1000
STREAM_CHUNKS = (b"a" * 100, b"b" * 200, b"c" * 300)


@api.post("/upload")
async def upload(request: Request) -> Response:
    await request.body()  # read whole, with or without a Content-Length
    return Response(UPLOAD_ANSWER, headers={"X-Pid": str(os.getpid())})


@api.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks():
        for chunk in STREAM_CHUNKS:
            yield chunk

    return StreamingResponse(chunks(), headers={"X-Pid": str(os.getpid())})


app = RedMiddleware(api)
