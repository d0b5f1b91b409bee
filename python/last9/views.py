"""The per-view opt-out: ``@last9.exclude`` on a view leaves its requests out of every family.

::

    @app.route("/healthz")
    @last9.exclude
    def healthz(): ...

Works on functions and classes (Django class-based views, Falcon resources, Tornado handlers).
Views are looked at once, when the app is instrumented: a route added later is recorded unless
its template is in ``exclude`` (``LAST9_EXCLUDE``).
"""

from __future__ import annotations

from typing import Any, TypeVar

#: The attribute the marker sets; ``functools.wraps`` copies it onto decorators' wrappers.
MARK = "__last9_exclude__"

View = TypeVar("View")


def exclude(view: View) -> View:
    """Marks a view (function or class) whose requests last9 leaves out; returns it unchanged."""
    setattr(view, MARK, True)
    return view


def is_excluded(view: Any) -> bool:
    """Whether a view, or the class a Django ``as_view()`` function was made from, is marked."""
    if view is None:
        return False
    if getattr(view, MARK, False) is True:
        return True
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    return view_class is not None and getattr(view_class, MARK, False) is True
