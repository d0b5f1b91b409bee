"""A label the app sets while it serves a request: ``last9.set_label("tier", "gold")``.

Declared at start-up with ``request_labels`` (``LAST9_REQUEST_LABELS``), with an allow-list or a
cap, so a request can never add series beyond what the configuration states: a value off the
list, or past the cap, counts as ``_other``; a request that sets nothing has the empty value.

As a request enters, the middleware puts a ``[name, None]`` holder in the request's environ or
scope (where it reads the value when it records) and in :data:`CURRENT`. A thread pool or task
that copies the context (FastAPI's sync endpoints, asgiref's ``sync_to_async``) copies the
reference to the same list, so the value set there is the one recorded. The holder is not taken
back when the request ends (a streamed body may still be running): the next request replaces it,
and a value set once a request is recorded counts nowhere.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

#: The running request's holder: ``[label name, value or None]``.
CURRENT: ContextVar[list[str | None]] = ContextVar("last9_request_label")

#: Names already warned about, so a view called in a loop logs once.
_warned: set[str] = set()


def set_label(name: str, value: str) -> None:
    """Gives the running request's ``name`` label `value` (the last call wins).

    Never raises: outside an instrumented request it does nothing; a name that was not
    declared in ``request_labels`` is ignored, with one warning per name in the ``last9`` log.
    A value that is not a string is converted with ``str``.
    """
    holder = CURRENT.get(None)
    if holder is None:
        return
    if holder[0] != name:
        if name not in _warned and len(_warned) < 100:
            _warned.add(name)
            logging.getLogger("last9").warning(
                "last9.set_label(%r, ...) ignored: request_labels (LAST9_REQUEST_LABELS) "
                "declares %r",
                name,
                holder[0],
            )
        return
    holder[1] = value if isinstance(value, str) else str(value)
