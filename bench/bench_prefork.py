"""Pre-fork servers: scrape time and recording cost of the multi-process store, and the
throughput of the seed's app under `gunicorn -w 2`, against prometheus_client's multiprocess mode.

Each measurement that needs multi-process mode (which is per process and one-way) runs in a
child process of its own: `python bench/bench_prefork.py <part>` prints one JSON object.

- scrape: 4 live workers x 10,000 series (same label sets in each worker, 31 buckets), the
  merge-and-render of one scrape, vs `generate_latest` over prometheus_client's
  `MultiProcessCollector` on 4 workers' files with the same series;
- recording: RedMiddleware on a trivial app, multi-process mode (cells in the mapped file) vs a
  single-process registry, interleaved in one process, best round of each in thread CPU time;
  prometheus_client's multiprocess-mode middleware shown for scale;
- restarts: scrape time (thread CPU time, best of 200) and disk use after 10 and after 1,000
  worker restarts;
- wrk: requests/s of the seed's app (without its sleep) under `gunicorn -w 2`: bare, last9,
  prometheus_client multiprocess mode, interleaved rounds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from harness import Row, compare, us  # noqa: E402

WORKERS = 4
SERIES = 10_000
LABELS = ["per", "hostname", "domain", "method", "program", "status", "tenant", "cluster"]
BUCKETS_MS = [0.25 * 1.5**k for k in range(31)]


def label_values(i: int) -> tuple[str, ...]:
    return (f"/api/v1/resource{i}/{{id}}", "box", "example.com", "GET", "shop", "200", "", "")


def fork_workers(work: Any) -> list[int]:
    """Forks WORKERS children that run `work()` and then wait (alive) until killed."""
    ready_r, ready_w = os.pipe()
    pids = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            work()
            os.write(ready_w, b"r")
            signal.pause()
            os._exit(0)
        pids.append(pid)
    for _ in range(WORKERS):
        os.read(ready_r, 1)
    return pids


def stop(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def timed(fn: Any, rounds: int) -> float:
    """Median seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def part_scrape_last9(directory: str) -> dict[str, Any]:
    import last9

    last9.enable_multiprocess(directory=directory)
    recorder = last9.Recorder(
        last9.global_registry(),
        hostname="box",
        program="shop",
        max_routes=SERIES + 10,
        route_syntax="brace",
    )

    def work() -> None:
        for i in range(SERIES):
            recorder.observe(label_values(i)[0], "", "example.com", "GET", 200, 1_000_000 + i)

    pids = fork_workers(work)
    try:
        text = last9.generate_latest()
        seconds = timed(last9.generate_latest, 5)
    finally:
        stop(pids)
    return {"seconds": seconds, "bytes": len(text), "series": text.count(b"_count{")}


def part_scrape_prometheus() -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest, multiprocess

    histogram = Histogram("http_requests_duration_milliseconds", "d", LABELS, buckets=BUCKETS_MS)

    def work() -> None:
        for i in range(SERIES):
            histogram.labels(*label_values(i)).observe(1 + i / 1e6)

    pids = fork_workers(work)
    try:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        started = time.perf_counter()
        text = generate_latest(registry)  # one round: it takes tens of seconds
        seconds = time.perf_counter() - started
    finally:
        stop(pids)
    return {"seconds": seconds, "bytes": len(text), "series": text.count(b"_count{")}


