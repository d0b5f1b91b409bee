"""What every way of instrumenting an app does once, at start-up.

The WSGI and ASGI middlewares and the frameworks' own hooks (Django's MIDDLEWARE entry,
Pyramid's tween, Falcon's component, Tornado's ``instrument``) all resolve settings, pick the
registry, make the app's recorder and start what the ``LAST9_*`` variables ask for here, so
they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from last9 import config, lineage, prefork, remote_write, server
from last9._core import Recorder, Registry, global_registry


@dataclass(frozen=True)
class Instrumented:
    """An app's resolved settings, the registry it records into, and its recorder."""

    settings: config.Settings
    registry: Registry
    recorder: Recorder


def instrument_app(
    *,
    route_syntax: str | None,
    program_hint: str | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> Instrumented:
    """Sets up recording for one app; `options` are RedMiddleware's keyword arguments.

    Raises:
        MetricsError: a setting that cannot work (bad buckets, a bad ``LAST9_*`` value).
    """
    settings = config.resolve(program_hint=program_hint, **options)
    if registry is None:
        prefork.activate()  # usually done at import; the app may have imported last9 early
        registry = global_registry()
    recorder = Recorder(
        registry,
        hostname=settings.hostname,
        program=settings.program,
        tenant=settings.tenant,
        cluster=settings.cluster,
        buckets=list(settings.buckets) if settings.buckets is not None else None,
        max_routes=settings.max_routes,
        max_domains=settings.max_domains,
        route_syntax=route_syntax,
    )
    server.start_from_env(
        settings.metrics_port,
        settings.metrics_addr,
        registry,
        settings.metrics_auth,
        settings.metrics_tls,
    )
    remote_write.start_from_env(registry)
    lineage.note_program(recorder.program)
    lineage.instrument_from_env()
    return Instrumented(settings, registry, recorder)
