"""Type stubs for ``last9._core``, the Rust engine (crate ``last9-python``)."""

import os
import pathlib
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextvars import ContextVar
from os import PathLike
from typing import Any, Final, Self, final

__all__ = [
    "AsgiMiddleware",
    "Awaiting",
    "Body",
    "Exchange",
    "Exclusions",
    "MetricsEndpoint",
    "MetricsError",
    "MetricsServer",
    "Receive",
    "Recorder",
    "Registry",
    "RemoteWriter",
    "StartResponse",
    "WsgiMiddleware",
    "__version__",
    "enable_lineage",
    "enable_multiprocess",
    "global_registry",
    "lineage_enabled",
    "multiprocess_dir",
    "normalize_path",
    "route_template",
]

__version__: Final[str]

class MetricsError(ValueError):
    """Invalid metrics configuration (buckets, limits, environment variables)."""

@final
class Registry:
    """A set of recorders that one scrape renders. Lives as long as the process."""

    def __new__(cls) -> Self: ...
    def render(self, *, openmetrics: bool = False) -> bytes:
        """The exposition text: Prometheus 0.0.4, or OpenMetrics 1.0 (ending in ``# EOF``)."""
    def scrape(
        self, accept: str | None = None, accept_encoding: str | None = None
    ) -> tuple[str, str | None, bytes]:
        """Answers a scrape from its headers: ``(content_type, content_encoding, body)``,
        rendered with the GIL released and written once into the returned bytes."""
    def series_count(self) -> int:
        """Series recorded by this process (in multi-process mode, not the other workers')."""
    @property
    def is_global(self) -> bool:
        """Whether this is the process-wide registry (it sums the workers of a pre-fork server)."""

