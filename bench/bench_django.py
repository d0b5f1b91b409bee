"""Django: per-request overhead of last9 against django-prometheus.

Every candidate is a ``WSGIHandler`` of the same trivial project (one ``path()`` route with a
converter, a view returning a small ``HttpResponse``), called in-process with a copy of a
prepared environ; the body is consumed and closed as a server would (closing fires Django's
``request_finished``). The candidates differ only in instrumentation:

- bare: no middleware at all;
- last9: ``RedMiddleware(get_wsgi_application())``, the one-line way;
- last9 MIDDLEWARE: ``"last9.django.RedMiddleware"`` as the only ``MIDDLEWARE`` entry;
- django-prometheus: its ``PrometheusBeforeMiddleware`` and ``PrometheusAfterMiddleware``, as
  its README sets them up (first and last in ``MIDDLEWARE``).

A Django request costs some 40 µs here, so the µs or so of instrumentation is a small
difference of large numbers: times are this thread's CPU time, in many short interleaved rounds,
and each overhead is the median over rounds of (candidate - bare) within the same round, so that
other processes on a shared machine do not drown it in their noise.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

from harness import Row, compare, overhead, paired_overheads, us

CALLS = 100
ROUNDS = 401
TARGET_NS = 3000
TARGET_RATIO = 10
PROMETHEUS = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/item/42/",
    "SCRIPT_NAME": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "bench",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "example.com",
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(),
    "wsgi.errors": sys.stderr,
}


def item(request: HttpRequest, item_id: int = 0) -> HttpResponse:
    return HttpResponse(b"ok")


#: This module is the project's ROOT_URLCONF; the benchmarked request matches the last route.
urlpatterns = [*(path(f"page{n}/", item) for n in range(4)), path("item/<int:item_id>/", item)]


def configure() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            SECRET_KEY="bench",
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
        )
        django.setup()


def handler(middleware: list[str], **settings: Any) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    with override_settings(MIDDLEWARE=middleware, **settings):
        return WSGIHandler()


def driver(app: Callable[..., Any]) -> Callable[[], None]:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        pass

    def one() -> None:
        body = app(dict(ENVIRON), start_response)
        for _ in body:
            pass
        body.close()

    return one


def run() -> list[Row]:
    configure()
    import last9
    from last9.wsgi.middleware import RedMiddleware

    registry = last9.Registry()
    candidates = {
        "bare": driver(handler([])),
        "last9": driver(RedMiddleware(handler([]), registry=registry, hostname="bench")),
        "last9 MIDDLEWARE": driver(
            handler(
                ["last9.django.RedMiddleware"], LAST9={"registry": registry, "hostname": "bench"}
            )
        ),
        "django-prometheus": driver(handler(PROMETHEUS)),
    }
    timings = compare(candidates, CALLS, ROUNDS, clock=time.thread_time_ns)
    # The one-line way and the MIDDLEWARE way share one series (same labels, same route).
    assert registry.series_count() == 1, registry.render().decode()
    overheads = paired_overheads(timings, "bare")

    rows = [Row("django", "bare request (in-process WSGIHandler)", us(timings["bare"].ns))]
    best = overheads["django-prometheus"]
    rows.append(overhead("django", "django-prometheus overhead", us(best), best))
    for name in ("last9", "last9 MIDDLEWARE"):
        ours = overheads[name]
        ratio = best / ours if ours > 0 else float("inf")
        rows.append(
            overhead(
                "django",
                f"{name} overhead",
                us(ours),
                ours,
                f"≤ {us(TARGET_NS)}",
                ours <= TARGET_NS,
            )
        )
        rows.append(
            Row(
                "django",
                f"django-prometheus overhead ÷ {name} overhead",
                f"{ratio:.1f}x",
                f"≥ {TARGET_RATIO}x",
                ratio >= TARGET_RATIO,
            )
        )
    return rows
