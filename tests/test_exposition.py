"""Exposition checked by the tools Prometheus users trust: promtool and the reference parser."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

import last9
from conftest import METRIC, parse
from last9.wsgi.middleware import RedMiddleware
from wsgi_helpers import call


def busy_registry() -> last9.Registry:
    registry = last9.Registry()

    def app(environ, start_response):
        start_response(environ["PATH_INFO"].rsplit("/", 1)[-1] + " X", [])
        return [b""]

    wrapped = RedMiddleware(
        app, registry=registry, program='we"ird\\prog', hostname="h\nost", tenant="t"
    )
    for path in ("/a/200", "/b/1/404", '/q"uote/500', "/back\\slash/200", "/caf\xc3\xa9/200"):
        call(wrapped, path)
        call(wrapped, path, method="POST", host="Other.Example:8080")
    # The other families, with awkward values: a request in flight, an outbound call, a caller.
    recorder = wrapped.recorder
    recorder.enter("PUT")
    recorder.observe_client("/a/{id}", 'up"stream:81', "GET", "timeout", 2_000_000)
    recorder.count_caller("/a/{id}", "call\ner")
    return registry


def promtool_findings(text: bytes) -> list[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is installed by scripts/test.sh"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, check=False
    )
    lines = (result.stdout + result.stderr).decode().splitlines()
    return [line for line in lines if line.strip()]


def test_promtool_reports_only_the_base_unit_advice():
    findings = promtool_findings(busy_registry().render())
    assert findings, "promtool is expected to advise seconds for a millisecond metric"
    assert all('use base unit "seconds" instead of "milliseconds"' in line for line in findings), (
        findings
    )


def test_reference_parser_reads_back_every_value():
    registry = busy_registry()
    samples = parse(registry.render())
    counts = {k: v for k, v in samples.items() if dict(k)["__name__"] == f"{METRIC}_count"}
    assert len(counts) == 10
    assert all(v == 1 for v in counts.values())
    pers = {dict(k)["per"] for k in counts}
    assert pers == {"/a/{id}", "/b/{id}/{id}", '/q"uote/{id}', "/back\\slash/{id}", "/café/{id}"}
    programs = {dict(k)["program"] for k in counts}
    assert programs == {'we"ird\\prog'}
    assert {dict(k)["hostname"] for k in counts} == {"h\nost"}


def test_openmetrics_output_parses_with_the_openmetrics_parser():
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    text = busy_registry().render(openmetrics=True).decode()
    families = list(text_string_to_metric_families(text))
    assert [f.name for f in families] == [
        METRIC,
        "http_requests_in_flight",
        "http_client_requests_duration_milliseconds",
        "http_requests_callers",
        "last9_label_overflow",
    ]
    assert families[0].type == "histogram" and families[0].unit == "milliseconds"
    assert [f.type for f in families[1:]] == ["gauge", "histogram", "counter", "counter"]
    assert {s.labels["method"]: s.value for s in families[1].samples}["PUT"] == 1


def test_buckets_are_cumulative_and_inf_equals_count():
    registry = last9.Registry()
    recorder = last9.Recorder(registry, hostname="h", program="p")
    for ms in (0.1, 0.3, 1, 1, 5, 100, 100_000):
        recorder.observe(None, "/x", "h", "GET", 200, int(ms * 1e6))
    samples = parse(registry.render())
    buckets = sorted(
        (float(dict(k)["le"]), v)
        for k, v in samples.items()
        if dict(k)["__name__"] == f"{METRIC}_bucket"
    )
    values = [v for _, v in buckets]
    assert values == sorted(values)
    assert buckets[0] == (0.25, 1)
    assert buckets[-1] == (float("inf"), 7)
    count = next(v for k, v in samples.items() if dict(k)["__name__"] == f"{METRIC}_count")
    total = next(v for k, v in samples.items() if dict(k)["__name__"] == f"{METRIC}_sum")
    assert count == 7
    assert total == pytest.approx(100_107.4)


def test_dedicated_server_serves_the_registry():
    registry = busy_registry()
    server = last9.start_metrics_server(0, "127.0.0.1", registry=registry)
    try:
        response = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.content == registry.render()
        om = requests.get(
            f"http://127.0.0.1:{server.port}/metrics",
            headers={"Accept": "application/openmetrics-text"},
            timeout=5,
        )
        assert om.text.endswith("# EOF\n")
        assert (
            requests.post(f"http://127.0.0.1:{server.port}/metrics", timeout=5).status_code == 405
        )
    finally:
        server.stop()


def test_a_taken_port_is_a_clear_error():
    server = last9.start_metrics_server(0, "127.0.0.1")
    try:
        with pytest.raises(OSError, match=str(server.port)):
            last9.start_metrics_server(server.port, "127.0.0.1")
    finally:
        server.stop()


def test_helpers_are_exposed():
    assert last9.normalize_path("/user/42/files/2024-01-02") == "/user/{id}/files/{date}"
    assert last9.route_template("/item/<int:id>", "angle") == "/item/{id}"
    assert last9.generate_latest().startswith(b"# HELP " + METRIC.encode())


def test_the_metrics_endpoint_answers_what_render_gives():
    """The body written straight into the response's bytes is the exposition, in each format,
    gzip'd or not; a HEAD has no body but the GET's Content-Length."""
    import gzip

    from last9._core import MetricsEndpoint

    registry = busy_registry()
    endpoint = MetricsEndpoint(registry, "/metrics")
    om = "application/openmetrics-text; version=1.0.0"
    for accept, expected in ((None, registry.render()), (om, registry.render(openmetrics=True))):
        status, headers, body = endpoint.respond(None, accept)
        assert status == 200 and body == expected
        assert dict(headers)["Content-Length"] == str(len(expected))
        _, headers, zipped = endpoint.respond(None, accept, "gzip")
        assert dict(headers)["Content-Encoding"] == "gzip"
        assert gzip.decompress(zipped) == expected
        _, head_headers, empty = endpoint.respond(None, accept, "gzip", head=True)
        assert empty == b"" and dict(head_headers)["Content-Length"] == str(len(zipped))
        _, head_headers, empty = endpoint.respond(None, accept, head=True)
        assert empty == b"" and dict(head_headers)["Content-Length"] == str(len(expected))
    assert registry.scrape() == (
        "text/plain; version=0.0.4; charset=utf-8",
        None,
        registry.render(),
    )
    assert not endpoint.protected and endpoint.allows(None)
    assert "s3cret" not in repr(MetricsEndpoint(registry, username="u", password="s3cret"))
