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

import pytest
import requests

import last9
from conftest import gunicorn, serve
from last9 import config
from last9.wsgi.middleware import RedMiddleware
from receivers import Prometheus, free_ports, wait_for
from wsgi_helpers import call as wsgi_call

APP = "tests.apps.native_app:app"
METRIC = "http_requests_duration_milliseconds"
ROUTE = "/sleep/{ms}"
NATIVE_FLAGS = "--enable-feature=native-histograms,exemplar-storage"
PROTOBUF = (
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)
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


def classic_buckets(port: int) -> dict[float, float]:
    """Cumulative classic bucket counts of the route, summed over its series, by `le`."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{METRIC}_bucket{{") and f'per="{ROUTE}"' in line:
            le = float(line.split('le="')[1].split('"')[0])
            buckets[le] = buckets.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(q: float, cumulative: dict[float, float]) -> float:
    """PromQL's histogram_quantile over classic buckets: linear within the bucket of rank q·n."""
    bounds = sorted(cumulative)
    rank = q * cumulative[math.inf]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            if bound == math.inf:
                return lower
            return lower + (bound - lower) * (rank - below) / (cumulative[bound] - below)
        lower, below = bound, cumulative[bound]
    return lower


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
            classic_before = classic_buckets(app_port)

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda ms: call(app_port, ms), SLEEPS_MS))
            slept = [float(answer.split()[1]) for answer in answers]
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
            # The true p99 of what the requests took in the app: the sleeps as they ran.
            truth = true_quantile(slept, 0.99)
            assert abs(p99 - truth) / truth < 0.05, (p99, truth)
            # The classic buckets of the same traffic (the app's own text scrape, as PromQL's
            # histogram_quantile reads them) are coarser: 1.5× apart.
            after = classic_buckets(app_port)
            increase = {le: after[le] - classic_before.get(le, 0.0) for le in after}
            classic_p99 = bucket_quantile(0.99, increase)
            assert abs(p99 - truth) < abs(classic_p99 - truth), (p99, classic_p99, truth)
            print(f"p99: true {truth:.1f} ms, native {p99:.1f} ms, classic {classic_p99:.1f} ms")

            # Traced requests: their trace ids come back as exemplars, from both workers. Each
            # scrape takes one exemplar per series, so requests go on until both have shown.
            served_by: dict[str, str] = {}
            start = time.time()

            def exemplar_pids() -> set[str] | None:
                for _ in range(4):
                    trace_id, header = traceparent()
                    served_by[trace_id] = call(app_port, 5, header).split()[0]
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

        def scrape_protobuf() -> requests.Response | None:
            response = requests.get(
                f"http://127.0.0.1:{app_port}/metrics", headers={"Accept": accept}, timeout=10
            )
            assert response.headers["Content-Type"] == PROTOBUF
            # A request is recorded once its body is closed, just after the client has it:
            # the first family is the duration histogram's as soon as it has a series.
            return response if METRIC.encode() in response.content[:64] else None

        wait_for("the request in the protobuf scrape", scrape_protobuf, timeout=10)
        text = requests.get(f"http://127.0.0.1:{app_port}/metrics", timeout=10)
        assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")


# --- Settings ---------------------------------------------------------------------------------


def test_both_kinds_are_kept_by_default_and_either_can_be_turned_off():
    settings = config.resolve(environ={})
    assert settings.classic_histograms is True
    assert settings.native_histograms == config.NativeHistograms(3, 160, 2.0**-128)
    env = {
        "LAST9_NATIVE_HISTOGRAMS": "off",
        "LAST9_CLASSIC_HISTOGRAMS": "yes",
    }
    assert config.resolve(environ=env).native_histograms is None
    env = {
        "LAST9_CLASSIC_HISTOGRAMS": "0",
        "LAST9_NATIVE_SCHEMA": "-2",
        "LAST9_NATIVE_MAX_BUCKETS": "40",
        "LAST9_NATIVE_ZERO_THRESHOLD": "0.001",
    }
    settings = config.resolve(environ=env)
    assert settings.classic_histograms is False
    assert settings.native_histograms == config.NativeHistograms(-2, 40, 0.001)
    # Keywords win over the environment.
    settings = config.resolve(environ=env, classic_histograms=True, native_schema=5)
    assert settings.classic_histograms is True
    assert settings.native_histograms == config.NativeHistograms(5, 40, 0.001)


