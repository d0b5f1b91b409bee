"""A FastAPI app instrumented with one line. Run: uvicorn --app-dir examples fastapi_app:app"""

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from last9.asgi.middleware import RedMiddleware

app = FastAPI()

# Only line that needs to be changed
app.add_middleware(RedMiddleware)


@app.get("/name/{name}", response_class=HTMLResponse)
async def hello_world(name: str):
    return f"<p>Hello, {name}!</p>"


@app.get("/static", response_class=HTMLResponse)
async def hello_static():
    return "<p>Static</p>"
