"""A bare ASGI app for `uvicorn --workers`: the one instrumentation line and no other set-up."""

import os

from last9.asgi.middleware import RedMiddleware


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


app = RedMiddleware(hello, program="prefork-asgi")
