"""Against a real Prometheus (Debian's ``prometheus``): scraping, PromQL, and remote-write push.

Prometheus runs on loopback with a temporary data directory, scraping every second or receiving
remote writes. The tests poll its HTTP API until the expected answer appears rather than sleeping.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from prometheus_client.parser import text_string_to_metric_families

import last9
from conftest import gunicorn, parse, scrape, serve
from receivers import Prometheus, free_ports, prometheus, wait_for

METRIC = "http_requests_duration_milliseconds"
APP = "tests.apps.flask_app:app"
#: Samples one series pushes: 31 finite buckets and +Inf, sum, count.
SAMPLES_PER_SERIES = 31 + 1 + 2
#: Samples a snapshot of one series pushes: the series, and last9_label_overflow_total's two
#: samples (remote write pushes every family).
SAMPLES_PER_PUSH = SAMPLES_PER_SERIES + 2
#: A password and its bcrypt hash (cost 4), for Prometheus' basic_auth_users.
PASSWORD = "s3cret-pw"
PASSWORD_HASH = "$2b$04$ryzFv6YZvfI1uBVKSUASvOa6G2BpOi0x6mJ1TcK347/LtHoLt1EMW"


def get(port: int, path: str) -> int:
    return requests.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code


#: Requests sent to the test app, by (per, status), and a path for each.
TRAFFIC = {
    ("/name/{name}", "200"): ("/name/ada", 7),
    ("/unmatched", "404"): ("/no/such/page", 3),
    ("/boom", "500"): ("/boom", 2),
    ("/slow/{ms}", "200"): ("/slow/250", 4),
}


def send(port: int, times: Callable[[int], int]) -> None:
    for (_, status), (path, count) in TRAFFIC.items():
        for _ in range(times(count)):
            assert get(port, path) == int(status)


def bucket_around(ms: float) -> tuple[float, float]:
    """The (lower, upper] bounds of the default bucket that holds `ms`."""
    bounds = [0.25 * 1.5**k for k in range(31)]
    upper = next(b for b in bounds if b >= ms)
    return max((b for b in bounds if b < ms), default=0.0), upper


# --- Scraping -------------------------------------------------------------------------------


def test_prometheus_scrapes_the_app_and_promql_counts_exactly(tmp_path):
    app_port, prom_port = free_ports(2)
    access_log = tmp_path / "access.log"
    command = gunicorn(
        APP,
        app_port,
        "-w",
        "2",
        "--threads",
        "4",
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        "%(U)s|%({user-agent}i)s|%({accept}i)s|%({content-type}o)s",
    )
    with (
        serve(command, app_port),
        prometheus(tmp_path, prom_port, scrape_target=f"127.0.0.1:{app_port}") as prom,
    ):
        # One request of each kind first, so that every series exists before the baseline and
        # the difference below is a plain subtraction of two samples, with no extrapolation.
        send(app_port, lambda _: 1)
        prom.wait_for_scrapes_after(time.time())
        baseline_at = time.time()
        before = prom.vector(f"sum by (per, status) ({METRIC}_count)", "per", "status")
        assert before == {key: 1.0 for key in TRAFFIC}

        send(app_port, lambda count: count)
        prom.wait_for_scrapes_after(time.time())

        # The increase between the last sample before the traffic and the last one after it.
        increase = prom.vector(
            f"sum by (per, status) ({METRIC}_count)"
            f" - sum by (per, status) ({METRIC}_count @ {baseline_at:.3f})",
            "per",
            "status",
        )
        assert increase == {key: float(count) for key, (_, count) in TRAFFIC.items()}

        # The slow route's 99th percentile lies in the bucket that holds its 250 ms delay.
        window = math.ceil(time.time() - baseline_at) + 5
        quantile = prom.vector(
            f"histogram_quantile(0.99, sum by (le, per)"
            f" (rate({METRIC}_bucket{{per='/slow/{{ms}}'}}[{window}s])))",
            "per",
        )
        lower, upper = bucket_around(250)
        assert lower < quantile[("/slow/{ms}",)] <= upper, (lower, quantile, upper)

        # The scrapes succeeded and nothing in them was refused.
        assert prom.vector("up", "job") == {("shop",): 1.0}
        target = prom.target()
        assert target is not None
        assert (target["health"], target["lastError"]) == ("up", "")
        assert prom.vector("scrape_samples_scraped", "job")[("shop",)] > 0
        own = {
            sample.name: sample.value
            for family in text_string_to_metric_families(prom.get("/metrics").text)
            for sample in family.samples
        }
        for refused in (
            "prometheus_target_scrapes_sample_duplicate_timestamp_total",
            "prometheus_target_scrapes_sample_out_of_order_total",
            "prometheus_target_scrapes_sample_out_of_bounds_total",
            "prometheus_target_scrapes_exceeded_sample_limit_total",
        ):
            assert own[refused] == 0, refused

    # Prometheus asked for OpenMetrics and got it, on every scrape.
    scrapes = [
        line.split("|")
        for line in access_log.read_text().splitlines()
        if line.startswith("/metrics|Prometheus/")
    ]
    assert len(scrapes) >= 4
    for _, _, accept, content_type in scrapes:
        assert accept.startswith("application/openmetrics-text"), accept
        assert content_type.startswith("application/openmetrics-text; version=1.0.0"), content_type


# --- Scraping the dedicated server, protected ------------------------------------------------


def wait_until_scraped(prom: Prometheus, program: str) -> dict[tuple[str, ...], float]:
    """Waits until the target is up and the program's series have arrived; returns them."""

    def counts() -> dict[tuple[str, ...], float] | None:
        target = prom.target()
        if target is None or target["health"] != "up":
            return None
        return pushed_counts(prom, program) or None

    found = wait_for("the protected target to be scraped", counts)
    assert prom.vector("up", "job") == {("shop",): 1.0}
    target = prom.target()
    assert target is not None and (target["health"], target["lastError"]) == ("up", "")
    return found


