"""Real metrics receivers the tests start on loopback: Debian's Prometheus and VictoriaMetrics.

Each runs with a temporary data directory and is polled until ready; queries go through the
PromQL HTTP API both serve (`/api/v1/query`).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import requests

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
VICTORIA_METRICS = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """Distinct free ports (sockets held open together, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Polls `probe` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}; last answer: {last!r}")


class Receiver:
    """A receiver's process: started with `args`, logging to `log`, ready when `ready_path`
    answers 200, and queried over its PromQL API."""

    name = "receiver"
    ready_path = "/-/ready"

    def __init__(self, workdir: Path, port: int, args: list[str]) -> None:
        self.workdir = workdir
        self.port = port
        self.args = args
        self.log = workdir / f"{self.name}.log"
        self.scheme = "http"
        self.verify: str | bool = True
        self.auth: tuple[str, str] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=out)
        wait_for(f"{self.name} to be ready", self._ready)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
        try:
            return self.get(self.ready_path).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(
            self.url + path, params=params, auth=self.auth, verify=self.verify, timeout=10
        )

    def api(self, path: str, **params: Any) -> Any:
        body = self.get(f"/api/v1/{path}", **params).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, **params: Any) -> list[dict[str, Any]]:
        return self.api("query", query=expr, **params)["result"]

    def vector(self, expr: str, *labels: str, **params: Any) -> dict[tuple[str, ...], float]:
        """An instant vector keyed by the given labels' values."""
        return {
            tuple(item["metric"].get(label, "") for label in labels): float(item["value"][1])
            for item in self.query(expr, **params)
        }


class Prometheus(Receiver):
    """A Prometheus server with a data directory that outlives restarts, scraping one target
    every second and/or receiving remote writes."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        port: int,
        *,
        scrape_target: str | None = None,
        scrape_options: str = "",
        web_config: str | None = None,
        ca_file: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        if scrape_target:
            config += (
                "scrape_configs:\n"
                "  - job_name: shop\n"
                f"    static_configs: [{{targets: ['{scrape_target}']}}]\n"
                + "".join(f"    {line}\n" for line in scrape_options.splitlines())
            )
        (workdir / "prometheus.yml").write_text(config)
        args = [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-remote-write-receiver",
        ]
        if web_config:
            (workdir / "web.yml").write_text(web_config)
            args.append(f"--web.config.file={workdir / 'web.yml'}")
        super().__init__(workdir, port, args)
        if ca_file:
            self.scheme = "https"
            self.verify = str(ca_file)
        self.auth = auth

    def target(self) -> dict[str, Any] | None:
        """The one scrape target, once service discovery has found it."""
        targets = self.api("targets")["activeTargets"]
        assert len(targets) <= 1, targets
        return targets[0] if targets else None

    def wait_for_scrapes_after(self, moment: float, scrapes: int = 2) -> None:
        """Waits until `scrapes` scrapes have started after the wall-clock time `moment`."""
        seen: set[str] = set()

        def probe() -> bool:
            target = self.target()
            if target is not None and _rfc3339(target["lastScrape"]) > moment:
                seen.add(target["lastScrape"])
            return len(seen) >= scrapes

        wait_for(f"{scrapes} scrapes", probe)


class VictoriaMetrics(Receiver):
    """A single-node VictoriaMetrics, answering PromQL on /api/v1/query."""

    name = "victoria-metrics"
    ready_path = "/health"

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(
            workdir,
            port,
            [
                VICTORIA_METRICS,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={workdir / 'vm-data'}",
                "-retentionPeriod=1d",
                # Fresh samples answer queries at once, not after the default 30 s.
                "-search.latencyOffset=0s",
                "-search.disableCache",
            ],
        )


def _rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 timestamp with up to nanoseconds (Go's format)."""
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, text
    whole, fraction, zone = match.groups()
    moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return moment.timestamp() + float(f"0.{fraction or 0}")


@contextmanager
def running(receiver: Receiver) -> Iterator[Any]:
    """The receiver, started, and stopped on the way out."""
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@contextmanager
def prometheus(workdir: Path, port: int, **kwargs: Any) -> Iterator[Prometheus]:
    with running(Prometheus(workdir, port, **kwargs)) as server:
        yield server


@contextmanager
def victoria_metrics(workdir: Path, port: int) -> Iterator[VictoriaMetrics]:
    with running(VictoriaMetrics(workdir, port)) as server:
        yield server