def part_recording(directory: str) -> dict[str, Any]:
    import time as _time

    from prometheus_client import Histogram

    import last9
    from last9.wsgi.middleware import RedMiddleware

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/user/42",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "HTTP_HOST": "example.com",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        return None

    histogram = Histogram("prom_duration_ms", "d", LABELS, buckets=BUCKETS_MS)

    def prometheus(environ: Any, start_response: Any) -> Any:
        started = _time.perf_counter()
        status = ["500"]

        def wrapped(s: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = s[:3]
            return start_response(s, headers, exc_info)

        body = app(environ, wrapped)
        histogram.labels(
            environ["PATH_INFO"], "box", environ["HTTP_HOST"], "GET", "b", status[0], "", ""
        ).observe((_time.perf_counter() - started) * 1000)
        return body

    single = RedMiddleware(app, registry=last9.Registry(), program="bench", hostname="box")
    last9.enable_multiprocess(directory=directory)
    multi = RedMiddleware(app, program="bench", hostname="box")
    assert last9.multiprocess_dir() is not None and multi.registry.is_global
    apps = {"bare": app, "single": single, "multi": multi, "prometheus": prometheus}
    candidates = {name: (lambda a=a: a(environ, start_response)) for name, a in apps.items()}
    timings = compare(candidates, calls=50_000, rounds=15, clock=time.thread_time_ns)
    # Best round of each: a busy neighbour only ever makes a round slower.
    bare = min(timings["bare"].rounds_ns)
    added = {name: min(t.rounds_ns) - bare for name, t in timings.items() if name != "bare"}
    files = [p.name for p in Path(directory).iterdir() if p.name.startswith("w-")]
    return {**added, "files": len(files)}


FORKING = """
import os, sys, time
import last9
last9.enable_multiprocess(directory=sys.argv[1])
recorder = last9.Recorder(last9.global_registry(), hostname="box", program="shop",
                          max_routes=1000, route_syntax="brace")
def scrape_time():
    # CPU time of this thread, best of 200: other processes on a busy machine add to the wall
    # clock, never to this.
    times = []
    for _ in range(200):
        started = time.thread_time()
        last9.generate_latest()
        times.append(time.thread_time() - started)
    return min(times)
result = {}
for i in range(1, 1001):
    pid = os.fork()
    if pid == 0:
        for j in range(200):
            recorder.observe(f"/r/{j}", "", "example.com", "GET", 200, 1000 * j)
        os._exit(0)
    os.waitpid(pid, 0)
    if i in (10, 1000):
        last9.generate_latest()  # compacts what the last restart left
        size = sum(p.stat().st_blocks * 512 for p in os.scandir(sys.argv[1]) if p.is_file())
        result[i] = {"seconds": scrape_time(), "bytes": size, "files": len(os.listdir(sys.argv[1]))}
print(__import__("json").dumps(result))
"""


def child(part: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), part, *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_cpu_seconds(master: int) -> float:
    """CPU time (user + system) used so far by the children of `master`."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk_round(app: str, seconds: int) -> tuple[float, float]:
    """One gunicorn -w 2 run of the seed app under wrk: (requests/s, worker CPU µs/request)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "BENCH_APP": app,
            "PYTHONPATH": f"{HERE}:{ROOT}",
            "PROMETHEUS_MULTIPROC_DIR": tmp,
            "XDG_RUNTIME_DIR": tmp,
        }
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}"),
                *("--log-level", "warning", "prefork_seed:app"),
            ],
            env=env,
            cwd=HERE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            url = f"http://127.0.0.1:{port}/name/ada"
            subprocess.run(["wrk", "-t1", "-c8", "-d1s", url], capture_output=True, check=True)
            cpu_before = worker_cpu_seconds(server.pid)
            out = subprocess.run(
                ["wrk", "-t1", "-c8", f"-d{seconds}s", url],
                capture_output=True,
                check=True,
                text=True,
            ).stdout
            cpu = worker_cpu_seconds(server.pid) - cpu_before
            metrics = subprocess.run(
                ["curl", "-s", f"http://127.0.0.1:{port}/metrics"], capture_output=True
            ).stdout
            if app != "bare":
                assert b"_count{" in metrics, metrics[:300]
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    assert rate and done, out
    return float(rate.group(1)), cpu / int(done.group(1)) * 1e6


