"""One scrape tells everything: the app's own prometheus_client metrics, its runtime per worker,
and last9's families, exact across the workers of real pre-fork servers (gunicorn, granian,
hypercorn) over loopback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import pytest
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
    with running(SERVERS[name](port, "-w", "4"), port, env) as master:
        warm = warm_up(port)
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
        assert "process_resident_memory_bytes " not in text


def series(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("name", ["gunicorn", "hypercorn"])
def test_a_hundred_restarts_keep_counts_exact_and_series_bounded(name, tmp_path):
    port = free_port()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    command = SERVERS[name](port, "-w", "2", "--max-requests", "5")
    if name == "gunicorn":
        command[-1:-1] = ["--max-requests-jitter", "0"]
    with running(command, port, env):
        assert load(port, 60, threads=2, path="/order/book") == (60, 60)
        settle(port, 60)
        before = scrape(port).text
        assert load(port, 460, threads=2, path="/order/book") == (460, 460)
        settle(port, 520)
        after = scrape(port).text
        assert samples(after, "app_orders_total") == {(("kind", "book"),): 520}
        starts = samples(after, "last9_worker_starts_total")[()]
        exits = samples(after, "last9_worker_exits_total")[()]
        assert starts >= 100, starts
        workers = set(by_worker(after, "process_resident_memory_bytes")) - {"master"}
        assert starts - exits == len(workers)
        # Slots are reused: a restart adds no label value, and no series but the workers'.
        assert workers <= {"0", "1", "2"}, workers
        unlabelled = {key for key in series(after) if "worker" not in dict(key[1])}
        assert unlabelled == {key for key in series(before) if "worker" not in dict(key[1])}
