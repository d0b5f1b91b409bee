"""The dedicated metrics server: a Rust thread that renders without the GIL."""

from __future__ import annotations

import os

from last9._core import MetricsServer, Registry, global_registry, multiprocess_dir
from last9.config import MetricsAuth, MetricsTls
from last9.per_process import PerProcess

#: The server this process started from LAST9_METRICS_PORT (a forked child starts its own).
_from_env: PerProcess[MetricsServer] = PerProcess()


def start_metrics_server(
    port: int,
    addr: str = "0.0.0.0",
    *,
    registry: Registry | None = None,
    path: str = "/metrics",
    username: str | None = None,
    password: str | None = None,
    bearer_token: str | None = None,
    tls_cert_file: str | os.PathLike[str] | None = None,
    tls_key_file: str | os.PathLike[str] | None = None,
    tls_client_ca_file: str | os.PathLike[str] | None = None,
) -> MetricsServer:
    """Serves the metrics on ``addr:port`` from a background Rust thread.

    ``port=0`` picks a free port; the returned server's ``port`` tells which. With ``username``
    and ``password`` (basic auth) or ``bearer_token``, a scrape without them gets 401. With
    ``tls_cert_file`` and ``tls_key_file`` (PEM) the server speaks HTTPS only; with
    ``tls_client_ca_file`` too, every client must present a certificate signed by that CA.

    Raises:
        OSError: the address cannot be bound.
        MetricsError: half-given or conflicting credentials, unreadable or unusable TLS files.
    """
    return MetricsServer(
        registry or global_registry(),
        port,
        addr,
        path,
        username=username,
        password=password,
        bearer_token=bearer_token,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        tls_client_ca_file=tls_client_ca_file,
    )


def start_from_env(
    port: int | None,
    addr: str,
    registry: Registry,
    auth: MetricsAuth | None = None,
    tls: MetricsTls | None = None,
) -> MetricsServer | None:
    """Starts the server LAST9_METRICS_PORT asks for, once per process, protected as
    ``auth`` and ``tls`` (the resolved LAST9_METRICS_* settings) say.

    With several workers (multi-process mode, global registry) the first worker to bind the port
    serves it, for all of them; the others stand by and take the port over if it comes free.
    """
    if port is None:
        return None
    auth = auth or MetricsAuth()
    return _from_env.get(
        lambda: MetricsServer(
            registry,
            port,
            addr,
            standby=registry.is_global and multiprocess_dir() is not None,
            username=auth.username,
            password=auth.password,
            bearer_token=auth.bearer_token,
            tls_cert_file=tls.cert_file if tls else None,
            tls_key_file=tls.key_file if tls else None,
            tls_client_ca_file=tls.client_ca_file if tls else None,
        )
    )


def stop_from_env() -> None:
    """Stops the server this process started from LAST9_METRICS_PORT, if any (a Werkzeug
    reloader parent hands the port to the child that serves)."""
    started = _from_env.pop()
    if started is not None:
        started.stop()
