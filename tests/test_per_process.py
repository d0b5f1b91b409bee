"""The one helper behind "start once per process, again in a forked child" (the metrics
server from LAST9_METRICS_PORT, the remote writer from LAST9_REMOTE_WRITE_URL)."""

from __future__ import annotations

import os
import signal

from last9.per_process import PerProcess


def in_forked_child(check) -> int:
    """Runs `check()` in a forked child; its exit status (0: passed). The child gives itself 10
    seconds, then SIGALRM ends it, so a deadlock fails the test instead of hanging it."""
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)
        try:
            code = 0 if check() else 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_started_once_per_process_and_again_in_a_forked_child():
    started: list[int] = []

    def start() -> int:
        started.append(os.getpid())
        return len(started)

    once: PerProcess[int] = PerProcess()
    assert once.get(start) == 1
    assert once.get(start) == 1
    assert in_forked_child(lambda: once.get(start) == 2 and once.get(start) == 2) == 0
    assert once.get(start) == 1 and started == [os.getpid()]


def test_a_child_forked_while_another_thread_holds_the_lock_does_not_deadlock():
    once: PerProcess[str] = PerProcess()
    once._lock.acquire()  # as a thread of the parent starting its server at the moment of fork
    try:
        assert in_forked_child(lambda: once.get(lambda: "child's") == "child's") == 0
    finally:
        once._lock.release()


def test_replace_and_pop_act_on_this_process_only():
    once: PerProcess[str | None] = PerProcess()
    assert once.get(lambda: None) is None  # standing by
    once.replace("leader")
    assert once.get(lambda: "unused") == "leader"
    assert in_forked_child(lambda: once.pop() is None) == 0
    assert once.pop() == "leader"
    assert once.pop() is None


def test_start_may_replace_the_value_itself():
    """A process that takes the lead at once stores its writer from inside `start`."""
    once: PerProcess[str | None] = PerProcess()

    def lead_at_once() -> None:
        once.replace("writer")

    assert once.get(lead_at_once) == "writer"