@pytest.mark.parametrize(
    ("options", "env", "named"),
    [
        ({}, {"LAST9_NATIVE_HISTOGRAMS": "maybe"}, "LAST9_NATIVE_HISTOGRAMS"),
        ({"classic_histograms": False, "native_histograms": False}, {}, "both off"),
        ({}, {"LAST9_NATIVE_SCHEMA": "9"}, "LAST9_NATIVE_SCHEMA"),
        ({"native_schema": 2.5}, {}, "LAST9_NATIVE_SCHEMA"),
        ({}, {"LAST9_NATIVE_MAX_BUCKETS": "0"}, "LAST9_NATIVE_MAX_BUCKETS"),
        ({}, {"LAST9_NATIVE_MAX_BUCKETS": "many"}, "LAST9_NATIVE_MAX_BUCKETS"),
        ({}, {"LAST9_NATIVE_ZERO_THRESHOLD": "-1"}, "LAST9_NATIVE_ZERO_THRESHOLD"),
        ({"native_zero_threshold": float("nan")}, {}, "LAST9_NATIVE_ZERO_THRESHOLD"),
    ],
)
def test_bad_histogram_settings_name_the_setting(options, env, named):
    with pytest.raises(last9.MetricsError, match=named):
        config.resolve(environ=env, **options)


