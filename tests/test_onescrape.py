"""One scrape tells everything: the app's own prometheus_client metrics, its runtime per worker,
and last9's families, exact across the workers of real pre-fork servers (gunicorn, granian,
hypercorn) over loopback."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, scrape
from test_prefork import children, load, running, settle, total, wait_until, warm_up

FLASK = "tests.apps.onescrape_app:app"
ASGI = "tests.apps.onescrape_asgi_app:app"


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples named `name`, keyed by their sorted label pairs."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def by_worker(text: str, name: str) -> dict[str, float]:
    return {dict(labels)["worker"]: value for labels, value in samples(text, name).items()}


def gunicorn(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *args, FLASK]


def granian(port: int, *args: str) -> list[str]:
    return [
        *("granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--no-ws", *args, ASGI),
    ]


def hypercorn(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", *args, ASGI]


SERVERS: dict[str, Callable[..., list[str]]] = {
    "gunicorn": gunicorn,
    "granian": granian,
    "hypercorn": hypercorn,
}


@pytest.mark.parametrize("name", SERVERS)
def test_one_scrape_has_the_apps_counter_and_every_workers_runtime(name, tmp_path):
    port = free_port()
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LAST9_SERVICE_VERSION": "1.2.3",
        "XDG_RUNTIME_DIR": str(tmp_path),
    }
    with running(SERVERS[name](port, "--workers", "4"), port, env) as master:
        warm = warm_up(port, path="/order/book")
        ok, sent = load(port, 400, path="/order/book")
        assert ok == sent
        settle(port, warm + 400)
        wait_until(lambda: len(children(master.pid)) >= 4)
        text = scrape(port).text
        # The app's own counter, summed over every worker by prometheus_client's collector.
        assert samples(text, "app_orders_total") == {(("kind", "book"),): warm + 400}
        assert total(text) == warm + 400
        # One series per live worker slot, plus the master; bounded labels, not pids.
        rss = by_worker(text, "process_resident_memory_bytes")
        assert set(rss) == {"0", "1", "2", "3", "master"}, rss
        assert all(value > 1_000_000 for value in rss.values())
        assert set(by_worker(text, "process_cpu_seconds_total")) == set(rss)
        assert set(by_worker(text, "process_open_fds")) == set(rss)
        gc_workers = {
            (dict(labels)["worker"], dict(labels)["generation"])
            for labels in samples(text, "python_gc_collections_total")
        }
        assert gc_workers == {(w, g) for w in "0123" for g in "012"}
        assert samples(text, "last9_worker_starts_total") == {(): 4.0}
        assert samples(text, "last9_worker_exits_total") == {(): 0.0}
        (info,) = samples(text, "last9_info")
        assert dict(info)["service_version"] == "1.2.3"
        assert len(samples(text, "python_info")) == 1
        # prometheus_client's own per-process families are not served twice.
        assert text.count("# TYPE process_resident_memory_bytes gauge") == 1


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every series but the workers' own and the in-flight gauge (one per method, made when a
    request first waits on another)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "worker" not in sample.labels and family.name != "http_requests_in_flight"
    }


def scrape_past_restarts(port: int) -> str:
    """Scrape through the app while its workers restart: hypercorn closes the connections a
    worker had accepted when it leaves, so a scrape that lands there is sent again."""
    for _ in range(20):
        try:
            return scrape(port).text
        except requests.ConnectionError:
            time.sleep(0.05)
    return scrape(port).text


@pytest.mark.timeout(
    600
)  # ~170 worker start-ups: seconds on a quiet machine, minutes on a busy one
@pytest.mark.parametrize("name", ["gunicorn", "hypercorn"])
def test_a_hundred_restarts_keep_counts_exact_and_series_bounded(name, tmp_path):
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    command = SERVERS[name](port, "--workers", "2", "--max-requests", "3")
    if name == "gunicorn":
        command[-1:-1] = ["--max-requests-jitter", "0"]
    with running(command, port, env):
        # A worker leaving after its third request may drop connections it had accepted
        # (hypercorn does): such a request counts nowhere, or everywhere if the app ran.
        ok, sent = load(port, 60, threads=2, path="/order/book")
        wait_until(lambda: total(scrape_past_restarts(port)) >= ok)
        before = scrape_past_restarts(port)
        more_ok, more_sent = load(port, 460, threads=2, path="/order/book")
        ok, sent = ok + more_ok, sent + more_sent
        assert ok >= sent / 2, (ok, sent)  # hypercorn drops ~1 in 10 here; gunicorn none
        wait_until(lambda: total(scrape_past_restarts(port)) >= ok)
        after = scrape_past_restarts(port)
        served = total(after)
        assert ok <= served <= sent
        # The app's own counter and last9's histogram saw exactly the same requests.
        assert samples(after, "app_orders_total") == {(("kind", "book"),): served}
        starts = samples(after, "last9_worker_starts_total")[()]
        exits = samples(after, "last9_worker_exits_total")[()]
        assert starts >= 100, starts
        workers = set(by_worker(after, "process_resident_memory_bytes")) - {"master"}
        assert starts - exits == len(workers)
        # Slots are reused: a restart adds no label value, and no series but the workers'.
        assert workers <= {"0", "1", "2"}, workers
        assert series(after) == series(before)
