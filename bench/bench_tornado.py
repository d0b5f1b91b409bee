"""Tornado: per-request overhead of last9 against OpenTelemetry's Tornado instrumentation.

Requests are driven in-process, without sockets or an event loop: each call builds an
``HTTPServerRequest`` on a connection that accepts every write, routes it with the app's own
``find_handler`` and runs the handler's ``_execute`` coroutine to completion (the handler never
awaits), which is what ``_HandlerDelegate.execute`` does minus the event-loop task. Everything
Tornado does per request (routing, the handler, ``finish``, the access-log call) is in the bare
time; the overhead is what instrumentation adds to it.

A request costs tens of microseconds and this shared machine drifts by more than the overhead
being measured, so rounds are short and many, and each candidate's overhead is the median of its
per-round difference to the bare run of the same round.

OpenTelemetry instruments every ``RequestHandler`` in the process (it wraps
``RequestHandler.__init__``), so it is switched on only around its own timed runs, in the same
interleaved rounds as the others. It gets a metrics-only set-up, its cheapest: an SDK
``MeterProvider`` with the Prometheus reader, and the default no-op tracer.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable

import tornado.web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

import last9
from harness import Row, Timing, time_per_call, us
from last9.tornado import instrument

CALLS = 4_000
ROUNDS = 31
TARGET_NS = 3000
TARGET_RATIO = 10


class User(tornado.web.RequestHandler):
    def get(self, user_id: str) -> None:
        self.write("ok")


class Other(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("other")


def make_app() -> tornado.web.Application:
    """A trivial app with a few rules; the benchmarked request matches the last."""
    rules = [(rf"/page{n}", Other) for n in range(4)]
    return tornado.web.Application([*rules, (r"/user/([0-9]+)", User)])


class _Connection:
    """An ``HTTPConnection`` whose writes complete at once."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done

    def set_close_callback(self, callback: object) -> None:
        pass

    def write_headers(self, start_line: object, headers: object, chunk: bytes = b"") -> object:
        return self.done

    def write(self, chunk: bytes) -> object:
        return self.done

    def finish(self) -> None:
        pass


def driver(app: tornado.web.Application, path: str = "/user/42") -> Callable[[], None]:
    done: asyncio.Future[None] = asyncio.get_event_loop_policy().get_event_loop().create_future()
    done.set_result(None)
    connection = _Connection(done)
    headers = HTTPHeaders({"Host": "example.com"})
    start_line = RequestStartLine("GET", path, "HTTP/1.1")

    def one() -> None:
        request = HTTPServerRequest(start_line=start_line, headers=headers, connection=connection)
        delegate = app.find_handler(request)
        handler = delegate.handler_class(delegate.application, request, **delegate.handler_kwargs)
        coroutine = handler._execute([], *delegate.path_args, **delegate.path_kwargs)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise RuntimeError("the handler awaited something")

    return one


def run() -> list[Row]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.tornado import TornadoInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider

    asyncio.set_event_loop(asyncio.new_event_loop())
    registry = last9.Registry()
    candidates = {
        "bare": driver(make_app()),
        "last9": driver(instrument(make_app(), registry=registry, hostname="bench")),
        "opentelemetry-instrumentation-tornado": driver(make_app()),
    }
    otel = TornadoInstrumentor()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])

    def timed(name: str, calls: int) -> float:
        if name.startswith("opentelemetry"):
            otel.instrument(meter_provider=meter_provider)
        try:
            return time_per_call(candidates[name], calls)
        finally:
            if name.startswith("opentelemetry"):
                otel.uninstrument()

    timings = {name: Timing(name) for name in candidates}
    for name in candidates:
        timed(name, CALLS // 10)  # warm up
    for _ in range(ROUNDS):
        for name in candidates:
            timings[name].rounds_ns.append(timed(name, CALLS))
    assert registry.series_count() == 1, registry.render().decode()

    bare = timings["bare"]
    overhead = {
        name: statistics.median(
            ns - base for ns, base in zip(timing.rounds_ns, bare.rounds_ns, strict=True)
        )
        for name, timing in timings.items()
        if name != "bare"
    }
    ours = overhead.pop("last9")
    rows = [Row("tornado", "bare request (in-process)", us(bare.ns))]
    best = min(overhead.values())
    for name, ns in overhead.items():
        rows.append(Row("tornado", f"{name} overhead", us(ns)))
    rows.append(Row("tornado", "last9 overhead", us(ours), f"≤ {us(TARGET_NS)}", ours <= TARGET_NS))
    ratio = best / ours if ours > 0 else float("inf")
    rows.append(
        Row(
            "tornado",
            "best exporter overhead ÷ last9 overhead",
            f"{ratio:.1f}x",
            f"≥ {TARGET_RATIO}x",
            ratio >= TARGET_RATIO,
        )
    )
    return rows
