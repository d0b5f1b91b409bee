"""Tornado: per-request overhead of last9 against OpenTelemetry's Tornado instrumentation (the
exporter Tornado users know) and tornado-prometheus (the smallest one: a ``log_request`` mix-in
that labels by handler class, not route).

Requests are driven in-process, without sockets: each call builds an ``HTTPServerRequest`` on a
connection that accepts every write, routes it with the app's own ``find_handler``, calls the
delegate's ``execute`` as Tornado's server does (it makes the handler and the task that runs
it), and lets the event loop make one pass, in which the handler runs to completion (it never
awaits). Everything Tornado does per request (routing, the handler's task, ``finish``, the
access-log call) is in the bare time; the overhead is what instrumentation adds to it, last9's
in-flight gauge (kept from ``execute`` to ``log_request``) included.

A request costs tens of microseconds and this shared machine drifts by more than the overhead
being measured, so times are the thread's CPU time (wall time also counts the time other
processes held the CPU), rounds are short and many, in rotating order, and each candidate's
overhead is the median of its per-round difference to the bare run of the same round.

OpenTelemetry instruments every ``RequestHandler`` in the process (it wraps
``RequestHandler.__init__``), so it is switched on only around its own timed runs, in the same
interleaved rounds as the others. It gets a metrics-only set-up, its cheapest: an SDK
``MeterProvider`` with the Prometheus reader, and the default no-op tracer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import tornado.web
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

import last9
from harness import Row, Timing, overhead, paired_overheads, time_per_call, us
from last9.tornado import instrument

CALLS = 1_000
ROUNDS = 60
TARGET_NS = 3000
TARGET_RATIO = 10


class User(tornado.web.RequestHandler):
    def get(self, user_id: str) -> None:
        self.write("ok")


class Other(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("other")


RULES = [*((rf"/page{n}", Other) for n in range(4)), (r"/user/([0-9]+)", User)]


def make_app() -> tornado.web.Application:
    """A trivial app with a few rules; the benchmarked request matches the last."""
    return tornado.web.Application(RULES)


class _Connection:
    """An ``HTTPConnection`` whose writes complete at once."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done

    finished = 0

    def set_close_callback(self, callback: object) -> None:
        pass

    def write_headers(self, start_line: object, headers: object, chunk: bytes = b"") -> object:
        return self.done

    def write(self, chunk: bytes) -> object:
        return self.done

    def finish(self) -> None:
        self.finished += 1


def driver(app: tornado.web.Application, path: str = "/user/42") -> Callable[[], None]:
    loop = asyncio.get_event_loop_policy().get_event_loop()
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    connection = _Connection(done)
    headers = HTTPHeaders({"Host": "example.com"})
    start_line = RequestStartLine("GET", path, "HTTP/1.1")

    def one() -> None:
        request = HTTPServerRequest(start_line=start_line, headers=headers, connection=connection)
        finished = connection.finished
        app.find_handler(request).execute()
        loop.call_soon(loop.stop)
        loop.run_forever()
        if connection.finished != finished + 1:
            raise RuntimeError("the handler awaited something")

    return one


def run() -> list[Row]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.tornado import TornadoInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import generate_latest
    from tornado_prometheus import PrometheusMixIn

    class PrometheusApplication(PrometheusMixIn, tornado.web.Application):
        pass

    asyncio.set_event_loop(asyncio.new_event_loop())
    registry = last9.Registry()
    candidates = {
        "bare": driver(make_app()),
        "last9": driver(instrument(make_app(), registry=registry, hostname="bench")),
        "opentelemetry-instrumentation-tornado": driver(make_app()),
        "tornado-prometheus (no route label)": driver(PrometheusApplication(RULES)),
    }
    otel = TornadoInstrumentor()
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])

    def timed(name: str, calls: int) -> float:
        if name.startswith("opentelemetry"):
            otel.instrument(meter_provider=meter_provider)
        try:
            return time_per_call(candidates[name], calls, time.thread_time_ns)
        finally:
            if name.startswith("opentelemetry"):
                otel.uninstrument()

    names = list(candidates)
    timings = {name: Timing(name) for name in names}
    for name in names:
        timed(name, CALLS)  # warm up
    for round_ in range(ROUNDS):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            timings[name].rounds_ns.append(timed(name, CALLS))
    # Each candidate did record: one last9 series, and the others' own metric families.
    assert registry.series_count() == 1, registry.render().decode()
    exposed = generate_latest().decode()
    assert "http_server_duration_milliseconds_count{" in exposed, exposed
    assert 'tornado_http_requests_total{handler="User",method="GET",status="2xx"}' in exposed

    bare = timings["bare"]
    added = paired_overheads(timings, "bare")
    ours = added.pop("last9")
    rows = [Row("tornado", "bare request (in-process, CPU time)", us(bare.ns))]
    for name, ns in added.items():
        rows.append(overhead("tornado", f"{name} overhead", us(ns), ns))
    rows.append(
        overhead(
            "tornado", "last9 overhead", us(ours), ours, f"≤ {us(TARGET_NS)}", ours <= TARGET_NS
        )
    )
    for name, ns in added.items():
        ratio = ns / ours if ours > 0 else float("inf")
        # The target is against the exporter Tornado users know; tornado-prometheus, a
        # 64-line log_request mix-in labelled by handler class, is shown for scale.
        target = name == "opentelemetry-instrumentation-tornado"
        rows.append(
            Row(
                "tornado",
                f"{name} overhead ÷ last9 overhead",
                f"{ratio:.1f}x",
                f"≥ {TARGET_RATIO}x" if target else "",
                ratio >= TARGET_RATIO if target else None,
            )
        )
    return rows
