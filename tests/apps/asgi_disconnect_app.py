"""A bare ASGI app whose handlers take a while, one reading ``receive()`` meanwhile, one not."""

import asyncio

from last9.asgi.middleware import RedMiddleware


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/listens":
        # Works until the client goes away: uvicorn reports that as `http.disconnect`.
        while (await receive())["type"] != "http.disconnect":
            pass
    else:
        await asyncio.sleep(0.3)  # /ignores: never reads, so never hears of the disconnect
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


app = RedMiddleware(_app, program="disconnects")
