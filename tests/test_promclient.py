"""prometheus_client both ways, and the runtime families of a single process.

Each case runs in a fresh interpreter: prometheus_client's default registry and last9's global
registry are process-wide, and these tests are about exactly those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families
from test_exposition import promtool_findings

from conftest import ROOT, free_port

APP = """
import json, sys
from prometheus_client import Counter
import last9
from last9.wsgi.middleware import RedMiddleware
from wsgi_helpers import call

ORDERS = Counter("app_orders", "Orders taken", ["kind"])

def orders(environ, start_response):
    ORDERS.labels(kind="book").inc()
    start_response("200 OK", [])
    return [b"ok"]

app = RedMiddleware(orders, program="shop")
for _ in range(3):
    call(app, "/order/1")
"""
PRINT_SCRAPE = "sys.stdout.write(last9.generate_latest().decode())"


def run(script: str, **env: str) -> str:
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", **env}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "LAST9_PROMETHEUS_CLIENT", "LAST9_SERVICE_VERSION"):
        if name not in env:
            full_env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=full_env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_the_scrape_carries_the_apps_counter_and_its_own_runtime():
    out = run(APP + PRINT_SCRAPE, OTEL_SERVICE_VERSION="9")
    found = families(out)
    assert [s.value for s in found["app_orders"] if s.name == "app_orders_total"] == [3.0]
    assert sum(s.value for s in found[METRIC] if s.name == f"{METRIC}_count") == 3
    # A single process: no worker label, prometheus_client's names, each family once.
    (rss,) = found["process_resident_memory_bytes"]
    assert rss.labels == {} and rss.value > 1_000_000
    assert {s.labels["generation"] for s in found["python_gc_collections"]} == {"0", "1", "2"}
    assert len(found["python_info"]) == 1
    assert out.count("# TYPE process_cpu_seconds_total counter") == 1
    (info,) = found["last9_info"]
    assert info.labels["service_version"] == "9" and info.labels["version"]
    assert [line for line in promtool_findings(out.encode()) if "milliseconds" not in line] == []


def test_openmetrics_has_one_eof_and_the_dedicated_port_serves_the_same():
    port = free_port()
    script = APP + textwrap.dedent(
        f"""
        import requests, time
        server = last9.start_metrics_server({port}, addr="127.0.0.1")
        om = last9.generate_latest(openmetrics=True).decode()
        for _ in range(200):  # the server binds on its own thread
            try:
                text = requests.get("http://127.0.0.1:{port}/metrics", timeout=10).text
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        print(json.dumps({{"om": om, "port": text}}))
        """
    )
    out = json.loads(run(script))
    assert out["om"].endswith("# EOF\n") and out["om"].count("# EOF") == 1
    assert 'app_orders_total{kind="book"} 3.0' in out["om"]
    assert "process_cpu_seconds_total " in out["om"]
    assert 'app_orders_total{kind="book"} 3.0' in out["port"]
    assert "process_resident_memory_bytes " in out["port"]


def test_a_setting_turns_prometheus_client_off():
    out = run(APP + PRINT_SCRAPE, LAST9_PROMETHEUS_CLIENT="0")
    found = families(out)
    assert "app_orders" not in found
    assert "process_resident_memory_bytes" in found  # the runtime stays


def test_a_name_collision_is_an_error_at_start_up():
    script = """
    from prometheus_client import Gauge
    import last9
    from last9.wsgi.middleware import RedMiddleware
    Gauge("http_requests_in_flight", "the app's own")
    try:
        RedMiddleware(lambda e, s: [], program="shop")
    except last9.MetricsError as error:
        print(error)
    """
    out = run(script)
    assert "http_requests_in_flight" in out and "LAST9_PROMETHEUS_CLIENT" in out


def test_prometheus_clients_own_endpoint_gets_last9s_families_without_recursion():
    script = APP + textwrap.dedent(
        """
        import prometheus_client
        prometheus_client.REGISTRY.register(last9.Last9Collector())
        theirs = prometheus_client.generate_latest().decode()
        ours = last9.generate_latest().decode()
        print(json.dumps({"theirs": theirs, "ours": ours}))
        """
    )
    out = json.loads(run(script))
    theirs = families(out["theirs"])
    assert sum(s.value for s in theirs[METRIC] if s.name == f"{METRIC}_count") == 3
    # prometheus_client's own process collector stays; last9's copy is left out of it.
    assert out["theirs"].count("# TYPE process_cpu_seconds_total counter") == 1
    # last9's scrape takes prometheus_client's registry, but not last9 back from it.
    assert out["ours"].count(f"# TYPE {METRIC} histogram") == 1
    assert 'app_orders_total{kind="book"} 3.0' in out["ours"]


METRIC = "http_requests_duration_milliseconds"
