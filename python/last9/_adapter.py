"""Framework detection: what the middleware needs to know about the app it wraps.

Each framework module (``last9.flask``, ``last9.django``, ...) exposes ``adapt(app) -> Adapter |
None`` for WSGI apps and, where the framework speaks ASGI, ``adapt_asgi(app)``, answering None
when the app is not of its framework. A framework module is imported only when the app (or the
app it wraps) is an object of one of that framework's classes, so detection never imports a
framework the app does not use. This module imports no framework module: they import it.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: Reads the matched route template from a finished request's environ (or ASGI scope); None
#: when no route matched.
RouteGetter = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Adapter:
    """How to call and read one app."""

    #: The callable the middleware calls (for Flask, the app's original ``wsgi_app``).
    app: Any
    #: How the framework spells route templates: "angle", "angle_name_first", "brace", "regex",
    #: "django";
    #: None when the app has no router we know, and raw paths are normalised instead.
    route_syntax: str | None = None
    route_getter: RouteGetter | None = None
    #: WSGI only, the fast path: ``(key, attributes)`` such that ``environ[key].attr1.attr2…``
    #: is the template, read in Rust without a Python call; a ``last9.`` key is removed
    #: afterwards. When a step gives None, ``route_getter`` is asked instead.
    route_source: tuple[str, tuple[str, ...]] | None = None
    #: WSGI only: read the route when the app calls ``start_response`` rather than once the
    #: response is over (Flask lets go of its request before ``wsgi_app`` returns).
    route_at_start: bool = False
    #: WSGI only: Werkzeug's ``(ClosingIterator, Response)`` types, for apps whose responses are
    #: Werkzeug's: a body that is a ``ClosingIterator`` over a response rendered in full (a list
    #: body, not a streamed one) is recorded at once and handed to the server unwrapped.
    werkzeug: tuple[type, type] | None = None
    #: ASGI only: the templates ``route_getter`` has learnt, by ``id()`` of the object the router
    #: leaves in ``scope["route"]`` (else ``scope["endpoint"]``); a str value is read in Rust
    #: without calling the getter, anything else asks it. The getter keeps those objects alive.
    route_cache: dict[int, Any] | None = None
    #: The framework's name for the app, used as the default ``program``.
    program_hint: str | None = None
    #: WSGI body types the app returns fully rendered (Django's ``HttpResponse``): recorded as
    #: soon as the app returns and handed to the server unwrapped, as list bodies are.
    complete_bodies: tuple[type, ...] = ()
    #: The app's own route a GET of a path reaches (a description), or None: asked once at
    #: start-up, to warn when the metrics path hides one.
    route_at: Callable[[str], str | None] | None = None
    #: Lists the route templates the router knows (framework syntax), for pre-registration:
    #: they get their label slots before any request. None when the router cannot be listed.
    route_templates: Callable[[], Iterable[str]] | None = None
    #: Lists the templates (framework syntax) whose view carries ``@last9.exclude``.
    excluded_views: Callable[[], Iterable[str]] | None = None
    #: The framework's name (the adapter module's), for ``OTEL_PYTHON_<FRAMEWORK>_EXCLUDED_URLS``.
    framework: str | None = None


#: Framework modules (``last9.<name>``, named after the framework's own package), tried in
#: order; each has ``adapt(app)`` for WSGI apps and, where it speaks ASGI, ``adapt_asgi(app)``.
#: FastAPI's apps are Starlette's: ``last9.starlette`` reads them, with ``last9.fastapi``'s help.
WSGI_FRAMEWORKS = ("flask", "pyramid", "bottle", "django", "falcon")
ASGI_FRAMEWORKS = ("django", "starlette", "falcon")
#: Framework modules for apps that are neither WSGI nor ASGI callables (Tornado's run on its own
#: server): each has ``owns(app)`` and ``instrument(app, **options)``, which hooks the app in
#: place and returns it, so that ``RedMiddleware(app)`` hands the server the same app.
NATIVE_FRAMEWORKS = ("tornado",)
#: How many wrappers (``.app`` of a middleware stack) are looked through to find the framework.
_MAX_WRAPPERS = 64


def detect_wsgi(app: Any) -> Adapter:
    """The adapter for a WSGI app: its framework's if known, else a plain one."""
    return _detect(app, WSGI_FRAMEWORKS, "adapt")


def detect_asgi(app: Any) -> Adapter:
    """The adapter for an ASGI app: its framework's if known, else a plain one."""
    return _detect(app, ASGI_FRAMEWORKS, "adapt_asgi")


def detect_native(app: Any) -> Callable[..., Any] | None:
    """The ``instrument`` function for an app that is neither WSGI nor ASGI, else None."""
    for module in _modules_for(app, NATIVE_FRAMEWORKS):
        if module.owns(app):
            return module.instrument  # type: ignore[no-any-return]
    return None


def _detect(app: Any, frameworks: tuple[str, ...], function: str) -> Adapter:
    for module in _modules_for(app, frameworks):
        adapter = getattr(module, function)(app)
        if adapter is not None:
            framework = adapter.framework or module.__name__.rpartition(".")[2]
            return dataclasses.replace(adapter, framework=framework)
    return Adapter(app=app, program_hint=_module_of(app))


def _modules_for(app: Any, frameworks: tuple[str, ...]) -> Iterable[Any]:
    """The framework modules, in `frameworks`' order, of the frameworks `app` comes from."""
    packages = _packages_of(app)
    for name in frameworks:
        if name in packages:
            yield importlib.import_module(f"last9.{name}")


def _packages_of(app: Any) -> set[str]:
    """Top-level packages of the classes of `app`, of the object a bound method belongs to
    (``app.wsgi_app``) and of the apps a middleware stack wraps (``.app``)."""
    packages: set[str] = set()
    for _ in range(_MAX_WRAPPERS):
        for target in (app, getattr(app, "__self__", None)):
            for cls in type(target).__mro__:
                packages.add(cls.__module__.partition(".")[0])
        app = getattr(app, "app", None)
        if app is None:
            break
    return packages


def _module_of(app: Any) -> str | None:
    module = getattr(app, "__module__", None) or getattr(type(app), "__module__", None)
    if not isinstance(module, str) or module in ("builtins", "__main__"):
        return None
    return module.partition(".")[0]
