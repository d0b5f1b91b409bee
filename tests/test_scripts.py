"""The set-up scripts a new user runs first behave: scripts/demo.sh."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, free_port


def demo(port: int, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PORT": str(port),
        # Install into this test run's virtualenv, with the test build's profile.
        "LAST9_VENV": sys.prefix,
        "MATURIN_PEP517_ARGS": "--profile quick",
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_stops_loudly_when_its_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = demo(port, timeout=30)
    assert run.returncode == 1
    assert f"port {port} is already taken" in run.stderr
    assert "PORT=" in run.stderr


@pytest.mark.timeout(300)
def test_demo_counts_only_the_traffic_it_sends():
    run = demo(free_port(), timeout=280)
    assert run.returncode == 0, run.stdout + run.stderr
    sample = r'^http_requests_duration_milliseconds_count\{per="([^"]*)".*status="(\d+)".*\} (\d+)$'
    counts = {
        (per, status): int(value)
        for per, status, value in re.findall(sample, run.stdout, re.MULTILINE)
    }
    # Ten /name/… requests, one /static and one 404: the readiness probe is not among them.
    assert counts == {("/name/{name}", "200"): 10, ("/static", "200"): 1, ("/unmatched", "404"): 1}
