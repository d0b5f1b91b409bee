"""prometheus_client, both ways.

- last9's scrapes (the app's own path and the dedicated port, every format) also carry what
  prometheus_client holds: its default registry, or, when ``PROMETHEUS_MULTIPROC_DIR`` is set,
  its multiprocess collector's sum over every worker. Off with ``serve_prometheus_client=False``
  or ``LAST9_PROMETHEUS_CLIENT=0``. prometheus_client's own process, platform and GC collectors
  are left out: last9 serves those families itself, for every worker.
- :class:`Last9Collector` goes the other way: registered with a prometheus_client registry, it
  puts last9's families into an endpoint prometheus_client already serves (``make_wsgi_app``,
  ``start_http_server``).

A family that both would serve is a start-up error (:func:`check_collisions`); one that appears
later is left out of the scrape with a warning rather than break it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from last9._core import MetricsError, global_registry, set_prometheus_client_source

_logger = logging.getLogger("last9")

#: Families last9 serves (a counter by its name without ``_total``).
LAST9_FAMILIES = frozenset(
    {
        "http_requests_duration_milliseconds",
        "http_requests_in_flight",
        "http_client_requests_duration_milliseconds",
        "http_requests_callers",
        "last9_label_overflow",
        "last9_store_degraded",
        "last9_info",
        "last9_worker_starts",
        "last9_worker_exits",
    }
)
#: The runtime families, which prometheus_client's default collectors serve under the same names.
RUNTIME_FAMILIES = frozenset(
    {
        "process_cpu_seconds",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "python_gc_objects_collected",
        "python_gc_objects_uncollectable",
        "python_gc_collections",
        "python_info",
    }
)

#: Set while last9 renders prometheus_client's families, so that a Last9Collector registered
#: with the same registry does not render last9 into itself.
_rendering = threading.local()
_warned: set[str] = set()


def _registry() -> Any | None:
    """The registry to serve: None unless the app uses prometheus_client."""
    if "prometheus_client" not in sys.modules:
        return None  # an app that never imported it has nothing there
    import prometheus_client

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prometheus_client.REGISTRY


def _families(registry: Any) -> Iterator[Any]:
    _rendering.active = True
    try:
        yield from registry.collect()
    finally:
        _rendering.active = False


def serve(enabled: bool) -> None:
    """Makes the global registry's scrapes carry prometheus_client's families, or not.

    Raises:
        MetricsError: prometheus_client already holds a family that last9 serves.
    """
    if enabled:
        check_collisions()
        set_prometheus_client_source(render)
    else:
        set_prometheus_client_source(None)


def check_collisions() -> None:
    """Raises ``MetricsError`` when prometheus_client holds a family last9 serves too."""
    registry = _registry()
    if registry is None:
        return
    taken = sorted(f.name for f in _families(registry) if f.name in LAST9_FAMILIES)
    if taken:
        raise MetricsError(
            f"prometheus_client and last9 both serve {', '.join(taken)}: rename the app's "
            "metric, or set serve_prometheus_client=False (LAST9_PROMETHEUS_CLIENT=0)"
        )


def render(openmetrics: bool) -> bytes:
    """prometheus_client's families, in the scrape's format, without OpenMetrics' ``# EOF``;
    empty when the app does not use prometheus_client. Never raises: a failing collector costs
    its families, with a warning, not the scrape."""
    try:
        registry = _registry()
        if registry is None:
            return b""
        from prometheus_client import CollectorRegistry

        if openmetrics:
            from prometheus_client.openmetrics.exposition import generate_latest
        else:
            from prometheus_client.exposition import generate_latest
        families = list(_served(_families(registry)))
        if not families:
            return b""
        view = CollectorRegistry(auto_describe=False)
        view.register(_Fixed(families))
        text = generate_latest(view)
        return text.removesuffix(b"# EOF\n") if openmetrics else text
    except Exception as error:  # a broken collector must not break last9's scrape
        _warn_once("render", f"last9: prometheus_client's metrics left out of the scrape: {error}")
        return b""


def _served(families: Iterable[Any]) -> Iterator[Any]:
    for family in families:
        if family.name in RUNTIME_FAMILIES:
            continue  # last9 serves these itself, for every worker
        if family.name in LAST9_FAMILIES:
            _warn_once(
                family.name,
                f"last9: prometheus_client's {family.name} left out: last9 serves that family",
            )
            continue
        yield family


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        _logger.warning(message)


class _Fixed:
    """A collector that hands back families already collected."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


class Last9Collector:
    """last9's families for a prometheus_client registry::

        from prometheus_client import REGISTRY
        REGISTRY.register(Last9Collector())

    ``runtime=False`` (the default) leaves out the ``process_*``/``python_*`` families, which
    prometheus_client's default registry already has; pass ``runtime=True`` for a registry of
    your own.
    """

    def __init__(self, registry: Any = None, *, runtime: bool = False) -> None:
        self._registry = registry
        self._runtime = runtime

    def describe(self) -> list[Any]:
        # Names are not known before the first request; an empty description also keeps
        # prometheus_client from collecting at registration.
        return []

    def collect(self) -> Iterator[Any]:
        if getattr(_rendering, "active", False):
            return  # last9 is rendering prometheus_client into its own scrape
        from prometheus_client.parser import text_string_to_metric_families

        text = (self._registry or global_registry()).render().decode()
        for family in text_string_to_metric_families(text):
            if self._runtime or family.name not in RUNTIME_FAMILIES:
                yield family
