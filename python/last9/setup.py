"""What every way of instrumenting an app does once, at start-up.

The WSGI and ASGI middlewares and the frameworks' own hooks (Django's MIDDLEWARE entry,
Pyramid's tween, Falcon's component, Tornado's ``instrument``) all resolve settings, pick the
registry, make the app's recorder and start what the ``LAST9_*`` variables ask for here, so
they cannot drift apart.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from last9 import (
    config,
    labels,
    lineage,
    prefork,
    promclient,
    remote_write,
    runtime,
    scrape,
    server,
)
from last9._core import (
    Exclusions,
    MetricsEndpoint,
    Recorder,
    Registry,
    global_registry,
    route_template,
)


@dataclass(frozen=True)
class Instrumented:
    """An app's resolved settings, the registry it records into, its recorder, and its own
    metrics path (None when ``metrics_path`` is off)."""

    settings: config.Settings
    registry: Registry
    recorder: Recorder
    metrics: MetricsEndpoint | None


def instrument_app(
    *,
    route_syntax: str | None,
    program_hint: str | None = None,
    registry: Registry | None = None,
    route_templates: Callable[[], Iterable[str]] | None = None,
    excluded_views: Callable[[], Iterable[str]] | None = None,
    framework: str | None = None,
    **options: Any,
) -> Instrumented:
    """Sets up recording for one app; `options` are the settings (:class:`config.Options`),
    `route_templates` lists the templates the app's router knows (they get their slots first),
    `excluded_views` those whose view carries ``@last9.exclude``, and `framework` names the
    framework as OpenTelemetry's ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS`` does.
    Entry points ask :func:`switched_off` before calling this.

    Raises:
        TypeError: a keyword that is no setting.
        MetricsError: a setting that cannot work (bad buckets, a bad ``LAST9_*`` value).
    """
    config.check_options(options)
    settings = config.resolve(program_hint=program_hint, framework=framework, **options)
    if registry is None:
        prefork.activate()  # usually done at import; the app may have imported last9 early
        registry = global_registry()
        runtime.install()
        promclient.serve(settings.serve_prometheus_client)
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
        domains=settings.domains,
        **_histogram_options(settings),
        exclude=_exclusions(settings, route_syntax, excluded_views),
        labels=list(settings.labels),
        header_label=settings.header_label,
        header_label_values=list(settings.header_label_values)
        if settings.header_label_values is not None
        else None,
        header_label_max=settings.header_label_max,
        group_status=settings.group_status,
        semconv=settings.semconv,
        app_label=_app_label(settings),
        body_sizes=settings.body_sizes,
    )
    if route_templates is not None:
        _register_routes(recorder, route_templates)
    metrics = scrape.endpoint(settings, registry)
    if not _werkzeug_reloader_parent():
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
    return Instrumented(settings, registry, recorder, metrics)


def switched_off(options: dict[str, Any]) -> bool:
    """The kill switch (``enabled=False``, ``LAST9_DISABLED=1``), asked by every entry point
    before it touches the app: when on, the app is handed back as it was."""
    return not config.enabled(options.get("enabled"))


def _exclusions(
    settings: config.Settings,
    route_syntax: str | None,
    excluded_views: Callable[[], Iterable[str]] | None,
) -> Exclusions | None:
    """The ``exclude`` setting with the templates of views marked ``@last9.exclude``."""
    entries = list(settings.exclude)
    if excluded_views is not None and route_syntax is not None:
        try:
            views = [t for t in excluded_views() if isinstance(t, str)]
        except Exception:  # a router of a shape we do not know: its views are recorded
            logging.getLogger("last9").debug("cannot list the app's views", exc_info=True)
            views = []
        entries += [route_template(t, route_syntax) for t in views]
    if not entries and not settings.exclude_patterns:
        return None
    return Exclusions(entries, list(settings.exclude_patterns))


def _werkzeug_reloader_parent() -> bool:
    """Whether this process is ``flask run``'s reloader parent, which loads the app but only
    watches files: the child it starts (``WERKZEUG_RUN_MAIN``) serves, and needs the metrics port.
    (``app.run(debug=True)`` becomes a reloader only later: see ``release_for_reloader``.)"""
    if os.environ.get("WERKZEUG_RUN_MAIN") or os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return False
    click = sys.modules.get("click")
    context = click.get_current_context(silent=True) if click is not None else None
    if context is None or context.info_name != "run":
        return False
    reload = context.params.get("reload")
    if reload is None:  # as `flask run` decides: the reloader follows --debug
        from flask.helpers import get_debug_flag

        reload = get_debug_flag()
    return bool(reload)


def release_for_reloader(use_reloader: bool) -> None:
    """Called as a Werkzeug server is about to start: a process that becomes the reloader
    parent lets go of the metrics port, which its serving child takes."""
    if use_reloader and not os.environ.get("WERKZEUG_RUN_MAIN"):
        server.stop_from_env()


def _register_routes(recorder: Recorder, route_templates: Callable[[], Iterable[str]]) -> None:
    """Pre-registers the router's templates; a router that cannot be listed only loses that."""
    try:
        templates = [t for t in route_templates() if isinstance(t, str)]
    except Exception:  # a router of a shape we do not know: its routes register on first use
        logging.getLogger("last9").debug("cannot list the app's routes", exc_info=True)
        return
    recorder.register_routes(templates)


def _app_label(
    settings: config.Settings,
) -> tuple[str, list[str] | None, int, ContextVar[list[str | None]]] | None:
    """The recorder's `app_label`: the ``request_labels`` setting and ``set_label``'s variable."""
    if settings.request_label is None:
        return None
    name, values, cap = settings.request_label
    return name, list(values) if values is not None else None, cap, labels.CURRENT


def _histogram_options(settings: config.Settings) -> dict[str, object]:
    """The recorder's keywords for the kinds of histogram buckets the settings keep."""
    native = settings.native_histograms
    if native is None:
        return {"classic_histograms": settings.classic_histograms, "native_histograms": False}
    return {
        "classic_histograms": settings.classic_histograms,
        "native_histograms": True,
        "native_schema": native.schema,
        "native_max_buckets": native.max_buckets,
        "native_zero_threshold": native.zero_threshold,
    }
