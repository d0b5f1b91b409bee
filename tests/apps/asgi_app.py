"""A bare ASGI app (no framework), instrumented."""

from last9.asgi.middleware import RedMiddleware


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


app = RedMiddleware(app, program="bare-asgi")
