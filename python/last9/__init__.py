"""last9: RED metrics (rate, errors, duration) for Python web apps, with a Rust engine.

One line instruments an app::

    from last9.wsgi.middleware import RedMiddleware
    app.wsgi_app = RedMiddleware(app)

and ``/metrics`` then serves ``http_requests_duration_milliseconds``, labelled by route template.
"""

from contextlib import suppress as _suppress

from last9 import config as _config
from last9 import prefork
from last9._core import (
    MetricsError,
    MetricsServer,
    Recorder,
    Registry,
    RemoteWriter,
    __version__,
    enable_multiprocess,
    global_registry,
    multiprocess_dir,
    normalize_path,
    route_template,
)
from last9.labels import set_label
from last9.lineage import instrument_http_clients
from last9.promclient import Last9Collector
from last9.remote_write import start_remote_write
from last9.server import start_metrics_server
from last9.views import exclude

#: The registry every middleware records into unless given another. Under a pre-fork server
#: (gunicorn, uWSGI, uvicorn --workers) it sums every worker: see ``last9.prefork``.
REGISTRY: Registry = global_registry()
# A bad LAST9_MULTIPROC_DIR is raised where the app is instrumented (setup), not at import;
# with LAST9_DISABLED=1 nothing is made at all.
with _suppress(MetricsError):
    if _config.enabled():
        prefork.activate()


def generate_latest(registry: Registry | None = None, *, openmetrics: bool = False) -> bytes:
    """The exposition text of a registry (the global one by default)."""
    return (registry or REGISTRY).render(openmetrics=openmetrics)


__all__ = [
    "REGISTRY",
    "Last9Collector",
    "MetricsError",
    "MetricsServer",
    "Recorder",
    "Registry",
    "RemoteWriter",
    "__version__",
    "enable_multiprocess",
    "exclude",
    "generate_latest",
    "global_registry",
    "instrument_http_clients",
    "multiprocess_dir",
    "normalize_path",
    "prefork",
    "route_template",
    "set_label",
    "start_metrics_server",
    "start_remote_write",
]
