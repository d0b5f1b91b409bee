"""Helpers shared by the framework tests: in-process ASGI requests, real servers, scrape deltas."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import httpx
import requests

import last9
from conftest import METRIC, counts_by, increase, parse, scrape

UUID = "7d3f0c1e-9b6a-4c4b-8f1e-2a2b3c4d5e6f"


def waitress(app: str, port: int, *args: str) -> list[str]:
    command = [sys.executable, "-m", "waitress", "--host", "127.0.0.1", f"--port={port}"]
    return [*command, *args, app]


def get(port: int, path: str, method: str = "GET") -> requests.Response:
    return requests.request(method, f"http://127.0.0.1:{port}{path}", timeout=10)


def counted(port: int, traffic: Callable[[], object]) -> dict[tuple[str, ...], float]:
    """The (per, status, method) counts that `traffic` added to the server's scrape."""
    before = counts_by(scrape(port).text, "per", "status", "method")
    traffic()
    after = counts_by(scrape(port).text, "per", "status", "method")
    return increase(before, after)


def duration_sum(port: int, per: str) -> float:
    """Milliseconds summed over every series of `per`."""
    return sum(
        value
        for key, value in parse(scrape(port).text).items()
        if dict(key)["__name__"] == f"{METRIC}_sum" and dict(key).get("per") == per
    )


def requests_to(app: Any, *calls: str, **headers: str) -> list[int]:
    """Sends `METHOD /path` calls through httpx's in-process ASGI transport: the statuses."""

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            statuses = []
            for call in calls:
                method, _, path = call.rpartition(" ")
                response = await client.request(method or "GET", path, headers=headers)
                statuses.append(response.status_code)
            return statuses

    return asyncio.run(go())


def counts(registry: last9.Registry) -> dict[tuple[str, ...], float]:
    return counts_by(registry.render(), "per", "status", "method")


def family(text: str | bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` in an exposition, keyed by their label pairs, sorted."""
    found = {}
    for key, value in parse(text).items():
        labels = dict(key)
        if labels.pop("__name__") == name:
            found[tuple(sorted(labels.items()))] = value
    return found
