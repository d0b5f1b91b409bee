"""A Starlette app instrumented with one line. Run: uvicorn --app-dir examples starlette_app:app"""

from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from last9.asgi.middleware import RedMiddleware


async def hello_world(request):
    return HTMLResponse(f"<p>Hello, {request.path_params['name']}!</p>")


async def hello_static(request):
    return HTMLResponse("<p>Static</p>")


app = Starlette(routes=[Route("/name/{name}", hello_world), Route("/static", hello_static)])

# Only line that needs to be changed (or: app.add_middleware(RedMiddleware))
app = RedMiddleware(app)
