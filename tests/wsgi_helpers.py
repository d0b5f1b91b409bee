"""Calling WSGI apps in-process, the way a server would."""

from __future__ import annotations

import io
from typing import Any
from wsgiref.util import setup_testing_defaults


def environ_for(
    path: str = "/", method: str = "GET", host: str | None = "example.com", **extra: Any
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "wsgi.input": io.BytesIO(),
    }
    if host is not None:
        environ["HTTP_HOST"] = host
    environ.update(extra)
    setup_testing_defaults(environ)
    return environ


def call(
    app: Any, path: str = "/", method: str = "GET", **kwargs: Any
) -> tuple[str, list[tuple[str, str]], bytes]:
    """Calls `app` and consumes its body: (status, headers, body)."""
    environ = kwargs.pop("environ", None) or environ_for(path, method, **kwargs)
    started: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and started.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        started["status"], started["headers"] = status, headers
        return written.append

    body = app(environ, start_response)
    try:
        for chunk in body:
            started["sent"] = True
            written.append(chunk)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return started["status"], started["headers"], b"".join(written)
