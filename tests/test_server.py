"""The dedicated metrics server under hostile clients, and its content negotiation and settings.

The flood test runs the server in a process of its own, so that its threads, descriptors and
memory can be read from /proc while thousands of real sockets drip-feed it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import trustme

import last9

#: Renders run on at most this many threads (server.rs MAX_RENDERS).
MAX_RENDERS = 2
#: The server's connection cap when the process may open 4096 descriptors or more.
CONNECTION_CAP = 1024

SERVER = """
import sys, last9
registry = last9.Registry()
recorder = last9.Recorder(registry, hostname="box", program="flood")
recorder.observe("/a", "/a", "localhost", "GET", 200, 1_000_000)
server = last9.start_metrics_server(0, "127.0.0.1", registry=registry)
print(server.port, flush=True)
sys.stdin.read()
"""


@contextmanager
def server_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield process, port
    finally:
        process.kill()
        process.communicate()


def usage(pid: int) -> dict[str, int]:
    """Threads (all, and the server's own), open descriptors and resident memory of a process."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    names = [(task / "comm").read_text().strip() for task in tasks]
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return {
        "threads": len(tasks),
        "server_threads": sum(name.startswith("last9-metrics") for name in names),
        "fds": len(list(Path(f"/proc/{pid}/fd").iterdir())),
        "rss_kib": rss_kib,
    }


async def drip(port: int, stop: asyncio.Event, connected: list[int]) -> None:
    """A client that sends a request head one byte every half second, reconnecting when cut off."""
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        connected[0] += 1
        try:
            for byte in b"GET /metrics HTTP/1.1\r\nX-Drip: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.wait_for(stop.wait(), 0.5)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.close()


def test_scrapes_succeed_while_thousands_of_slow_clients_are_connected():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    clients = 2000
    with server_process() as (process, port):
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 200
        before = usage(process.pid)

        async def flood() -> tuple[list[int], list[dict[str, int]]]:
            stop = asyncio.Event()
            connected = [0]
            drippers = [asyncio.create_task(drip(port, stop, connected)) for _ in range(clients)]
            while connected[0] < clients:
                await asyncio.sleep(0.1)
            statuses, samples = [], []
            for _ in range(20):
                response = await asyncio.to_thread(
                    requests.get, f"http://127.0.0.1:{port}/metrics", timeout=10
                )
                statuses.append(response.status_code)
                samples.append(usage(process.pid))
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*drippers)
            return statuses, samples

        statuses, samples = asyncio.run(flood())
    assert statuses == [200] * 20
    worst = {key: max(sample[key] for sample in samples) for key in samples[0]}
    # One socket thread and at most MAX_RENDERS render threads, however many clients.
    assert worst["server_threads"] <= 1 + MAX_RENDERS, worst
    assert worst["threads"] <= before["threads"] + MAX_RENDERS, (before, worst)
    # Descriptors: the cap's worth of connections at most (plus the one being shed).
    assert worst["fds"] <= before["fds"] + CONNECTION_CAP + 8, (before, worst)
    # Memory: a few KiB per connection, never a buffer per byte a client sends.
    assert worst["rss_kib"] - before["rss_kib"] < 64 * 1024, (before, worst)


