"""The issue's ASGI app (granian, hypercorn): a prometheus_client counter of its own beside
last9's one line."""

import os

from prometheus_client import Counter

from last9.asgi.middleware import RedMiddleware

ORDERS = Counter("app_orders", "Orders taken by the app", ["kind"])


async def orders(scope, receive, send):
    if scope["type"] != "http":
        return
    ORDERS.labels(kind=scope["path"].rsplit("/", 1)[-1]).inc()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"x-pid", str(os.getpid()).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


app = RedMiddleware(orders, program="onescrape-asgi")
