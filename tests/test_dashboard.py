"""The Grafana dashboard in deploy/grafana: built by its script with Grafana's SDK, read back by
the SDK's models, well-formed, and every query answered by a real Prometheus holding real apps'
series (two services calling each other, and a Flask app under gunicorn -w 2)."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import requests
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from conftest import gunicorn, serve
from receivers import Prometheus, free_ports, wait_for

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "grafana"
RULES = ROOT / "deploy" / "prometheus"
sys.path.insert(0, str(GRAFANA))

import build_dashboard  # noqa: E402

CHECKED_IN = GRAFANA / "last9-red.json"
VARIABLES = ["datasource", "tenant", "cluster", "program", "per"]
#: What Grafana puts in place of its variables, for a query run by hand: "All" is ".*".
SUBSTITUTES = {
    "$__rate_interval": "1m",
    "$__range": "1m",
    **{f"${name}": ".*" for name in VARIABLES[1:]},
}


def dashboard() -> dict[str, Any]:
    return json.loads(CHECKED_IN.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels() for t in p["targets"]]


def substitute(expr: str) -> str:
    # Longest names first: $__rate_interval before a hypothetical $__rate.
    for name in sorted(SUBSTITUTES, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTES[name])
    assert not re.search(r"\$[A-Za-z_]", expr), expr  # no variable left ($1 of label_replace is)
    return expr


def test_the_checked_in_json_is_what_the_script_builds():
    assert CHECKED_IN.read_text() == build_dashboard.render(), (
        "run: python deploy/grafana/build_dashboard.py"
    )


def test_the_sdk_reads_the_json_back_to_the_same_dashboard():
    """The SDK's own model of a dashboard (Grafana's schema, as code) parses every field."""
    text = CHECKED_IN.read_text()
    model = Dashboard.from_json(json.loads(text))
    assert json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n" == text


def test_layout_ids_variables_and_data_source():
    board = dashboard()
    assert board["uid"] == "last9-red" and board["title"] and board["schemaVersion"] >= 39
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), ids
    # Every panel lies within Grafana's 24 columns, and no two overlap.
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == VARIABLES
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    for name in VARIABLES[1:]:
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        # Every query filters on the variables (the overflow counter has no app labels).
        for target in panel["targets"]:
            if "last9_label_overflow_total" not in target["expr"]:
                for name in ("$tenant", "$cluster", "$program"):
                    assert name in target["expr"], (panel["title"], name)
    kinds = {p["type"] for p in panels()}
    assert {"timeseries", "heatmap", "nodeGraph"} <= kinds


def test_every_query_and_rule_runs_and_answers_on_real_apps_series(tmp_path):
    """The dashboard's queries, and the rules of deploy/prometheus loaded by the same server."""
    api_port, web_port, shop_port, prom_port = free_ports(4)
    env = {
        "LAST9_INSTRUMENT_HTTP_CLIENTS": "1",
        "LAST9_TEST_API": f"http://127.0.0.1:{api_port}",
        "LAST9_TENANT": "acme",
        "LAST9_CLUSTER": "test",
    }
    api = [sys.executable, "-m", "uvicorn", "--port", str(api_port), "tests.apps.lineage_api:app"]
    targets = [f"127.0.0.1:{port}" for port in (api_port, web_port, shop_port)]
    prom = Prometheus(tmp_path, prom_port)
    rules = [str(RULES / name) for name in ("last9-red.rules.yml", "last9-slo.rules.yml")]
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        f"rule_files: {json.dumps(rules)}\n"
        "scrape_configs:\n"
        f"  - {{job_name: apps, static_configs: [{{targets: {json.dumps(targets)}}}]}}\n"
    )
    with (
        serve(api, api_port, env),
        serve(gunicorn("tests.apps.lineage_web:app", web_port, "-w", "1"), web_port, env),
        serve(gunicorn("tests.apps.flask_app:app", shop_port, "-w", "2"), shop_port, env),
    ):
        prom.start()
        try:
            wait_for("every target up", lambda: prom.vector("count(up == 1)") == {(): 3})
            # Two rounds of traffic, each seen by scrapes: every counter has grown between two
            # samples, so rates are positive and quantiles are numbers.
            for _ in range(2):
                for port, path in [
                    (web_port, "/buy/1"),
                    (web_port, "/look/2"),
                    (web_port, "/down"),
                    (shop_port, "/name/ada"),
                    (shop_port, "/boom"),
                    (shop_port, "/slow/30"),
                ]:
                    requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
                sent = time.time()
                wait_for("two scrapes after it", lambda sent=sent: scraped_since(prom, sent, 2))
            families = set(prom.api("label/__name__/values"))
            check_queries(prom, families)
            check_rules(prom)
        finally:
            prom.stop()


