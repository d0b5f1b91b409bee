"""Lineage: who calls whom, from metrics, without a mesh proxy.

``instrument_http_clients()`` (or ``LAST9_INSTRUMENT_HTTP_CLIENTS=1``) patches the outbound
calls of ``urllib3`` (hence ``requests``), ``httpx`` (sync and async) and ``aiohttp``, for those
of them that are installed. Each call is recorded in ``http_client_requests_duration_milliseconds``
under ``upstream`` (host[:port]), ``method``, ``status`` (or ``timeout``/``connection_error``/
``error`` when no response came) and ``per``, the inbound route that made the call; and carries
the caller's ``program`` in the ``x-last9-caller`` header, which the middlewares count, with
Envoy's ``x-envoy-downstream-service-cluster``, in ``http_requests_callers_total``.

``per`` is resolved when the outbound call completes, from the request that runs in this
context (the middlewares publish it in ``_inbound``): routers have matched by then. Calls made
outside any request are not recorded (they have no route, and no app's labels to go under).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Callable
from typing import Any

from last9._core import Recorder, enable_lineage, lineage_enabled

#: Header that instrumented clients send, naming the calling program.
CALLER_HEADER = "x-last9-caller"
#: Envoy's header naming the calling service, counted when no ``x-last9-caller`` came.
ENVOY_CALLER_HEADER = "x-envoy-downstream-service-cluster"

#: The request running in this context: ``(middleware, environ or scope)``, or None. A middleware
#: here has ``observe_client(request, upstream, method, status, duration_ns)`` and ``recorder``.
_inbound: contextvars.ContextVar[tuple[Any, Any] | None] = contextvars.ContextVar(
    "last9_inbound", default=None
)

_in_urlopen: contextvars.ContextVar[bool] = contextvars.ContextVar("last9_urlopen", default=False)
_patched: set[str] = set()
#: The program named in outbound headers outside a request: the last middleware's.
_program: list[str] = []


def begin(owner: Any, request: Any, recorder: Recorder, method: str | None) -> int:
    """For a framework's own hook (Django's MIDDLEWARE entry, Falcon's component), as the WSGI
    and ASGI wrappers do in Rust: counts the request in ``http_requests_in_flight`` and, with
    lineage on, publishes it to outbound clients (``owner.observe_client(request, ...)``).
    Returns the token :func:`end` takes."""
    token = recorder.enter(method or "")
    if lineage_enabled():
        _inbound.set((owner, request))
    return token


def end(
    recorder: Recorder, token: int, per: str | None, caller: str | None, status: int = 0
) -> None:
    """The request of :func:`begin` is over: out of flight, and (lineage on) its caller counted
    under its route ``per`` (framework syntax; None: unmatched) and the class of ``status``."""
    recorder.leave(token)
    if lineage_enabled():
        _inbound.set(None)
        recorder.count_caller(per, caller, status)


def publish(owner: Any, request: Any) -> contextvars.Token[tuple[Any, Any] | None] | None:
    """With lineage on, makes `request` (served by `owner`, as for :func:`begin`) the one that
    outbound calls in this context, and in tasks created from it, are made for, until
    :func:`unpublish` is given the result. For hooks that can end it in the same call."""
    return _inbound.set((owner, request)) if lineage_enabled() else None


def unpublish(published: contextvars.Token[tuple[Any, Any] | None] | None) -> None:
    """Undoes :func:`publish` in the context it was made in."""
    if published is not None:
        _inbound.reset(published)


def note_program(program: str) -> None:
    """Called by middlewares: the program outbound calls name when outside a request."""
    _program[:] = [program]


def instrument_from_env() -> None:
    """Instruments HTTP clients when ``LAST9_INSTRUMENT_HTTP_CLIENTS`` is set to 1/true/yes."""
    if os.environ.get("LAST9_INSTRUMENT_HTTP_CLIENTS", "").strip().lower() in ("1", "true", "yes"):
        instrument_http_clients()


def instrument_http_clients() -> list[str]:
    """Patches the installed HTTP clients (idempotent); returns the ones patched so far.
    With ``LAST9_DISABLED=1`` nothing is patched."""
    from last9 import config

    if not config.enabled():
        return []
    enable_lineage()
    for name, patch in (
        ("urllib3", _patch_urllib3),
        ("httpx", _patch_httpx),
        ("aiohttp", _patch_aiohttp),
    ):
        if name in _patched:
            continue
        try:
            patch()
        except ImportError:
            continue
        _patched.add(name)
    return sorted(_patched)


def _caller() -> str | None:
    inbound = _inbound.get()
    if inbound is not None:
        return str(inbound[0].recorder.program)
    return _program[0] if _program else None


def _upstream(host: str | None, port: int | None, scheme: str | None) -> str:
    host = (host or "").lower()
    default = {"http": 80, "https": 443}.get(scheme or "")
    return host if port is None or port == default else f"{host}:{port}"


def _record(upstream: str, method: str, status: str, started: int) -> None:
    inbound = _inbound.get()
    if inbound is None:
        return
    owner, request = inbound
    # Never let metrics break the app's call.
    with contextlib.suppress(Exception):
        owner.observe_client(
            request, upstream, method.upper(), status, time.perf_counter_ns() - started
        )


def _error_kind(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError wraps the real failure
    if isinstance(reason, BaseException):
        exc = reason
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return "timeout"
    if "connect" in name or isinstance(exc, ConnectionError):
        return "connection_error"
    return "error"


def _patch_urllib3() -> None:
    from urllib3.connectionpool import HTTPConnectionPool

    original: Callable[..., Any] = HTTPConnectionPool.urlopen
    if getattr(original, "_last9", False):
        return

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if _in_urlopen.get():  # urllib3's own retries and redirects: one call, recorded once
            return original(self, method, url, *args, **kwargs)
        headers = kwargs.get("headers")
        caller = _caller()
        if caller is not None:
            headers = dict(headers or getattr(self, "headers", None) or {})
            headers.setdefault(CALLER_HEADER, caller)
            kwargs["headers"] = headers
        started = time.perf_counter_ns()
        upstream = _upstream(self.host, self.port, self.scheme)
        outer = _in_urlopen.set(True)
        try:
            response = original(self, method, url, *args, **kwargs)
        except BaseException as exc:
            _record(upstream, method, _error_kind(exc), started)
            raise
        finally:
            _in_urlopen.reset(outer)
        _record(upstream, method, str(response.status), started)
        return response

    urlopen._last9 = True  # type: ignore[attr-defined]
    HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]


def _patch_httpx() -> None:
    import httpx

    sync_original: Callable[..., Any] = httpx.HTTPTransport.handle_request
    async_original: Callable[..., Any] = httpx.AsyncHTTPTransport.handle_async_request
    if getattr(sync_original, "_last9", False):
        return

    def prepare(request: Any) -> str:
        caller = _caller()
        if caller is not None and CALLER_HEADER not in request.headers:
            request.headers[CALLER_HEADER] = caller
        url = request.url
        return _upstream(url.host, url.port, url.scheme)

    def handle_request(self: Any, request: Any) -> Any:
        upstream = prepare(request)
        started = time.perf_counter_ns()
        try:
            response = sync_original(self, request)
        except BaseException as exc:
            _record(upstream, request.method, _error_kind(exc), started)
            raise
        _record(upstream, request.method, str(response.status_code), started)
        return response

    async def handle_async_request(self: Any, request: Any) -> Any:
        upstream = prepare(request)
        started = time.perf_counter_ns()
        try:
            response = await async_original(self, request)
        except BaseException as exc:
            _record(upstream, request.method, _error_kind(exc), started)
            raise
        _record(upstream, request.method, str(response.status_code), started)
        return response

    handle_request._last9 = True  # type: ignore[attr-defined]
    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


def _patch_aiohttp() -> None:
    import aiohttp

    original: Callable[..., Any] = aiohttp.ClientSession._request
    if getattr(original, "_last9", False):
        return

    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        caller = _caller()
        if caller is not None:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault(CALLER_HEADER, caller)
            kwargs["headers"] = headers
        url = aiohttp.client.URL(str_or_url) if isinstance(str_or_url, str) else str_or_url
        if self._base_url is not None and not url.is_absolute():
            url = self._base_url.join(url)
        upstream = _upstream(url.host, url.explicit_port, url.scheme)
        started = time.perf_counter_ns()
        try:
            response = await original(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            _record(upstream, method, _error_kind(exc), started)
            raise
        _record(upstream, method, str(response.status), started)
        return response

    _request._last9 = True  # type: ignore[attr-defined]
    aiohttp.ClientSession._request = _request  # type: ignore[method-assign]