def test_prometheus_scrapes_the_dedicated_server_with_basic_auth_from_the_environment(tmp_path):
    app_port, metrics_port, prom_port = free_ports(3)
    env = {
        "LAST9_METRICS_PORT": str(metrics_port),
        "LAST9_METRICS_ADDR": "127.0.0.1",
        "LAST9_METRICS_USERNAME": "prom",
        "LAST9_METRICS_PASSWORD": PASSWORD,
    }
    options = f"basic_auth: {{username: prom, password: '{PASSWORD}'}}"
    with (
        serve(gunicorn(APP, app_port, "-w", "2"), app_port, env=env),
        prometheus(
            tmp_path,
            prom_port,
            scrape_target=f"127.0.0.1:{metrics_port}",
            scrape_options=options,
        ) as prom,
    ):
        send(app_port, lambda count: count)
        expected = {key: float(count) for key, (_, count) in TRAFFIC.items()}
        wait_for("the exact counts", lambda: wait_until_scraped(prom, "shop") == expected)
        anonymous = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")
        wrong = requests.get(
            f"http://127.0.0.1:{metrics_port}/metrics", auth=("prom", "nope"), timeout=10
        )
        assert wrong.status_code == 401


def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, as PEM."""
    authority = trustme.CA()
    server, client = authority.issue_cert("127.0.0.1"), authority.issue_cert("prometheus")
    files = {
        name: tmp_path / f"{name}.pem"
        for name in ("ca", "cert", "key", "client_cert", "client_key")
    }
    authority.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return files


@pytest.mark.parametrize("case", ["bearer", "tls", "tls-client-cert"])
def test_prometheus_scrapes_the_protected_dedicated_server(tmp_path, registry, case):
    files = tls_files(tmp_path)
    recorder = last9.Recorder(registry, hostname="box", program="guarded")
    recorder.observe("/secure", "/secure", "localhost", "GET", 200, 3_000_000)
    protection: dict[str, Any] = {}
    options = ""
    if case == "bearer":
        protection = {"bearer_token": "tok-42"}
        options = "authorization: {type: Bearer, credentials: tok-42}"
    else:
        protection = {"tls_cert_file": files["cert"], "tls_key_file": files["key"]}
        options = f"scheme: https\ntls_config:\n  ca_file: {files['ca']}\n"
        if case == "tls-client-cert":
            protection["tls_client_ca_file"] = files["ca"]
            options += f"  cert_file: {files['client_cert']}\n  key_file: {files['client_key']}\n"
        protection |= {"username": "prom", "password": PASSWORD}
        options += f"basic_auth: {{username: prom, password: '{PASSWORD}'}}"
    server = last9.start_metrics_server(0, "127.0.0.1", registry=registry, **protection)
    scheme = "http" if case == "bearer" else "https"
    url = f"{scheme}://127.0.0.1:{server.port}/metrics"
    (prom_port,) = free_ports(1)
    try:
        with prometheus(
            tmp_path,
            prom_port,
            scrape_target=f"127.0.0.1:{server.port}",
            scrape_options=options,
        ) as prom:
            assert wait_until_scraped(prom, "guarded") == {("/secure", "200"): 1.0}
        if case == "tls-client-cert":
            # Without a client certificate the handshake itself fails.
            with pytest.raises(requests.exceptions.ConnectionError):
                requests.get(url, verify=str(files["ca"]), timeout=10)
            client = (str(files["client_cert"]), str(files["client_key"]))
            anonymous = requests.get(url, verify=str(files["ca"]), cert=client, timeout=10)
        else:
            anonymous = requests.get(url, verify=str(files["ca"]), timeout=10)
        assert anonymous.status_code == 401
    finally:
        server.stop()


# --- Remote write ---------------------------------------------------------------------------


def pushed_counts(prom: Prometheus, program: str) -> dict[tuple[str, ...], float]:
    return prom.vector(
        f"sum by (per, status) ({METRIC}_count{{program='{program}'}})", "per", "status"
    )


def pushed_samples(prom: Prometheus, program: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every pushed sample of the program, keyed like `conftest.parse` keys a scrape."""
    selector = f"{{__name__=~'{METRIC}_(bucket|sum|count)', program='{program}'}}"
    samples = {}
    for item in prom.query(selector):
        labels = dict(item["metric"])
        key = (("__name__", labels.pop("__name__")), *sorted(labels.items()))
        samples[key] = float(item["value"][1])
    return samples


