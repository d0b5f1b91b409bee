"""What a process starts once for itself, such as the metrics server or the remote writer.

Threads do not survive ``fork``: a pre-fork worker that inherited its parent's server or
writer would hold an object whose thread is gone. :class:`PerProcess` keeps one value per pid,
so each worker starts its own on first use, and renews its lock in a forked child, which would
otherwise inherit it locked if another thread of the parent held it at the fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    """At most one value per process, made on first use.

    The parent's value stays in a forked child's copy, unused: dropping it there could wait on
    a thread that only the parent has.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_pid: dict[int, T] = {}
        os.register_at_fork(after_in_child=self._renew_lock)

    def get(self, start: Callable[[], T]) -> T:
        """This process's value; `start()` makes it (under the lock) the first time, unless
        `start` itself calls :meth:`replace` (as a process that leads at once does)."""
        with self._lock:
            pid = os.getpid()
            if pid not in self._by_pid:
                value = start()
                self._by_pid.setdefault(pid, value)
            return self._by_pid[pid]

    def replace(self, value: T) -> None:
        """Makes `value` this process's (e.g. once a standby process takes the lead)."""
        with self._lock:
            self._by_pid[os.getpid()] = value

    def pop(self) -> T | None:
        """Forgets this process's value and returns it (None: it had none)."""
        with self._lock:
            return self._by_pid.pop(os.getpid(), None)

    def _renew_lock(self) -> None:
        self._lock = threading.RLock()
