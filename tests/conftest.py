"""Shared helpers: real servers in subprocesses, free ports, and parsed scrapes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import last9

ROOT = Path(__file__).resolve().parent.parent
METRIC = "http_requests_duration_milliseconds"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


@contextmanager
def serve(
    command: Sequence[str],
    port: int,
    env: dict[str, str] | None = None,
    wait_port: int | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Runs a server command from the repository root until the block ends."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(command), cwd=ROOT, env=full_env, stdout=out, stderr=out
            )
        try:
            wait_for_port(wait_port or port, process, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def gunicorn(app: str, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", *args, app]


def uvicorn(app: str, port: int, *args: str) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
        *("--no-access-log", *args, app),
    ]


def parse(text: str | bytes) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of the duration histogram, keyed by (name, label pairs sorted)."""
    if isinstance(text, bytes):
        text = text.decode()
    samples: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (("__name__", sample.name), *sorted(sample.labels.items()))
            samples[key] = sample.value
    return samples


def counts_by(text: str | bytes, *labels: str, **where: str) -> dict[tuple[str, ...], float]:
    """`_count` summed by the given labels, over series matching `where`."""
    totals: dict[tuple[str, ...], float] = {}
    for key, value in parse(text).items():
        pairs = dict(key)
        if pairs.pop("__name__") != f"{METRIC}_count":
            continue
        if any(pairs.get(k) != v for k, v in where.items()):
            continue
        group = tuple(pairs[label] for label in labels)
        totals[group] = totals.get(group, 0) + value
    return totals


def increase(
    before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float]
) -> dict[tuple[str, ...], float]:
    """What changed between two readings of the same counts, by key."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def eventually(check: Callable[[], T], timeout: float = 10.0) -> T:
    """Retries `check` until it stops raising AssertionError.

    A server records a streamed response when it closes the body, which can be just after the
    client has read the last byte, so a scrape sent at once may not see that request yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def scrape(port: int, path: str = "/metrics", **headers: str) -> requests.Response:
    response = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=10)
    response.raise_for_status()
    return response


@pytest.fixture
def registry() -> last9.Registry:
    """A registry of the test's own, so tests do not see each other's series."""
    return last9.Registry()