def test_the_app_pushes_exact_counts_on_its_interval(tmp_path):
    app_port, prom_port = free_ports(2)
    with prometheus(tmp_path, prom_port) as prom:
        env = {"LAST9_REMOTE_WRITE_URL": prom.write_url, "LAST9_REMOTE_WRITE_INTERVAL": "1"}
        with serve(gunicorn(APP, app_port, "-w", "2", "--threads", "4"), app_port, env=env):
            send(app_port, lambda count: count)
            expected = {key: float(count) for key, (_, count) in TRAFFIC.items()}
            wait_for("the pushed counts", lambda: pushed_counts(prom, "shop") == expected)
            # What was pushed is exactly what a scrape shows: every bucket, sum and count, with
            # the same labels and values.
            exposed = {
                key: value
                for key, value in parse(scrape(app_port).text).items()
                if dict(key)["__name__"].startswith(f"{METRIC}_")
            }
            wait_for("the pushed samples", lambda: pushed_samples(prom, "shop") == exposed)
        assert len(exposed) == len(TRAFFIC) * SAMPLES_PER_SERIES
        (bucket,) = prom.query(f"{METRIC}_bucket{{per='/slow/{{ms}}', le='+Inf'}}")
        labels = bucket["metric"]
        assert (labels["program"], labels["tenant"], labels["cluster"]) == ("shop", "acme", "test")
        assert (labels["method"], labels["status"], labels["domain"]) == ("GET", "200", "127.0.0.1")
        assert labels["hostname"] == socket.gethostname()


def test_the_last_snapshot_is_pushed_when_the_app_exits(tmp_path):
    app_port, prom_port = free_ports(2)
    with prometheus(tmp_path, prom_port) as prom:
        # An hour between pushes: only the exit hook can deliver these counts.
        env = {"LAST9_REMOTE_WRITE_URL": prom.write_url, "LAST9_REMOTE_WRITE_INTERVAL": "3600"}
        with serve(gunicorn(APP, app_port, "-w", "1"), app_port, env=env) as app:
            send(app_port, lambda count: count)
            assert pushed_counts(prom, "shop") == {}
            app.terminate()
            assert app.wait(timeout=30) == 0
        expected = {key: float(count) for key, (_, count) in TRAFFIC.items()}
        wait_for("the counts pushed at exit", lambda: pushed_counts(prom, "shop") == expected)


