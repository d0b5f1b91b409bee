"""Native histograms and exemplars against a real Prometheus (Debian's 2.42).

With ``--enable-feature=native-histograms,exemplar-storage`` Prometheus asks for protobuf first and
stores only the native series of a histogram that has both kinds; it takes one exemplar per series
per scrape, from the classic buckets' exemplar fields. Without the flag it asks for OpenMetrics
text and stores classic buckets, as before. The app runs under ``gunicorn -w 2``, so every figure
below is the sum over both workers, read from the shared store.
"""

from __future__ import annotations

import math
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from test_prometheus import Prometheus, free_ports, wait_for

from conftest import gunicorn, serve

APP = "tests.apps.native_app:app"
METRIC = "http_requests_duration_milliseconds"
ROUTE = "/sleep/{ms}"
NATIVE_FLAGS = "--enable-feature=native-histograms,exemplar-storage"
#: The known server-side durations: one request sleeping each of 1..214 ms. At schema 3 the
#: slowest ones fill the bucket (196.7, 214.5] ms, where the 99th percentile lies.
SLEEPS_MS = list(range(1, 215))


def traceparent() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def call(port: int, ms: int, header: str | None = None) -> str:
    headers = {"traceparent": header} if header else {}
    response = requests.get(f"http://127.0.0.1:{port}/sleep/{ms}", headers=headers, timeout=10)
    assert response.status_code == 200
    return response.text


def true_quantile(values: list[float], q: float) -> float:
    """The q-quantile of `values` as Prometheus ranks it (rank q·n, linear between neighbours)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def with_prometheus(tmp_path, *flags: str):
    app_port, prom_port = free_ports(2)
    server = Prometheus(tmp_path, prom_port, scrape_target=f"127.0.0.1:{app_port}")
    server.args.extend(flags)
    return app_port, server


def started(server: Prometheus) -> Prometheus:
    server.start()
    return server


def test_native_p99_within_5_percent_and_exemplars_from_both_workers(tmp_path):
    app_port, prom = with_prometheus(tmp_path, NATIVE_FLAGS)
    with serve(gunicorn(APP, app_port, "-w", "2", "--threads", "8"), app_port):
        try:
            started(prom)
            # A first request makes the series exist before the baseline: a series that first
            # appears with its counts already in it shows no increase to rate().
            call(app_port, 1)
            prom.wait_for_scrapes_after(time.time())
            baseline_at = time.time()

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda ms: call(app_port, ms), SLEEPS_MS))
            prom.wait_for_scrapes_after(time.time())

            # Counts are exact, on the native series (the only one Prometheus keeps here).
            count = prom.vector(f"histogram_count(sum by (per) ({METRIC}{{per='{ROUTE}'}}))", "per")
            assert count == {(ROUTE,): len(SLEEPS_MS) + 1.0}
            classic = prom.query(f"{METRIC}_bucket{{per='{ROUTE}'}}")
            assert classic == [], "with native histograms on, 2.42 stores the native series only"

            window = math.ceil(time.time() - baseline_at) + 3
            p99 = prom.vector(
                f"histogram_quantile(0.99, sum(rate({METRIC}{{per='{ROUTE}'}}[{window}s])))"
            )[()]
            truth = true_quantile([float(ms) for ms in SLEEPS_MS], 0.99)
            assert abs(p99 - truth) / truth < 0.05, (p99, truth)

            # Traced requests: their trace ids come back as exemplars, from both workers. Each
            # scrape takes one exemplar per series, so requests go on until both have shown.
            served_by: dict[str, str] = {}
            start = time.time()

            def exemplar_pids() -> set[str] | None:
                for _ in range(4):
                    trace_id, header = traceparent()
                    served_by[trace_id] = call(app_port, 5, header)
                data = prom.api(
                    "query_exemplars",
                    query=f"{METRIC}{{per='{ROUTE}'}}",
                    start=f"{start - 5:.3f}",
                    end=f"{time.time() + 5:.3f}",
                )
                found = [e["labels"]["trace_id"] for series in data for e in series["exemplars"]]
                assert set(found) <= set(served_by), "only trace ids the requests carried"
                pids = {served_by[t] for t in found}
                return pids if len(pids) == 2 else None

            assert len(wait_for("exemplars from both workers", exemplar_pids, timeout=60)) == 2
        finally:
            prom.stop()


def test_without_the_feature_flag_classic_buckets_are_scraped_as_before(tmp_path):
    app_port, prom = with_prometheus(tmp_path)
    with serve(gunicorn(APP, app_port, "-w", "2", "--threads", "4"), app_port):
        try:
            started(prom)
            for ms in (1, 2, 3):
                call(app_port, ms)
            prom.wait_for_scrapes_after(time.time())
            count = prom.vector(f"sum by (per) ({METRIC}_count{{per='{ROUTE}'}})", "per")
            assert count == {(ROUTE,): 3.0}
            buckets = prom.vector(f"sum by (le) ({METRIC}_bucket{{per='{ROUTE}'}})", "le")
            assert len(buckets) == 32 and buckets[("+Inf",)] == 3.0
            target = prom.target()
            assert target is not None and target["health"] == "up", target
        finally:
            prom.stop()


def test_protobuf_is_negotiated_on_the_in_app_path(tmp_path):
    (app_port,) = free_ports(1)
    with serve(gunicorn(APP, app_port, "-w", "2"), app_port):
        call(app_port, 1)
        accept = (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
            "encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3"
        )
        response = requests.get(
            f"http://127.0.0.1:{app_port}/metrics", headers={"Accept": accept}, timeout=10
        )
        assert response.headers["Content-Type"] == (
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
            "encoding=delimited"
        )
        # A length-delimited MetricFamily whose name is the duration histogram's.
        body = response.content
        assert METRIC.encode() in body[:64]
        text = requests.get(f"http://127.0.0.1:{app_port}/metrics", timeout=10)
        assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
