"""Pushing with Prometheus remote write: configuration glue for the Rust sender.

The sender (``last9._core.RemoteWriter``) runs on a Rust thread: it snapshots the registry every
``interval`` seconds, queues the compressed write requests and sends them with retries, never
touching a request's thread. This module reads the ``LAST9_REMOTE_WRITE_*`` settings and makes
sure the last snapshot is sent when the interpreter exits.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from last9._core import MetricsError, Registry, RemoteWriter, global_registry, multiprocess_dir
from last9.per_process import PerProcess

#: How long the exit hook waits for the last snapshot to be delivered, in seconds.
EXIT_TIMEOUT = 5.0
DEFAULT_INTERVAL = 15.0
DEFAULT_MAX_PENDING = 20
DEFAULT_TIMEOUT = 10.0

#: The lock file, in the shared directory, whose holder pushes for all workers.
REMOTE_WRITE_LOCK = "remote-write.lock"

#: The writer this process started from LAST9_REMOTE_WRITE_URL (a forked child starts its own);
#: None while the process stands by for another worker.
_from_env: PerProcess[RemoteWriter | None] = PerProcess()


def start_remote_write(
    url: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    username: str | None = None,
    password: str | None = None,
    bearer_token: str | None = None,
    registry: Registry | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    timeout: float = DEFAULT_TIMEOUT,
    ca_file: str | os.PathLike[str] | None = None,
    exit_timeout: float = EXIT_TIMEOUT,
    native_histograms: bool = False,
    headers: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> RemoteWriter:
    """Pushes the metrics of ``registry`` (the global one by default) to a remote-write receiver.

    ``url`` is the receiver's endpoint, e.g. ``http://prometheus:9090/api/v1/write``. Credentials
    are basic auth (``username`` and ``password``, or ``https://user:pass@host/...``) or a
    ``bearer_token``. Every ``interval`` seconds a snapshot is queued; at most ``max_pending``
    snapshots wait while the receiver is unreachable, the oldest being dropped (and counted in
    ``dropped_samples``) past that. ``timeout`` bounds each HTTP request; ``ca_file`` is a PEM
    bundle to trust instead of the usual public roots. At interpreter exit a last snapshot is
    sent, waiting at most ``exit_timeout`` seconds. ``native_histograms`` pushes native
    histograms (and their exemplars) too: only for a receiver that takes them (Prometheus with
    ``--enable-feature=native-histograms``; without it, it refuses the whole request).
    ``headers`` go with every request (e.g.
    ``{"X-Scope-OrgID": "team-a"}`` for Mimir or Cortex); ``labels`` are added to every series
    that lacks them (e.g. ``{"job": "api", "instance": "web-1"}``, what a scrape would add).

    Raises ``MetricsError`` for settings that cannot work.
    """
    if max_pending < 1:
        raise MetricsError(
            f"invalid remote write settings: max_pending must be at least 1, not {max_pending}"
        )
    writer = RemoteWriter(
        registry or global_registry(),
        url,
        interval=interval,
        username=username,
        password=password,
        bearer_token=bearer_token,
        max_pending=max_pending,
        timeout=timeout,
        ca_file=ca_file,
        native_histograms=native_histograms,
        headers=list((headers or {}).items()),
        labels=list((labels or {}).items()),
    )
    atexit.register(writer.stop, exit_timeout)
    return writer


def start_from_env(
    registry: Registry, environ: Mapping[str, str] | None = None
) -> RemoteWriter | None:
    """Starts the writer LAST9_REMOTE_WRITE_URL asks for, once per process.

    With several workers (multi-process mode, global registry) every worker sees the merged
    totals, so one of them is enough: the first to take the leader lock pushes for all, and the
    others stand by, taking over if it dies. Returns the writer if this process pushes now.
    """
    env = os.environ if environ is None else environ
    url = env.get("LAST9_REMOTE_WRITE_URL", "").strip()
    if not url:
        return None

    def start() -> RemoteWriter:
        try:
            return start_remote_write(
                url,
                username=env.get("LAST9_REMOTE_WRITE_USERNAME") or None,
                password=env.get("LAST9_REMOTE_WRITE_PASSWORD") or None,
                bearer_token=env.get("LAST9_REMOTE_WRITE_BEARER_TOKEN") or None,
                interval=_seconds(env, "LAST9_REMOTE_WRITE_INTERVAL", DEFAULT_INTERVAL),
                max_pending=_count(env, "LAST9_REMOTE_WRITE_MAX_PENDING", DEFAULT_MAX_PENDING),
                timeout=_seconds(env, "LAST9_REMOTE_WRITE_TIMEOUT", DEFAULT_TIMEOUT),
                ca_file=env.get("LAST9_REMOTE_WRITE_CA_FILE") or None,
                native_histograms=_flag(env, "LAST9_REMOTE_WRITE_NATIVE_HISTOGRAMS"),
                headers=_pairs(env, "LAST9_REMOTE_WRITE_HEADERS"),
                labels=_pairs(env, "LAST9_REMOTE_WRITE_LABELS"),
                registry=registry,
            )
        except MetricsError as err:
            raise MetricsError(f"{err} (from the LAST9_REMOTE_WRITE_* settings)") from None

    def start_or_stand_by() -> RemoteWriter | None:
        shared_dir = multiprocess_dir()
        if not (registry.is_global and shared_dir is not None):
            return start()
        # Settings are checked now, so a mistake fails at start-up in every worker.
        start().stop(0)
        lead_when_possible(Path(shared_dir) / REMOTE_WRITE_LOCK, lambda: _from_env.replace(start()))
        return None

    return _from_env.get(start_or_stand_by)


def lead_when_possible(lock_path: Path, lead: Callable[[], object], retry: float = 1.0) -> None:
    """Calls `lead` once this process holds the lock at `lock_path`: at once if it is free (so
    `lead`'s errors reach the caller), else from a thread that tries every `retry` seconds.

    POSIX record locks belong to a process: the kernel drops them when it dies, however it
    dies, and a forked child does not inherit them, so exactly one live process leads. The file
    stays open for the life of the process, which keeps the lock.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)

    def try_lock() -> bool:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    if try_lock():
        lead()
        return

    def stand_by() -> None:
        while not try_lock():
            time.sleep(retry)
        lead()

    threading.Thread(target=stand_by, name="last9-remote-write-standby", daemon=True).start()


def _pairs(env: Mapping[str, str], name: str) -> dict[str, str]:
    """``Name=value,Name=value`` (spaces around each part ignored) as a dict."""
    pairs: dict[str, str] = {}
    for part in env.get(name, "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise MetricsError(f"{name} must be Name=value pairs separated by commas, not {part!r}")
        pairs[key.strip()] = value.strip()
    return pairs


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MetricsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise MetricsError(f"{name} must be a positive number of seconds, not {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MetricsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise MetricsError(f"{name} must be at least 1, not {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise MetricsError(f"{name} must be one of 1/0, true/false, yes/no, on/off, not {raw!r}")