def test_without_classic_buckets_text_keeps_only_inf_sum_and_count():
    def hello(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    app = RedMiddleware(
        hello, registry=last9.Registry(), program="native-only", classic_histograms=False
    )
    wsgi_call(app, "/x")
    text = wsgi_call(app, "/metrics")[2].decode()
    ours = [line for line in text.splitlines() if 'program="native-only"' in line]
    buckets = [line for line in ours if line.startswith(f"{METRIC}_bucket")]
    assert len(buckets) == 1 and 'le="+Inf"} 1' in buckets[0], buckets
    assert any(line.startswith(f"{METRIC}_count") for line in ours)
    assert any(line.startswith(f"{METRIC}_sum") for line in ours)


def test_the_dedicated_server_negotiates_protobuf():
    registry = last9.Registry()
    recorder = last9.Recorder(registry, hostname="box", program="pb")
    recorder.observe(None, "/x", "h", "GET", 200, 2_000_000)
    server = last9.start_metrics_server(0, "127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        response = requests.get(url, headers={"Accept": PROTOBUF}, timeout=10)
        assert response.headers["Content-Type"] == PROTOBUF
        assert METRIC.encode() in response.content[:64]
        om = requests.get(url, headers={"Accept": "application/openmetrics-text"}, timeout=10)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    finally:
        server.stop()


def test_remote_write_stores_native_series_equal_to_the_scrape(tmp_path):
    app_port, prom = with_prometheus(tmp_path, NATIVE_FLAGS)
    # No scrape: Prometheus only receives.
    prom.args = [a for a in prom.args if not a.startswith("--config.file")]
    (tmp_path / "empty.yml").write_text("global:\n  scrape_interval: 1s\n")
    prom.args.append(f"--config.file={tmp_path / 'empty.yml'}")
    started(prom)
    try:
        env = {
            "LAST9_REMOTE_WRITE_URL": prom.write_url,
            "LAST9_REMOTE_WRITE_INTERVAL": "1",
            "LAST9_REMOTE_WRITE_NATIVE_HISTOGRAMS": "1",
        }
        with serve(gunicorn(APP, app_port, "-w", "2", "--threads", "4"), app_port, env=env):
            trace_id, header = traceparent()
            for ms in (1, 2, 5, 20, 50):
                call(app_port, ms, header)

            def scraped() -> tuple[float, float] | None:
                text = requests.get(f"http://127.0.0.1:{app_port}/metrics", timeout=10).text
                mine = [line for line in text.splitlines() if f'per="{ROUTE}"' in line]
                count, total = 0.0, 0.0
                for line in mine:
                    value = float(line.rsplit(" ", 1)[1])
                    if line.startswith(f"{METRIC}_count"):
                        count += value
                    elif line.startswith(f"{METRIC}_sum"):
                        total += value
                # A request is recorded just after its client has the answer.
                return (count, total) if count == 5 else None

            scraped_count, scraped_sum = wait_for("the five requests", scraped, timeout=10)

            def pushed() -> tuple[float, float] | None:
                selector = f"sum({METRIC}{{per='{ROUTE}'}})"
                count = prom.vector(f"histogram_count({selector})")
                total = prom.vector(f"histogram_sum({selector})")
                if not count or not total:
                    return None
                return count[()], total[()]

            count, total = wait_for("the pushed native series", pushed)
            assert count == scraped_count
            assert abs(total - scraped_sum) < 1e-6 * scraped_sum

            # The exemplar rides along (Prometheus drops it on the first push, which creates
            # the series, and keeps it from the next one on).
            def exemplar_ids() -> set[str] | None:
                data = prom.api(
                    "query_exemplars",
                    query=f"{METRIC}{{per='{ROUTE}'}}",
                    start=f"{time.time() - 60:.3f}",
                    end=f"{time.time() + 5:.3f}",
                )
                found = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
                return found or None

            assert wait_for("the pushed exemplar", exemplar_ids) == {trace_id}
    finally:
        prom.stop()


def test_a_traceparent_becomes_an_openmetrics_exemplar_and_a_bad_one_does_not():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    def hello(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    registry = last9.Registry()
    app = RedMiddleware(hello, registry=registry, program="traced")
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    wsgi_call(app, "/good", HTTP_TRACEPARENT=f"00-{trace_id}-00f067aa0ba902b7-01")
    wsgi_call(app, "/bad", HTTP_TRACEPARENT=f"00-{trace_id}-0000000000000000-01")
    wsgi_call(app, "/none")
    text = registry.render(openmetrics=True).decode()
    exemplars = {
        sample.labels["per"]: sample.exemplar
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.exemplar is not None
    }
    assert list(exemplars) == ["/good"]
    assert exemplars["/good"].labels == {"trace_id": trace_id, "span_id": "00f067aa0ba902b7"}
    assert " # {" not in registry.render().decode(), "text 0.0.4 has no exemplars"


def test_an_asgi_request_traceparent_becomes_its_exemplar():
    from test_asgi import hello, http_scope, run

    from last9.asgi.middleware import RedMiddleware as AsgiMiddleware

    registry = last9.Registry()
    app = AsgiMiddleware(hello, registry=registry, program="traced-asgi")
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    scope = http_scope("/traced")
    scope["headers"].append((b"traceparent", f"00-{trace_id}-b7ad6b7169203331-01".encode()))
    run(app, scope)
    run(app, http_scope("/plain"))
    text = registry.render(openmetrics=True).decode()
    traced = [line for line in text.splitlines() if " # {" in line]
    assert len(traced) == 1 and 'per="/traced"' in traced[0], traced
    assert f'trace_id="{trace_id}",span_id="b7ad6b7169203331"' in traced[0]


def test_the_recording_opentelemetry_span_wins_over_the_traceparent_header():
    from opentelemetry.sdk.trace import TracerProvider

    def hello(environ, start_response):
        start_response("200 OK", [])
        return [b"ok"]

    registry = last9.Registry()
    app = RedMiddleware(hello, registry=registry, program="otel")
    tracer = TracerProvider().get_tracer("test")
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracer.start_as_current_span("request") as span:
        wsgi_call(app, "/x", HTTP_TRACEPARENT=header)
    context = span.get_span_context()
    text = registry.render(openmetrics=True).decode()
    (line,) = [line for line in text.splitlines() if " # {" in line]
    assert f'trace_id="{context.trace_id:032x}",span_id="{context.span_id:016x}"' in line