@pytest.fixture
def dedicated(registry: last9.Registry) -> Iterator[int]:
    last9.Recorder(registry, hostname="box", program="neg").observe(
        "/a", "/a", "localhost", "GET", 200, 1_000_000
    )
    server = last9.start_metrics_server(0, "127.0.0.1", registry=registry)
    try:
        yield server.port
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/plain;q=1, application/openmetrics-text;q=0.5", "text/plain; version=0.0.4"),
        ("application/openmetrics-text;q=0.9, text/plain;q=0.5", "application/openmetrics-text"),
        ("application/openmetrics-text; version=2.0.0", "text/plain; version=0.0.4"),
        ("application/openmetrics-text;q=0", "text/plain; version=0.0.4"),
    ],
)
def test_the_dedicated_server_negotiates_by_q_and_version(dedicated, accept, content_type):
    response = requests.get(
        f"http://127.0.0.1:{dedicated}/metrics", headers={"Accept": accept}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    assert response.headers["Vary"] == "Accept, Accept-Encoding"
    assert response.text.endswith("# EOF\n") == content_type.startswith("application/openmetrics")


def test_credentials_are_required_when_set(registry):
    server = last9.start_metrics_server(0, "127.0.0.1", registry=registry, bearer_token="t0k")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        anonymous = requests.get(url, timeout=10)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        right = requests.get(url, headers={"Authorization": "Bearer t0k"}, timeout=10)
        assert right.status_code == 200
    finally:
        server.stop()


def test_https_with_a_required_client_certificate(tmp_path, registry):
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1")
    client_cert = authority.issue_cert("scraper")
    ca, cert, key, client = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem", "client.pem"))
    authority.cert_pem.write_to_path(str(ca))
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(client))
    server = last9.start_metrics_server(
        0,
        "127.0.0.1",
        registry=registry,
        tls_cert_file=cert,
        tls_key_file=key,
        tls_client_ca_file=ca,
    )
    try:
        url = f"https://127.0.0.1:{server.port}/metrics"
        assert requests.get(url, verify=str(ca), cert=str(client), timeout=10).status_code == 200
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url, verify=str(ca), timeout=10)
        # Plain HTTP on the TLS port gets no metrics.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url.replace("https", "http"), timeout=10)
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"cert": "missing", "key": "key"}, "LAST9_METRICS_TLS_CERT_FILE: cannot read"),
        ({"cert": "junk", "key": "key"}, "LAST9_METRICS_TLS_CERT_FILE: no certificate"),
        ({"cert": "cert", "key": "junk"}, "LAST9_METRICS_TLS_KEY_FILE: no usable private key"),
        ({"cert": "cert", "key": "other_key"}, "do not make a usable pair"),
        ({"cert": "cert", "key": "key", "ca": "junk"}, "LAST9_METRICS_TLS_CLIENT_CA_FILE"),
    ],
)
def test_bad_tls_files_are_a_clear_error_at_start_up(tmp_path, registry, files, message):
    authority = trustme.CA()
    issued, other = authority.issue_cert("127.0.0.1"), authority.issue_cert("127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "other_key", "junk")}
    issued.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    issued.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    paths["junk"].write_text("not PEM at all\n")
    paths["missing"] = tmp_path / "missing.pem"
    with pytest.raises(last9.MetricsError, match=message):
        last9.start_metrics_server(
            0,
            "127.0.0.1",
            registry=registry,
            tls_cert_file=paths[files["cert"]],
            tls_key_file=paths[files["key"]],
            tls_client_ca_file=paths[files["ca"]] if "ca" in files else None,
        )


def test_half_given_credentials_are_a_clear_error(registry):
    with pytest.raises(last9.MetricsError, match="LAST9_METRICS_USERNAME and LAST9_METRICS_PASS"):
        last9.start_metrics_server(0, "127.0.0.1", registry=registry, username="prom")


FORKING = """
import json, os, socket, time
import last9

server = last9.start_metrics_server(0, "127.0.0.1", registry=last9.Registry())
report, tell = os.pipe()
pid = os.fork()
if pid == 0:
    server.stop()  # the server thread is the parent's: nothing to stop or join (a join would hang)
    os.write(tell, b"stopped")
    time.sleep(60)
    os._exit(0)
child = os.read(report, 64).decode()
with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
    sock.sendall(b"GET /metrics HTTP/1.1\\r\\n\\r\\n")
    answer = sock.recv(64)
server.stop()
try:
    socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
    refused = False
except ConnectionRefusedError:
    refused = True
os.kill(pid, 9)
os.waitpid(pid, 0)
print(json.dumps([child, answer.split(b"\\r\\n")[0].decode(), refused]))
"""


def test_a_forked_child_neither_owns_nor_keeps_the_parents_server():
    out = subprocess.run(
        [sys.executable, "-c", FORKING], capture_output=True, text=True, check=True, timeout=60
    )
    child, status, refused = json.loads(out.stdout)
    # The child's stop() returned, and the parent kept serving.
    assert child == "stopped"
    assert status == "HTTP/1.1 200 OK"
    # Once the parent stopped, nothing listens on the port, though the child is still alive:
    # the child closed its inherited copy of the listening socket.
    assert refused
