"""The dedicated metrics server: a Rust thread that renders without the GIL."""

from __future__ import annotations

import os
import threading

from last9._core import MetricsServer, Registry, global_registry, multiprocess_dir

_lock = threading.Lock()
#: Servers this process started from LAST9_METRICS_PORT, by pid (a forked child starts its own).
_from_env: dict[int, MetricsServer] = {}


def start_metrics_server(
    port: int, addr: str = "0.0.0.0", *, registry: Registry | None = None, path: str = "/metrics"
) -> MetricsServer:
    """Serves the metrics on ``addr:port`` from a background Rust thread.

    ``port=0`` picks a free port; the returned server's ``port`` tells which. Raises ``OSError``
    when the address cannot be bound.
    """
    return MetricsServer(registry or global_registry(), port, addr, path)


def start_from_env(port: int | None, addr: str, registry: Registry) -> MetricsServer | None:
    """Starts the server LAST9_METRICS_PORT asks for, once per process.

    With several workers (multi-process mode, global registry) the first worker to bind the port
    serves it, for all of them; the others stand by and take the port over if it comes free.
    """
    if port is None:
        return None
    with _lock:
        pid = os.getpid()
        if pid not in _from_env:
            standby = registry.is_global and multiprocess_dir() is not None
            _from_env[pid] = MetricsServer(registry, port, addr, standby=standby)
        return _from_env[pid]


def stop_from_env() -> None:
    """Stops the server this process started from LAST9_METRICS_PORT, if any (a Werkzeug
    reloader parent hands the port to the child that serves)."""
    with _lock:
        started = _from_env.pop(os.getpid(), None)
    if started is not None:
        started.stop()
