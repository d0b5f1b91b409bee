"""Pre-fork servers: every scrape sums all workers, with no set-up beyond the seed's one line.

Real gunicorn and uWSGI processes over loopback: exact totals under concurrent load, a worker
killed mid-load, worker recycling, two apps side by side, damaged files, the metrics port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import requests

import conftest
from conftest import ROOT, counts_by, free_port, scrape, wait_for_port

APP = "tests.apps.prefork_app:app"
UWSGI = str(Path(sys.executable).parent / "uwsgi")


@contextmanager
def running(
    command: Sequence[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a server in its own process group, and ends the whole group afterwards (uWSGI
    without a master leaves its workers behind otherwise)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(command),
                cwd=ROOT,
                env=full_env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        process.log = log  # type: ignore[attr-defined]
        try:
            wait_for_port(port, process, log)
            yield process
        finally:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def gunicorn(port: int, *args: str) -> list[str]:
    return conftest.gunicorn(APP, port, "-w", "4", *args)


def uwsgi(port: int, *args: str) -> list[str]:
    return [
        UWSGI,
        "--http-socket",
        f"127.0.0.1:{port}",
        "--processes",
        "4",
        "--module",
        APP,
        "--need-app",
        "--die-on-term",
        "--disable-logging",
        *args,
    ]


def load(
    port: int, n: int, threads: int = 8, path: str = "/name/{i}", pids: set[int] | None = None
) -> tuple[int, int]:
    """Sends `n` requests from `threads` threads: (succeeded, attempted). Adds the pids of the
    workers that answered to `pids`."""
    ok = 0
    lock = threading.Lock()
    pids = set() if pids is None else pids

    def one(i: int) -> None:
        nonlocal ok
        try:
            response = requests.get(f"http://127.0.0.1:{port}{path.format(i=i)}", timeout=10)
        except requests.RequestException:
            return
        if response.status_code == 200:
            with lock:
                ok += 1
                pids.add(int(response.headers["X-Pid"]))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return ok, n


def total(text: str, per: str | None = None) -> float:
    """`_count` of the load's route (`/name/{name}`, or the bare ASGI app's raw paths)."""
    if per is None:
        return sum(v for (route,), v in counts_by(text, "per").items() if route != "/metrics")
    return counts_by(text, "per").get((per,), 0)


def answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
    except requests.RequestException:
        return False


def settle(port: int, expected: float, per: str | None = None) -> None:
    """Waits for the last answers' recording. A worker records a request when the server has
    consumed its body, which happens just after the client got the last byte, so a scrape sent
    at once may miss the few requests still finishing; it must never see more."""
    seen = []

    def reached() -> bool:
        seen.append(total(scrape(port).text, per))
        assert seen[-1] <= expected, seen
        return seen[-1] == expected

    wait_until(reached, timeout=15)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def uvicorn(port: int) -> list[str]:
    return conftest.uvicorn("tests.apps.prefork_asgi_app:app", port, "--workers", "4")


def granian(port: int, interface: str) -> list[str]:
    app = "tests.apps.prefork_app:app" if interface == "wsgi" else "tests.apps.prefork_asgi_app:app"
    return [
        *("granian", "--interface", interface, "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "4", "--no-ws", app),
    ]


def hypercorn(port: int, *args: str) -> list[str]:
    return [
        *(sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "-w", "4", *args),
        "tests.apps.prefork_asgi_app:app",
    ]


SERVERS = {
    "gunicorn-sync": lambda port: gunicorn(port),
    "gunicorn-gthread": lambda port: gunicorn(port, "-k", "gthread", "--threads", "4"),
    "gunicorn-preload": lambda port: gunicorn(port, "--preload"),
    "gunicorn-gevent": lambda port: gunicorn(port, "-k", "gevent", "--worker-connections", "100"),
    "uwsgi-master": lambda port: uwsgi(port, "--master"),
    "uwsgi": lambda port: uwsgi(port),
    "uvicorn": uvicorn,
    # FastAPI's usual deployment: gunicorn managing uvicorn's ASGI workers.
    "gunicorn-uvicorn-worker": lambda port: conftest.gunicorn(
        "tests.apps.prefork_asgi_app:app", port, "-w", "4", "-k", "uvicorn.workers.UvicornWorker"
    ),
    "granian-wsgi": lambda port: granian(port, "wsgi"),
    "granian-asgi": lambda port: granian(port, "asgi"),
    "hypercorn": hypercorn,
}


@pytest.mark.parametrize("name", SERVERS)
def test_every_scrape_sums_all_workers_exactly(name):
    port, metrics_port = free_port(), free_port()
    env = {"LAST9_METRICS_PORT": str(metrics_port), "LAST9_METRICS_ADDR": "127.0.0.1"}
    with running(SERVERS[name](port), port, env):
        warm = warm_up(port)
        pids: set[int] = set()
        ok, sent = load(port, 1200, pids=pids)
        assert ok == sent
        assert len(pids) >= 2, f"the load reached one worker only: {pids}"
        settle(port, warm + 1200)
        for _ in range(8):
            assert total(scrape(port).text) == warm + 1200
        wait_until(lambda: answers(metrics_port))
        assert total(scrape(metrics_port).text) == warm + 1200


def warm_up(port: int, workers: int = 2, path: str = "/name/{i}") -> int:
    """Sends requests until `workers` workers answered; returns how many were sent. A server
    whose supervisor listens before its workers have loaded the app (granian, hypercorn) gives
    every early request to the first worker up."""
    pids: set[int] = set()
    sent = 0
    deadline = time.monotonic() + 30
    while len(pids) < workers and time.monotonic() < deadline:
        ok, n = load(port, 16, pids=pids, path=path)
        assert ok == n
        sent += n
    return sent


def test_a_killed_worker_keeps_its_counts_and_nothing_goes_backwards():
    port = free_port()
    with running(gunicorn(port), port) as master:
        done = threading.Event()
        results: list[tuple[int, int]] = []

        def keep_loading() -> None:
            while not done.is_set():
                results.append(load(port, 50, threads=4))

        loader = threading.Thread(target=keep_loading)
        loader.start()
        seen: list[float] = []
        try:
            wait_until(lambda: len(results) >= 3)
            for victim in children(master.pid)[:2]:
                seen.append(total(scrape(port).text))
                os.kill(victim, signal.SIGKILL)
                for _ in range(10):
                    seen.append(total(scrape(port).text))
                wait_until(lambda: len(children(master.pid)) == 4)
        finally:
            done.set()
            loader.join()
        succeeded = sum(ok for ok, _ in results)
        attempted = sum(sent for _, sent in results)
        # A worker records a request when the server has consumed its body, just after the
        # client got the last byte: a worker killed in between loses that one request (it was
        # answered, never recorded). So each kill may cost at most one count; the rest is exact.
        kills = 2
        wait_until(lambda: seen.append(total(scrape(port).text)) or seen[-1] >= succeeded - kills)
        for _ in range(10):
            seen.append(total(scrape(port).text))
        final = seen[-1]
        assert seen == sorted(seen), f"a scrape went backwards: {seen}"
        # A request cut by the kill may have been recorded before its answer was lost.
        assert succeeded - kills <= final <= attempted
        assert succeeded > 0 and attempted - succeeded <= 2


def test_recycled_workers_keep_counts_and_the_directory_bounded(tmp_path):
    port = free_port()
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    command = gunicorn(port, "--max-requests", "25", "--max-requests-jitter", "0")
    with running([*command[:-1], "-w", "2", command[-1]], port, env) as master:
        ok, sent = load(port, 600, threads=4)
        assert ok == sent
        settle(port, 600)
        for _ in range(4):
            assert total(scrape(port).text) == 600
        (instance,) = (tmp_path / f"last9-{os.getuid()}").iterdir()
        assert instance.name.startswith(f"{master.pid}-")
        files = sorted(p.name for p in instance.iterdir())
        workers = [f for f in files if f.startswith("w-")]
        live = children(master.pid)
        dead = [f for f in workers if int(f.split("-")[1]) not in live]
        # ~24 workers were recycled: all in the archive, but for one a scrape (which counts
        # towards --max-requests) may have just recycled.
        assert len(dead) <= 1 and len(workers) <= 3, files
        assert "archive.db" in files, files


def test_two_apps_side_by_side_do_not_mix():
    port_a, port_b = free_port(), free_port()
    with running(gunicorn(port_a), port_a), running(uwsgi(port_b, "--master"), port_b):
        ok_a, _ = load(port_a, 300)
        ok_b, _ = load(port_b, 120)
        assert (ok_a, ok_b) == (300, 120)
        settle(port_a, 300)
        settle(port_b, 120)
        assert total(scrape(port_a).text) == 300
        assert total(scrape(port_b).text) == 120


def test_damaged_files_are_skipped_with_a_warning(tmp_path):
    port = free_port()
    env = {"LAST9_MULTIPROC_DIR": str(tmp_path)}
    with running(gunicorn(port), port, env) as server:
        assert load(port, 200)[0] == 200
        settle(port, 200)
        live = next(tmp_path.glob("w-*.db"))
        (tmp_path / "w-1-1.db").write_bytes(b"L9MP not really")
        (tmp_path / "w-1-2.db").write_bytes(live.read_bytes()[:100])
        (tmp_path / "w-1-3.db").write_bytes(b"\0" * 4096)
        for _ in range(4):
            assert total(scrape(port).text) == 200
        log = server.log.read_text()  # type: ignore[attr-defined]
        assert "last9: skipping" in log and "w-1-1.db" in log


def test_the_metrics_port_moves_to_another_worker_when_its_owner_dies():
    port, metrics_port = free_port(), free_port()
    env = {"LAST9_METRICS_PORT": str(metrics_port), "LAST9_METRICS_ADDR": "127.0.0.1"}
    with running(gunicorn(port), port, env) as master:
        assert load(port, 400)[0] == 400
        settle(port, 400)
        wait_until(lambda: answers(metrics_port))
        assert total(scrape(metrics_port).text) == 400
        owner = port_owner(metrics_port, children(master.pid))
        os.kill(owner, signal.SIGKILL)
        wait_until(lambda: port_owner(metrics_port, children(master.pid)) not in (None, owner))
        assert load(port, 100)[0] == 100
        settle(port, 500)
        assert total(scrape(metrics_port).text) == 500


def port_owner(port: int, pids: list[int]) -> int | None:
    """The process among `pids` that listens on `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None


FORKING = """
import json, os, sys, time
import last9
from last9.wsgi.middleware import RedMiddleware
from wsgi_helpers import call

def hello(environ, start_response):
    start_response("200 OK", [])
    return [b"hi"]

app = RedMiddleware(hello, program="forks", hostname="box")
call(app, "/before/fork")  # recorded by the parent, before any fork
restarts = int(sys.argv[1])
sizes = {}
for i in range(1, restarts + 1):
    pid = os.fork()
    if pid == 0:
        for _ in range(3):
            call(app, f"/user/{i % 7}")
        os._exit(0)
    os.waitpid(pid, 0)
    if i in (10, restarts):
        text = last9.generate_latest().decode()
        directory = last9.multiprocess_dir()
        # Worker slots (the runtime families' bounded `worker` label) are counted apart.
        stored = [p for p in directory.iterdir() if not p.name.startswith("slot-")]
        files = sorted(p.name for p in stored)
        size = sum(p.stat().st_blocks * 512 for p in stored)
        slots = sorted(p.name for p in directory.glob("slot-*"))
        sizes[i] = {"files": files, "bytes": size, "text": text, "slots": slots}
print(json.dumps(sizes))
"""


def test_a_thousand_restarts_take_no_more_room_than_ten(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "XDG_RUNTIME_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", FORKING, "1000"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    sizes = json.loads(out.stdout)
    after_10, after_1000 = sizes["10"], sizes["1000"]
    assert counts_by(after_10["text"], "per").get(("/user/{id}",)) == 30
    assert counts_by(after_1000["text"], "per") == {("/user/{id}",): 3000, ("/before/fork",): 1}
    assert len(after_1000["files"]) <= len(after_10["files"]), (after_10, after_1000)
    # Room does not grow with restarts. A series' native buckets take more room only as their
    # spread grows, once: 3,000 requests spread wider than 30, and `/user/{id}` may have been
    # given the table for its whole bucket limit (4 KiB, within two pages) since.
    native_tables = 8 << 10
    assert after_1000["bytes"] <= after_10["bytes"] + native_tables, (
        after_10["files"],
        after_1000["files"],
    )
    # The parent's slot and one that every child took in turn.
    assert len(after_1000["slots"]) <= 2, after_1000["slots"]


def test_a_single_process_app_stays_in_memory(tmp_path):
    script = (
        "import last9; from last9.wsgi.middleware import RedMiddleware;"
        "RedMiddleware(lambda e, s: [], program='solo');"
        "print(last9.multiprocess_dir())"
    )
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("LAST9_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, check=True)
    assert out.stdout.decode().strip() == "None"
    assert list(tmp_path.iterdir()) == []
