"""Runtime metrics: hands the Rust core what only the interpreter knows, once.

``process_*`` are read from ``/proc`` in Rust at scrape time, for this process or, under a
pre-fork server, every live worker and the master. The garbage collector's counts are known
only to the interpreter: a ``gc.callbacks`` hook adds each collection's to counters in Rust (a
few hundred nanoseconds per collection, none per request), which a pre-fork worker also writes
into its worker-slot file for the others' scrapes.
"""

from __future__ import annotations

import gc
import os
import platform

from last9._core import gc_callback, start_runtime_metrics

_installed: list[bool] = []


def service_version(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The app's version: ``LAST9_SERVICE_VERSION``, else ``OTEL_SERVICE_VERSION``, else ''."""
    env = os.environ if environ is None else environ
    return env.get("LAST9_SERVICE_VERSION") or env.get("OTEL_SERVICE_VERSION") or ""


def install() -> None:
    """Starts the runtime metrics of this process (idempotent)."""
    if _installed:
        return
    _installed.append(True)
    major, minor, patchlevel = platform.python_version_tuple()
    python_info = [
        ("implementation", platform.python_implementation()),
        ("major", major),
        ("minor", minor),
        ("patchlevel", patchlevel),
        ("version", platform.python_version()),
    ]
    # The hook first: a collection in between is then in both, and the seed overwrites.
    gc.callbacks.append(gc_callback)
    stats = [(s["collections"], s["collected"], s["uncollectable"]) for s in gc.get_stats()]
    start_runtime_metrics(stats, python_info, service_version())
