"""A Flask app with known body sizes (LAST9_BODY_SIZES), for gunicorn -w 2."""

import os

from flask import Flask, Response, request

from last9.wsgi.middleware import RedMiddleware

app = Flask("bodies", static_folder=None)

#: What each route answers: 1000 bytes whole, or 100 + 200 + 300 bytes streamed.
UPLOAD_ANSWER = b"r" * 1000
STREAM_CHUNKS = (b"a" * 100, b"b" * 200, b"c" * 300)


@app.post("/upload")
def upload():
    request.get_data()  # read whole, with or without a Content-Length
    return Response(UPLOAD_ANSWER, headers={"X-Pid": str(os.getpid())})


@app.get("/stream")
def stream():
    return Response(iter(STREAM_CHUNKS), headers={"X-Pid": str(os.getpid())})


app.wsgi_app = RedMiddleware(app)