def run() -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ours = child("scrape-last9", tmp)
    with tempfile.TemporaryDirectory() as tmp:
        theirs = child("scrape-prometheus", env={"PROMETHEUS_MULTIPROC_DIR": tmp})
    assert ours["series"] == theirs["series"] == SERIES, (ours, theirs)
    bench = f"scrape, {WORKERS} workers × {SERIES:,} series"
    speedup = theirs["seconds"] / ours["seconds"]
    rows += [
        Row(
            bench,
            "last9",
            f"{ours['seconds'] * 1000:.0f} ms ({ours['bytes'] / 1e6:.0f} MB)",
            chart="scrape",
            amount=ours["seconds"] * 1000,
        ),
        Row(
            bench,
            "prometheus_client MultiProcessCollector",
            f"{theirs['seconds'] * 1000:.0f} ms ({theirs['bytes'] / 1e6:.0f} MB)",
            chart="scrape",
            amount=theirs["seconds"] * 1000,
        ),
        Row(bench, "speed-up", f"{speedup:.0f}×", "≥ 20×", speedup >= 20),
    ]

    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as prom:
        added = child("recording", tmp, env={"PROMETHEUS_MULTIPROC_DIR": prom})
    bench = "recording overhead, trivial WSGI app"
    ratio = added["multi"] / added["single"]
    rows += [
        Row(bench, "last9, single-process", us(added["single"])),
        Row(bench, "last9, multi-process (mmap cells)", us(added["multi"])),
        Row(bench, "prometheus_client middleware, multiprocess mode", us(added["prometheus"])),
        Row(bench, "last9 multi ÷ single", f"{ratio:.2f}×", "≤ 1.5×", ratio <= 1.5),
    ]

    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", FORKING, tmp],
            capture_output=True,
            check=True,
            timeout=900,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    restarts = json.loads(out.stdout)
    ten, thousand = restarts["10"], restarts["1000"]
    bench = "after 1,000 worker restarts vs 10 (200 series each)"
    time_ratio = thousand["seconds"] / ten["seconds"]
    rows += [
        Row(bench, "scrape time", f"{us(ten['seconds'] * 1e9)} → {us(thousand['seconds'] * 1e9)}"),
        Row(
            bench,
            "disk use",
            f"{ten['bytes'] / 1024:.0f} KiB, {ten['files']} files → "
            f"{thousand['bytes'] / 1024:.0f} KiB, {thousand['files']} files",
            "no larger",
            thousand["bytes"] <= ten["bytes"] and thousand["files"] <= ten["files"],
        ),
        Row(bench, "scrape time ratio", f"{time_ratio:.2f}×", "≈ 1×", time_ratio <= 1.25),
    ]

    apps = ("bare", "last9", "prometheus")
    rates: dict[str, list[float]] = {app: [] for app in apps}
    cpu: dict[str, list[float]] = {app: [] for app in apps}
    for _ in range(5):
        for app in apps:
            rate, cpu_us = wrk_round(app, seconds=3)
            rates[app].append(rate)
            cpu[app].append(cpu_us)

    def share(app: str) -> float:
        # Each round ran the three apps back to back: pair them, so a busy neighbour during
        # one round does not decide the result.
        return statistics.median(a / b for a, b in zip(rates[app], rates["bare"], strict=True))

    bench = "seed app, gunicorn -w 2, wrk -c8 (5 interleaved 3 s rounds)"
    for app, name, target in (
        ("bare", "uninstrumented", ""),
        ("last9", "last9", "≥ 97%"),
        ("prometheus", "prometheus_client multiprocess mode", ""),
    ):
        value = (
            f"{statistics.median(rates[app]):,.0f} req/s ({share(app):.1%}), "
            f"workers' CPU {statistics.median(cpu[app]):.0f} µs/request"
        )
        met = share(app) >= 0.97 if target else None
        rows.append(Row(bench, name, value, target, met))
    return rows


if __name__ == "__main__":
    part, *rest = sys.argv[1:]
    result = {
        "scrape-last9": lambda: part_scrape_last9(rest[0]),
        "scrape-prometheus": part_scrape_prometheus,
        "recording": lambda: part_recording(rest[0]),
    }[part]()
    print(json.dumps(result))
