"""Remote write beyond one Prometheus: VictoriaMetrics (Debian's ``victoria-metrics``) as a second
real receiver, the headers and external labels multi-tenant receivers need, and the way past one
machine: a Prometheus in agent mode scraping two app instances and forwarding to a central one.

Every server runs on loopback, started by the test; answers are polled for, never slept on.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import gunicorn, serve
from receivers import PROMETHEUS, free_ports, prometheus, victoria_metrics, wait_for
from test_prometheus import APP, METRIC, TRAFFIC, send


@contextmanager
def receiver(kind: str, workdir: Path, port: int) -> Iterator[Any]:
    if kind == "prometheus":
        with prometheus(workdir, port) as server:
            yield server
    else:
        with victoria_metrics(workdir, port) as server:
            yield server


class HeaderTap:
    """A loopback hop in front of a receiver that keeps each request's headers: what a
    multi-tenant gateway (Mimir's, Cortex's) would see."""

    def __init__(self, port: int, upstream: str) -> None:
        self.headers: list[dict[str, str]] = []
        tap = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tap.headers.append({k.lower(): v for k, v in self.headers.items()})
                forwarded = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                answer = requests.post(upstream, data=body, headers=forwarded, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"

    def __enter__(self) -> HeaderTap:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def agent(workdir: Path, port: int, targets: list[str], remote: str) -> list[str]:
    """A Prometheus in agent mode (no local queries): scrapes `targets`, forwards to `remote`."""
    (workdir / "agent.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs: [{{targets: [{', '.join(repr(t) for t in targets)}]}}]\n"
        "remote_write:\n"
        f"  - url: {remote}\n"
        "    queue_config: {batch_send_deadline: 1s}\n"
    )
    return [
        PROMETHEUS,
        "--enable-feature=agent",
        f"--config.file={workdir / 'agent.yml'}",
        f"--storage.agent.path={workdir / 'agent-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


@pytest.mark.parametrize("central", ["prometheus", "victoria-metrics"])
def test_an_agent_scrapes_two_instances_and_the_central_receiver_sums_them_exactly(
    central, tmp_path
):
    app_a, app_b, agent_port, central_port = free_ports(4)
    (tmp_path / "central").mkdir()
    (tmp_path / "agent").mkdir()
    with receiver(central, tmp_path / "central", central_port) as store:
        command = agent(
            tmp_path / "agent",
            agent_port,
            [f"127.0.0.1:{app_a}", f"127.0.0.1:{app_b}"],
            store.write_url,
        )
        with (
            serve(gunicorn(APP, app_a, "-w", "2"), app_a),
            serve(gunicorn(APP, app_b, "-w", "2"), app_b),
            serve(command, agent_port),
        ):
            send(app_a, lambda count: count)
            send(app_b, lambda count: 2 * count)
            expected = {key: float(3 * count) for key, (_, count) in TRAFFIC.items()}
            query = f"sum by (per, status) ({METRIC}_count{{program='shop'}})"
            wait_for(
                "the sums on the central receiver",
                lambda: store.vector(query, "per", "status") == expected,
                timeout=60,
            )
            by_instance = store.vector(f"sum by (instance) ({METRIC}_count)", "instance")
            assert len(by_instance) == 2, by_instance


@pytest.mark.parametrize("kind", ["prometheus", "victoria-metrics"])
def test_every_family_is_pushed_with_the_tenant_header_and_external_labels(kind, tmp_path):
    app_port, receiver_port, tap_port = free_ports(3)
    with (
        receiver(kind, tmp_path, receiver_port) as store,
        HeaderTap(tap_port, store.write_url) as tap,
    ):
        env = {
            "LAST9_REMOTE_WRITE_URL": tap.url,
            "LAST9_REMOTE_WRITE_INTERVAL": "1",
            "LAST9_REMOTE_WRITE_HEADERS": "X-Scope-OrgID=team-a, X-Extra = 1",
            "LAST9_REMOTE_WRITE_LABELS": "job=api,instance=web-1",
        }
        with serve(gunicorn(APP, app_port, "-w", "2"), app_port, env=env):
            send(app_port, lambda count: count)
            expected = {key: float(count) for key, (_, count) in TRAFFIC.items()}
            query = f"sum by (per, status) ({METRIC}_count{{program='shop'}})"
            wait_for("the pushed counts", lambda: store.vector(query, "per", "status") == expected)
            names = {item["metric"]["__name__"] for item in store.query('{job="api"}')}
            for family in (
                f"{METRIC}_bucket",
                "http_requests_in_flight",
                "last9_label_overflow_total",
                "process_resident_memory_bytes",
                "process_cpu_seconds_total",
                "python_gc_collections_total",
                "python_info",
                "last9_info",
                "last9_worker_starts_total",
            ):
                assert family in names, (family, sorted(names))
            # The external labels are on every series, and nothing came without them.
            everything = store.query('{__name__=~".+"}')
            assert everything and all(
                (item["metric"].get("job"), item["metric"].get("instance")) == ("api", "web-1")
                for item in everything
            )
            # Under gunicorn -w 2: one series per worker slot, and the master.
            workers = store.vector('process_resident_memory_bytes{job="api"}', "worker")
            assert set(workers) == {("0",), ("1",), ("master",)}, workers
        assert tap.headers and all(
            h.get("x-scope-orgid") == "team-a" and h.get("x-extra") == "1" for h in tap.headers
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAST9_REMOTE_WRITE_HEADERS": "Authorization=x"}, "set by last9"),
        ({"LAST9_REMOTE_WRITE_HEADERS": "Bad Name=x"}, "not a valid HTTP header name"),
        ({"LAST9_REMOTE_WRITE_HEADERS": "novalue"}, "LAST9_REMOTE_WRITE_HEADERS must be"),
        ({"LAST9_REMOTE_WRITE_LABELS": "__name__=x"}, "not a valid Prometheus label name"),
        ({"LAST9_REMOTE_WRITE_LABELS": "1job=x"}, "not a valid Prometheus label name"),
    ],
)
def test_bad_headers_and_labels_fail_at_start_up(env, message):
    import last9
    from last9 import remote_write

    full = {"LAST9_REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write", **env}
    with pytest.raises(last9.MetricsError, match=message):
        remote_write.start_from_env(last9.Registry(), full)
