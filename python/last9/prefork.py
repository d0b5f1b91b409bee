"""Pre-fork servers: notices, with no set-up, that this process is one of several workers.

A scrape reaches one worker; in multi-process mode every worker keeps its series in a file of
a directory shared by the server's processes, and any scrape sums them (see the README's
"Pre-fork servers"). This module only decides whether and where: the store is in Rust.

- ``LAST9_MULTIPROC_DIR`` set: that directory, always.
- uWSGI with more than one process or a master; a gunicorn worker, or a gunicorn master loading
  the app before forking (``--preload``); a worker of ``uvicorn --workers``, ``granian --workers``
  (WSGI or ASGI) or ``hypercorn --workers``: the directory of that server instance, keyed by its
  root process.
- Otherwise the process stays single-process; should it fork after loading last9, the child
  switches on its own (see ``last9._core``'s fork handlers).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from last9._core import MetricsError, enable_multiprocess, multiprocess_dir

logger = logging.getLogger("last9")

#: How far up the stack to look for the gunicorn object that is loading the app.
_MAX_FRAMES = 64


def activate() -> str | None:
    """Enters multi-process mode if this process is part of a pre-fork server.

    Returns the shared directory, or None for a single process. Raises ``MetricsError`` when
    ``LAST9_MULTIPROC_DIR`` names a directory another user owns or can write to. When no private
    directory can be found for a pre-fork server, the process keeps its own series with a
    warning, and its scrapes say so (``last9_store_degraded`` 1).
    """
    directory = os.environ.get("LAST9_MULTIPROC_DIR")
    if directory:
        try:
            return str(enable_multiprocess(directory=directory))
        except OSError as error:
            raise MetricsError(f"LAST9_MULTIPROC_DIR cannot be used: {error}") from None
    try:
        root = server_root()
        if root is None:
            return None
        return str(enable_multiprocess(root_pid=root))
    except OSError as error:
        logger.warning("last9: metrics stay per process: %s", error)
        return None


def active() -> bool:
    """Whether this process is in multi-process mode."""
    return multiprocess_dir() is not None


def server_root() -> int | None:
    """The pid of the process at the root of this pre-fork server, or None if there is none."""
    for find in (_uwsgi_root, _gunicorn_root, _supervised_root):
        root = find()
        if root is not None:
            return root
    return None


def _uwsgi_root() -> int | None:
    uwsgi: Any = sys.modules.get("uwsgi")
    if uwsgi is None or not hasattr(uwsgi, "masterpid"):
        return None
    master = uwsgi.masterpid()
    if master:
        return int(master)
    if getattr(uwsgi, "numproc", 1) <= 1:
        return None
    # No master: the first worker is the process that started; with lazy-apps the others are
    # its children and load the app after the fork.
    return os.getpid() if uwsgi.worker_id() <= 1 else os.getppid()


def _gunicorn_root() -> int | None:
    if "gunicorn" not in sys.modules:
        return None
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

    frame = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, Worker):
            return int(owner.ppid)  # a worker loading the app: the arbiter is its parent
        if isinstance(owner, Arbiter):
            return os.getpid()  # --preload: the arbiter itself loads the app, then forks
        frame = frame.f_back
    return None


#: Servers that run the app in `multiprocessing` children of a supervisor: uvicorn --workers
#: (and --reload) and hypercorn spawn them; granian forks them (spawns on Python 3.14), and
#: always, even for one worker.
_SUPERVISED = ("uvicorn", "granian", "hypercorn")


def _supervised_root() -> int | None:
    if not any(server in sys.modules for server in _SUPERVISED):
        return None
    import multiprocessing

    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else None