def count_samples(prom: Prometheus, program: str) -> list[float]:
    """Every `_count` sample Prometheus holds for the program's one series, oldest first."""
    (series,) = prom.query(f"{METRIC}_count{{program='{program}'}}[1h]")
    return [float(value) for _, value in series["values"]]


@contextmanager
def outage(
    tmp_path: Path, registry: last9.Registry, program: str, max_pending: int
) -> Iterator[tuple[last9.RemoteWriter, list[float]]]:
    """Pushes one snapshot, takes five while Prometheus is down, then brings it back.

    Yields the writer once its queue is empty again, and the `_count` samples Prometheus holds.
    """
    (port,) = free_ports(1)
    prom = Prometheus(tmp_path, port)
    prom.start()
    recorder = last9.Recorder(registry, hostname="box", program=program)
    writer = last9.start_remote_write(
        prom.write_url, registry=registry, interval=3600, max_pending=max_pending
    )
    try:

        def request() -> None:
            recorder.observe("/job", "/job", "localhost", "GET", 200, 1_000_000)

        request()
        assert writer.flush(timeout=10)
        prom.stop()
        for taken in range(2, 7):
            request()
            writer.flush(timeout=0)  # asks for a snapshot, which stays queued: the receiver is down
            wait_for(f"snapshot {taken}", lambda taken=taken: writer.snapshots == taken)
        wait_for("a failed attempt", lambda: writer.failed_attempts > 0)
        assert writer.pending == min(5, max_pending)
        prom.start()  # same port, same data directory
        # The writer finds the receiver back on its own (backoff), without a new snapshot.
        wait_for("the queue to drain", lambda: writer.pending == 0)
        assert writer.snapshots == 6
        yield writer, count_samples(prom, program)
    finally:
        writer.stop(timeout=5)
        prom.stop()


def test_nothing_queued_is_lost_while_the_receiver_is_down(tmp_path, registry):
    with outage(tmp_path, registry, "outage", max_pending=10) as (writer, samples):
        # The snapshot before the outage and the five taken during it, in order.
        assert samples == [1, 2, 3, 4, 5, 6]
        assert writer.dropped_samples == 0
        assert writer.sent_samples == 6 * SAMPLES_PER_PUSH


def test_snapshots_past_the_queue_bound_are_dropped_counted_and_logged(tmp_path, registry, caplog):
    caplog.set_level(logging.WARNING, logger="last9.remote_write")
    with outage(tmp_path, registry, "overflow", max_pending=2) as (writer, samples):
        # The oldest three snapshots of the outage (values 2, 3, 4) were pushed out of the queue;
        # the totals still arrive, since every snapshot carries the cumulative counts.
        assert samples == [1, 5, 6]
        assert writer.dropped_samples == 3 * SAMPLES_PER_PUSH
        assert writer.sent_samples == 3 * SAMPLES_PER_PUSH
    drops = [r for r in caplog.records if r.name == "last9.remote_write" and "full" in r.message]
    assert [r.levelno for r in drops] == [logging.WARNING] * 3
    assert f"{3 * SAMPLES_PER_PUSH} dropped in all" in drops[-1].message
    assert any("failed" in r.message for r in caplog.records)