@final
class MetricsEndpoint:
    """The app's own metrics path: the registry, the path, and who may scrape it.

    Raises:
        MetricsError: a username without a password (or the reverse), a username with ``:``,
            a token with spaces, or a token together with a username and password.
    """

    def __new__(
        cls,
        registry: Registry,
        path: str = "/metrics",
        *,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        ui: bool = False,
    ) -> Self: ...
    def ui_route(self, path: str) -> bool | None:
        """Whether ``path`` asks for the live page (False: ``<path>/ui``) or its data (True:
        ``<path>/ui/data.json``); None for any other path, or when ``ui`` is off."""
    def respond_ui(
        self, authorization: str | None = None, data: bool = False, head: bool = False
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer to a GET (with ``head``, a HEAD) of the live page or, with ``data``, its
        JSON: ``(status, headers, body)``. 401 as :meth:`respond` without the credentials; 404
        when ``ui`` is off; 503 if the live view is busy. Computed with the GIL released."""
    def respond(
        self,
        authorization: str | None = None,
        accept: str | None = None,
        accept_encoding: str | None = None,
        head: bool = False,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The answer to a GET (with ``head``, a HEAD) of the path: ``(status, headers, body)``.

        401 with ``WWW-Authenticate`` unless ``authorization`` (the request's header) carries
        the credentials asked for; otherwise 200 with the exposition, its format and gzip chosen
        from ``accept`` and ``accept_encoding``. The render releases the GIL and writes the
        body once, into the returned bytes (a HEAD's body is empty, its Content-Length not)."""
    def allows(self, authorization: str | None = None) -> bool:
        """Whether a request with this ``Authorization`` header may scrape."""
    @property
    def path(self) -> str: ...
    @property
    def protected(self) -> bool:
        """Whether scrapes need credentials."""

def global_registry() -> Registry:
    """The process-wide registry that middlewares use by default."""

def enable_multiprocess(
    *, root_pid: int | None = None, directory: str | os.PathLike[str] | None = None
) -> pathlib.Path:
    """Enters multi-process mode for the global registry.

    Its series move, with their counts, to a file of this process in a directory shared by the
    server's processes, and its scrapes then sum every process. ``directory`` is made private
    (0700) if missing and must be owned by this user, writable by no one else, under parents no
    one else can change; otherwise it is the directory of the server instance whose root process
    is ``root_pid`` (this process when None), in the first private base directory. Calling it
    again returns the directory in use.

    Raises:
        OSError: the directory cannot be made, or another user owns or can write to it.
    """

def multiprocess_dir() -> pathlib.Path | None:
    """The directory shared by the server's processes; None in single-process mode."""

@final
class Exclusions:
    """The ``exclude`` setting, compiled once: route templates (``/static/{path}``), regular
    expressions on the raw path (``^/internal/``), methods (``OPTIONS``); and `unanchored`
    patterns (OpenTelemetry's excluded URLs) searched anywhere in the raw path.

    Raises:
        MetricsError: an entry that is none of these, naming `setting`.
    """

    def __new__(
        cls, entries: Sequence[str], unanchored: Sequence[str] = (), *, setting: str = ...
    ) -> Self: ...
    def on_entry(self, method: str, path: str) -> bool:
        """Whether a request is left out as it enters."""
    def template(self, template: str) -> bool:
        """Whether requests of this route template (``{param}`` form) are left out."""
    def __bool__(self) -> bool: ...

@final
class Recorder:
    """One application's recording settings (constant labels, buckets, limits, route syntax).

    Raises:
        MetricsError: invalid buckets, or the same constant labels already in use with other
            buckets.
        MetricsError: a ``domains`` entry (the allow-list) that is no host name, or more of
            them than ``max_domains``.
        MetricsError: both histogram kinds off, or a native schema outside -4..8, a bucket
            limit outside 1..4096, a negative or non-finite zero threshold.
        ValueError: an unknown ``route_syntax``.
    """

    def __new__(
        cls,
        registry: Registry,
        *,
        hostname: str,
        program: str,
        tenant: str = "",
        cluster: str = "",
        buckets: Sequence[float] | None = None,
        max_routes: int = 500,
        max_domains: int = 100,
        route_syntax: str | None = None,
        domains: Sequence[str] | None = None,
        classic_histograms: bool = True,
        native_histograms: bool = True,
        native_schema: int = 3,
        native_max_buckets: int = 160,
        native_zero_threshold: float = 2.938735877055719e-39,
        exclude: Exclusions | None = None,
        labels: Sequence[tuple[str, str]] = (),
        header_label: tuple[str, str] | None = None,
        header_label_values: Sequence[str] | None = None,
        header_label_max: int = 10,
        group_status: bool = False,
        semconv: str = "last9",
        app_label: tuple[str, Sequence[str] | None, int, ContextVar[list[str | None]]]
        | None = None,
        body_sizes: bool = False,
    ) -> Self:
        """`exclude`: requests left out of every family; `labels`: constant labels added to
        every family after the seed's; `header_label`: ``(label, header)`` read from each
        request into the duration family, bounded by `header_label_values` (an allow-list) or
        `header_label_max`, ``_other`` past it; `app_label`: ``(label, allow-list or None, cap,
        context variable)``, a label the app sets with ``last9.set_label`` (each request gets a
        ``[label, None]`` holder in its environ or scope and in the context variable);
        `group_status`: ``status`` is ``2xx``, ...; `semconv`: ``last9``, ``otel`` or ``dup``;
        `body_sizes`: the WSGI and ASGI middlewares record request and response body sizes in
        bytes.

        Raises:
            MetricsError: the same constant labels already in use with another request label or
                status grouping; both `header_label` and `app_label`.
        """
    def begin_request(self, carrier: dict[str, Any]) -> None:
        """Gives a request about to run its holder for ``last9.set_label`` (when the recorder
        has an `app_label`): `carrier` is the dict the recording reads (Django's
        ``request.META``, Falcon's ``req.env`` or ``req.scope``, Pyramid's environ)."""
    def excluded(self, method: str, path: str) -> bool:
        """Whether ``exclude`` leaves a request out as it enters (method or raw path)."""
    @property
    def excluding(self) -> bool:
        """Whether any request can be left out as it enters."""
    def register_routes(self, templates: list[str]) -> None:
        """Gives the route templates the app's router knows (framework syntax) their slots
        before any request; does nothing for an app without a router."""
    def observe(
        self,
        route: str | None,
        path: str,
        host: str | None,
        method: str,
        status: int,
        duration_ns: int,
        request_bytes: int | None = None,
        response_bytes: int | None = None,
    ) -> None:
        """Records one request; ``route`` is the framework's template, None when none matched.
        With ``body_sizes`` on, the body sizes in bytes too (None: unknown)."""
    def observe_environ(
        self,
        route: str | None,
        environ: dict[str, Any],
        status: int,
        duration_ns: int,
        response_bytes: int | None = None,
    ) -> None:
        """Records one request from a WSGI environ (or Django's ``request.META``): Host, method
        and, without a router, the path are read from it; with ``body_sizes`` on, the request's
        declared size and ``response_bytes`` too."""
    def observe_scope(
        self, route: str | None, scope: dict[str, Any], status: int, duration_ns: int
    ) -> None:
        """Records one request of an ASGI app; path, method and Host are read from ``scope``."""
    def observe_tornado(self, route: str | None, handler: Any) -> None:
        """Records one finished request of a Tornado app from its ``RequestHandler``: status,
        method, Host and the time since ``handler.request`` was read (wall clock)."""
    def enter(self, method: str) -> int:
        """Counts a request in ``http_requests_in_flight``; give the token to ``leave`` once."""
    def leave(self, token: int) -> None:
        """Ends the time in flight of the request ``enter`` returned ``token`` for."""
    def observe_client(
        self, per: str | None, upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """Records one outbound call of the route ``per`` (framework syntax; None: unmatched)."""
    def count_caller(self, per: str | None, caller: str | None, status: int = 0) -> None:
        """Counts one request of ``per`` from ``caller`` (None: ``unknown``) answered with
        ``status`` (0: none was sent); the counter keeps its class (``2xx``, ``5xx``)."""
    @property
    def body_sizes(self) -> bool:
        """Whether body sizes are recorded (hooks that record themselves ask it)."""
    @property
    def program(self) -> str: ...
    @property
    def hostname(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def cluster(self) -> str: ...
    @property
    def buckets(self) -> list[float]: ...

class WsgiMiddleware:
    """The WSGI hot path; subclassed by ``last9.wsgi.middleware.RedMiddleware``."""

    def __new__(
        cls,
        app: Callable[..., Any],
        recorder: Recorder,
        registry: Registry,
        route_getter: Callable[[dict[str, Any]], str | None] | None = None,
        metrics: MetricsEndpoint | None = None,
        route_source: tuple[str, tuple[str, ...]] | None = None,
        complete_bodies: tuple[type, ...] | None = None,
        route_at_start: bool = False,
        werkzeug: tuple[type, type] | None = None,
    ) -> Self:
        """``route_source=(key, attrs)``: the template is ``environ[key].attr1.attr2…``, read
        without a Python call (a ``last9.`` key is then removed; a framework's is left);
        ``route_getter(environ)`` is asked
        when a step gives None. ``complete_bodies``: body types recorded at once and passed on
        unwrapped, like lists. ``route_at_start``: the route is read when the app calls
        ``start_response`` (while the framework still holds its request). ``werkzeug``:
        ``(ClosingIterator, Response)``; a ``ClosingIterator`` body over a response rendered in
        full is recorded at once and passed on unwrapped."""
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any: ...
    def observe_client(
        self, environ: dict[str, Any], upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """Records an outbound call of ``environ``'s running request, under its route as known."""
    @property
    def app(self) -> Callable[..., Any]: ...
    @property
    def recorder(self) -> Recorder: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def metrics_path(self) -> str | None: ...
    @property
    def metrics(self) -> MetricsEndpoint | None:
        """The metrics path answered instead of reaching the app (GET and HEAD only)."""

@final
class StartResponse:
    """The ``start_response`` the app sees: notes the status, then calls the server's."""

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any: ...

@final
class Body:
    """A streamed response body, passed through; the request is recorded when it ends."""

    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

@final
class CountingInput:
    """``wsgi.input`` of a request without a Content-Length when ``body_sizes`` is on: the
    server's stream, counting the bytes the app reads; other attributes are the stream's."""

    def read(self, *args: Any, **kwargs: Any) -> bytes: ...
    def readline(self, *args: Any, **kwargs: Any) -> bytes: ...
    def readlines(self, *args: Any, **kwargs: Any) -> list[bytes]: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __next__(self) -> bytes: ...
    def __getattr__(self, name: str) -> Any: ...

class AsgiMiddleware:
    """The ASGI hot path; subclassed by ``last9.asgi.middleware.RedMiddleware``.

    ``__call__`` returns an :class:`Awaiting` over the app's coroutine rather than being a
    coroutine function itself. A subclass must define ``async def _serve_metrics(scope, send)``
    if ``metrics`` is set.
    """

    def __new__(
        cls,
        app: Callable[..., Any],
        recorder: Recorder,
        registry: Registry,
        route_getter: Callable[[dict[str, Any]], str | None] | None = None,
        metrics: MetricsEndpoint | None = None,
        route_cache: dict[int, Any] | None = None,
    ) -> Self:
        """``route_cache``: templates by ``id()`` of ``scope["route"]`` (else
        ``scope["endpoint"]``); a str there is used without calling ``route_getter``."""
    def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> Awaitable[None]: ...
    def observe_client(
        self, scope: dict[str, Any], upstream: str, method: str, status: str, duration_ns: int
    ) -> None:
        """Records an outbound call made while ``scope``'s request runs (``last9.lineage``)."""
    @property
    def app(self) -> Callable[..., Any]: ...
    @property
    def recorder(self) -> Recorder: ...
    @property
    def registry(self) -> Registry: ...
    @property
    def metrics_path(self) -> str | None: ...
    @property
    def metrics(self) -> MetricsEndpoint | None:
        """The metrics path answered instead of reaching the app (GET and HEAD only)."""

@final
class Exchange:
    """The ``send`` the app sees: notes the status, records on the last body message, and
    returns the server's ``send(message)`` awaitable."""

    def __call__(self, message: dict[str, Any]) -> Awaitable[None]: ...

@final
class Receive:
    """The ``receive`` the app sees: the server's, watched for ``http.disconnect``."""

    def __call__(self) -> Awaiting: ...

@final
class Awaiting:
    """Awaits an inner coroutine, passing everything through, and notes how it ended."""

    def __await__(self) -> Generator[Any, Any, Any]: ...
    def __iter__(self) -> Self: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any) -> Any: ...
    def throw(self, *args: Any) -> Any: ...
    def close(self) -> None: ...

@final
class MetricsServer:
    """A metrics HTTP server (hyper on one Rust thread; renders without the GIL).

    Raises:
        OSError: the address cannot be bound.
        MetricsError: half-given or conflicting credentials; TLS files that cannot be read or
            do not make a usable certificate and key (the message names the setting, e.g.
            ``LAST9_METRICS_TLS_CERT_FILE``).
    """

    def __new__(
        cls,
        registry: Registry,
        port: int,
        addr: str = "0.0.0.0",
        path: str = "/metrics",
        *,
        standby: bool = False,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        tls_cert_file: str | os.PathLike[str] | None = None,
        tls_key_file: str | os.PathLike[str] | None = None,
        tls_client_ca_file: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Serves ``registry`` on ``addr:port``. With ``standby``, a port in use is not an error:
        the server waits in the background and takes the port over once it is free (the
        workers of a pre-fork server share one metrics port this way). ``username`` and
        ``password`` (basic auth) or ``bearer_token`` are required of every scrape (401
        otherwise); ``tls_cert_file`` and ``tls_key_file`` (PEM) make it HTTPS, and
        ``tls_client_ca_file`` requires client certificates signed by that CA."""
    @property
    def port(self) -> int: ...
    @property
    def serving(self) -> bool:
        """Whether this server has its port (False while a standby server waits for it)."""
    @property
    def addr(self) -> str: ...
    def stop(self) -> None: ...

@final
class RemoteWriter:
    """Pushes a registry to a Prometheus remote-write receiver from a Rust thread.

    Every ``interval`` seconds the registry is snapshotted into snappy-compressed protobuf write
    requests and queued (at most ``max_pending`` snapshots; past that the oldest is dropped). The
    queue is sent in order; 5xx, 429 and network errors are retried with exponential backoff,
    other statuses are dropped. Messages go to the ``last9.remote_write`` logger. With
    ``native_histograms``, a histogram that keeps native buckets is pushed as a native histogram
    too, with its latest exemplar (the receiver must accept them: Prometheus needs its
    ``native-histograms`` feature).

    Raises:
        MetricsError: a bad URL, half-given or conflicting credentials, a non-positive
            interval, timeout or queue bound, or an unreadable ``ca_file``.
    """

    def __new__(
        cls,
        registry: Registry,
        url: str,
        *,
        interval: float = 15.0,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        max_pending: int = 20,
        timeout: float = 10.0,
        ca_file: str | PathLike[str] | None = None,
        native_histograms: bool = False,
        headers: Sequence[tuple[str, str]] = (),
        labels: Sequence[tuple[str, str]] = (),
    ) -> Self: ...
    def flush(self, timeout: float = 5.0) -> bool:
        """Takes a snapshot now and waits up to ``timeout`` seconds until the queue is sent.

        Returns:
            Whether the queue was emptied; False leaves the snapshot queued for later.
        """
    def stop(self, timeout: float = 5.0) -> bool:
        """Takes a last snapshot, sends the queue within ``timeout`` seconds and stops.

        Returns:
            Whether everything was delivered; what was not is counted in ``dropped_samples``.
        """
    @property
    def url(self) -> str:
        """The receiver's URL, without credentials."""
    @property
    def interval(self) -> float: ...
    @property
    def max_pending(self) -> int: ...
    @property
    def sent_samples(self) -> int:
        """Samples the receiver accepted."""
    @property
    def dropped_samples(self) -> int:
        """Samples given up on: rejected, pushed out of a full queue, or unsent at ``stop``."""
    @property
    def sent_requests(self) -> int: ...
    @property
    def failed_attempts(self) -> int:
        """Attempts that failed and were retried."""
    @property
    def snapshots(self) -> int:
        """Snapshots taken so far."""
    @property
    def pending(self) -> int:
        """Snapshots waiting to be sent."""

def enable_lineage() -> None:
    """Middlewares count callers and publish the running request to outbound clients."""

def lineage_enabled() -> bool:
    """Whether ``enable_lineage`` was called."""

def normalize_path(path: str) -> str:
    """A raw URL path with ids collapsed (``/user/123`` → ``/user/{id}``)."""

def route_template(template: str, syntax: str) -> str:
    """A framework's route template in ``{param}`` form (``/item/<int:id>`` → ``/item/{id}``).

    ``syntax`` is one of "angle", "angle_name_first", "brace", "regex" or "django" (a Django
    ``ResolverMatch.route``: path() and re_path() parts, given a leading ``/``).
    """

def start_runtime_metrics(
    gc_stats: list[tuple[int, int, int]],
    python_info: list[tuple[str, str]],
    service_version: str,
) -> None:
    """Starts the runtime families of the global registry's scrapes: the GC counters from
    ``gc.get_stats()`` (collections, collected, uncollectable per generation), ``python_info``'s
    labels and the app's version (``last9_info``)."""

def gc_callback(phase: str, info: dict[str, int]) -> None:
    """A ``gc.callbacks`` hook: counts each finished collection."""

def set_prometheus_client_source(render: Callable[[bool], bytes] | None) -> None:
    """Sets the callable that renders prometheus_client's families (``render(openmetrics)``,
    without ``# EOF``) for the global registry's scrapes; None removes it."""