def check_rules(prom: Prometheus) -> None:
    """Every rule evaluates without error; the RED rules record the routes; shop, whose
    objective allows 0.05 % of 5xx, serves a sixth of its requests from /boom: its
    availability alerts fire, and no other program's do. (Latency alerts are left out: on a
    busy machine a first request may well take longer than an objective.)"""
    wait_for(
        "the rules to be evaluated on the traffic",
        lambda: prom.query('program:http_requests_error_ratio:rate5m{program="shop"} > 0'),
    )
    groups = prom.api("rules")["groups"]
    assert {g["name"] for g in groups} == {"last9-red", "last9-slo-ratios", "last9-slo-alerts"}
    for group in groups:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
    routes = prom.vector("program_per:http_requests:rate5m > 0", "program", "per")
    assert {
        ("shop", "/boom"),
        ("storefront", "/buy/{n}"),
        ("inventory", "/items/{item_id}"),
    } <= set(routes)
    callers = prom.vector("caller_program:http_requests_callers:rate5m", "caller", "program")
    assert ("storefront", "inventory") in callers
    ratios = prom.vector(
        "caller_program:http_requests_callers_error_ratio:rate5m", "caller", "program"
    )
    assert ratios[("storefront", "inventory")] == 0, ratios
    # The shop's /boom; its caller is `unknown`, or an earlier test's app when that test
    # instrumented this process's HTTP clients.
    (shop,) = [v for (_, program), v in ratios.items() if program == "shop"]
    assert 0 < shop < 1, ratios
    firing = wait_for(
        "the shop's availability page",
        lambda: firing_alerts(prom) if len(firing_alerts(prom)) >= 2 else None,
    )
    assert {(a["labels"]["alertname"], a["labels"]["program"]) for a in firing} == {
        ("Last9AvailabilityBurnFast", "shop"),
        ("Last9AvailabilityBurnSlow", "shop"),
    }


def firing_alerts(prom: Prometheus) -> list[dict[str, Any]]:
    """The availability alerts firing now."""
    return [
        a
        for a in prom.api("alerts")["alerts"]
        if a["state"] == "firing" and a["labels"]["slo"] == "availability"
    ]


def scraped_since(prom: Prometheus, moment: float, scrapes: int) -> bool:
    """Whether every target has been scraped `scrapes` times since the wall-clock `moment`."""
    window_ms = max(int((time.time() - moment) * 1000), 1)
    counts = prom.vector(f"count_over_time(up[{window_ms}ms])", "instance")
    return len(counts) == 3 and min(counts.values()) >= scrapes


def check_queries(prom: Prometheus, families: set[str]) -> None:
    answered, empty = [], []
    for title, expr in expressions():
        result = prom.query(substitute(expr))  # raises unless Prometheus answers "success"
        needed = set(re.findall(r"\b((?:http|process|last9)_[a-z_]+)\b", expr))
        if needed <= families:
            (answered if result else empty).append(title)
        else:
            # A family nothing exposes yet (the runtime metrics): the query must still be valid.
            assert not result, title
    assert not empty, f"panels with no series although their families exist: {empty}"
    assert len(answered) >= 15, answered
    # The service map's edges: their error ratio, from the callers counter's status class and
    # the outbound calls' status. storefront reaches inventory, and fails to reach port 9; the
    # shop, called by no named caller, fails on /boom.
    (edge_errors,) = [
        t["expr"]
        for p in panels()
        if p["type"] == "nodeGraph"
        for t in p["targets"]
        if t["refId"] == "edge_errors"
    ]
    ratios = prom.vector(substitute(edge_errors), "source", "target")
    assert ratios[("storefront", "inventory")] == 0, ratios
    assert ratios[("storefront", "127.0.0.1:9")] == 1, ratios
    (shop,) = [v for (_, target), v in ratios.items() if target == "shop"]
    assert 0 < shop < 1, ratios
    for variable in dashboard()["templating"]["list"][1:]:
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        values = prom.api(f"label/{label}/values", **{"match[]": substitute(selector)})
        assert values, variable["name"]