def test_https_with_basic_auth_and_no_retry_on_a_rejection(tmp_path, registry, caplog):
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    web_config = (
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
        f"basic_auth_users:\n  pusher: '{PASSWORD_HASH}'\n"
    )
    (port,) = free_ports(1)
    with prometheus(
        tmp_path, port, web_config=web_config, ca_file=ca_file, auth=("pusher", PASSWORD)
    ) as prom:
        recorder = last9.Recorder(registry, hostname="box", program="tls")
        recorder.observe("/secure", "/secure", "localhost", "POST", 201, 3_000_000)

        wrong = last9.start_remote_write(
            prom.write_url, registry=registry, username="pusher", password="nope", ca_file=ca_file
        )
        # 401 is the request's fault: dropped and counted at once, never retried.
        assert wrong.flush(timeout=10)
        assert (wrong.dropped_samples, wrong.failed_attempts) == (SAMPLES_PER_PUSH, 0)
        wrong.stop(timeout=0)
        assert any("HTTP 401" in r.message for r in caplog.records)

        writer = last9.start_remote_write(
            prom.write_url.replace("https://", f"https://pusher:{PASSWORD}@"),
            registry=registry,
            ca_file=ca_file,
        )
        assert writer.url == prom.write_url  # credentials never shown
        assert writer.flush(timeout=10)
        assert (writer.sent_samples, writer.dropped_samples) == (SAMPLES_PER_PUSH, 0)
        assert pushed_counts(prom, "tls") == {("/secure", "201"): 1.0}
        writer.stop(timeout=5)

        untrusted = last9.start_remote_write(
            prom.write_url, registry=registry, username="pusher", password=PASSWORD
        )
        # The test CA is not among the public roots: a TLS failure, retried like a network one.
        assert not untrusted.flush(timeout=1)
        assert untrusted.failed_attempts > 0 and untrusted.sent_samples == 0
        untrusted.stop(timeout=0)


# --- Settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAST9_REMOTE_WRITE_URL": "prometheus:9090/api/v1/write"}, "http:// or https://"),
        (
            {"LAST9_REMOTE_WRITE_URL": "http://h/", "LAST9_REMOTE_WRITE_INTERVAL": "soon"},
            "LAST9_REMOTE_WRITE_INTERVAL must be a number",
        ),
        (
            {"LAST9_REMOTE_WRITE_URL": "http://h/", "LAST9_REMOTE_WRITE_INTERVAL": "0"},
            "LAST9_REMOTE_WRITE_INTERVAL must be a positive",
        ),
        (
            {"LAST9_REMOTE_WRITE_URL": "http://h/", "LAST9_REMOTE_WRITE_MAX_PENDING": "0"},
            "LAST9_REMOTE_WRITE_MAX_PENDING must be at least 1",
        ),
        (
            {"LAST9_REMOTE_WRITE_URL": "http://h/", "LAST9_REMOTE_WRITE_USERNAME": "u"},
            "password is not",
        ),
        (
            {
                "LAST9_REMOTE_WRITE_URL": "http://u:p@h/",
                "LAST9_REMOTE_WRITE_BEARER_TOKEN": "t",
            },
            "not both",
        ),
        (
            {"LAST9_REMOTE_WRITE_URL": "https://h/", "LAST9_REMOTE_WRITE_CA_FILE": "/no/such.pem"},
            "cannot read ca_file",
        ),
    ],
)
def test_bad_remote_write_settings_fail_at_start_up(monkeypatch, registry, env, message):
    from flask import Flask

    from last9.wsgi.middleware import RedMiddleware

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(last9.MetricsError, match=message):
        RedMiddleware(Flask("bad"), registry=registry)


def test_bad_arguments_fail_with_metrics_error(registry):
    with pytest.raises(last9.MetricsError, match="interval must be a positive"):
        last9.start_remote_write("http://127.0.0.1:9/", registry=registry, interval=-1)
    with pytest.raises(last9.MetricsError, match="max_pending must be at least 1"):
        last9.start_remote_write("http://127.0.0.1:9/", registry=registry, max_pending=0)
    with pytest.raises(last9.MetricsError, match="bearer token, not both"):
        last9.start_remote_write(
            "http://127.0.0.1:9/", registry=registry, username="u", password="p", bearer_token="t"
        )


def test_one_worker_leads_the_push_and_another_takes_over(tmp_path):
    """Workers stand by for the remote-write lock; the next one leads when the leader dies."""
    import multiprocessing

    lock = tmp_path / "remote-write.lock"
    context = multiprocessing.get_context("fork")
    led = context.Queue()

    def worker(name: str) -> None:
        from last9.remote_write import lead_when_possible

        lead_when_possible(lock, lambda: led.put(name), retry=0.05)
        time.sleep(60)

    first = context.Process(target=worker, args=("first",))
    first.start()
    assert led.get(timeout=10) == "first"
    second = context.Process(target=worker, args=("second",))
    second.start()
    try:
        time.sleep(0.5)
        assert led.empty(), "a second worker led while the first was alive"
        first.kill()
        assert led.get(timeout=10) == "second"
    finally:
        for process in (first, second):
            process.kill()
            process.join()
